"""The app's pages: script, title, icon, help and URL path of each. The shell builds the navigation
from them; the server knows from them which addresses are pages (byok_ui/server.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    """One page of the app: its script, title, icon, help and URL path."""

    file: str
    title: str
    icon: str
    help: str
    url_path: str
    admin_only: bool = False


PAGE_SPECS = (
    PageSpec("chat.py", "Chat", ":material/chat:",
             "Chat with OpenAI, Anthropic, Gemini or your own endpoint; every reply says which key paid.", "chat"),
    PageSpec("search.py", "Search", ":material/travel_explore:",
             "Run a web search on one or several search providers and compare the results.", "search"),
    PageSpec("keys.py", "Keys", ":material/key:",
             "Save, test, replace and delete your API keys. Keys are write-only: only a mask is shown.", "keys"),
    PageSpec("usage.py", "Usage", ":material/monitoring:",
             "Every provider call with tokens, latency and estimated cost. Filters, charts, CSV export.", "usage"),
    PageSpec("account.py", "Account", ":material/person:", "Change your password or sign out.", "account"),
    PageSpec("admin.py", "Admin", ":material/admin_panel_settings:",
             "Users, team keys and the audit log. Admins only.", "admin", admin_only=True),
    PageSpec("budgets.py", "Budgets", ":material/savings:",
             "Monthly spending limits on the team's shared keys. Admins only.", "budgets", admin_only=True),
)
DEFAULT = PAGE_SPECS[0]
SIGNED_OUT_PATHS = ("signin", "setup")
