"""The page shell run on every rerun: runtime, sign-in gate, per-role navigation.

Pages a user may not open are simply not passed to ``st.navigation``, so their URLs do not
exist for that user (``visibility="hidden"`` would not be access control).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from byok_core import accounts
from byok_core.models import User
from byok_core.runtime import Runtime
from byok_ui import state
from byok_ui.runtime import open_or_explain

PAGES = Path(__file__).resolve().parent.parent / "pages"


def _page(file: str, title: str, icon: str, help: str, **kw) -> st.Page:
    return st.Page(PAGES / file, title=title, icon=icon, help=help, **kw)


def signed_out_pages(rt: Runtime) -> list[st.Page]:
    if not accounts.has_users(rt):
        return [_page("setup.py", "First-run setup", ":material/rocket_launch:",
                      "Create the first admin with the setup code printed in the server's console.",
                      url_path="setup", default=True)]
    return [_page("sign_in.py", "Sign in", ":material/login:", "Sign in with your username and password.",
                  url_path="signin", default=True)]


def member_pages(is_admin: bool) -> dict[str, list[st.Page]]:
    pages = {
        "": [
            _page("chat.py", "Chat", ":material/chat:",
                  "Chat with OpenAI, Anthropic, Gemini or your own endpoint; every reply says which key paid.",
                  default=True),
            _page("search.py", "Search", ":material/travel_explore:",
                  "Run a web search on one or several search providers and compare the results."),
            _page("keys.py", "Keys", ":material/key:",
                  "Save, test, replace and delete your API keys. Keys are write-only: only a mask is shown."),
            _page("usage.py", "Usage", ":material/monitoring:",
                  "Every provider call with tokens, latency and estimated cost. Filters, charts, CSV export."),
        ],
        "Account": [
            _page("account.py", "Account", ":material/person:", "Change your password or sign out."),
        ],
    }
    if is_admin:
        pages["Admin"] = [
            _page("admin.py", "Admin", ":material/admin_panel_settings:",
                  "Users, team keys and the audit log. Admins only."),
            _page("budgets.py", "Budgets", ":material/savings:",
                  "Monthly spending limits on the team's shared keys. Admins only."),
        ]
    return pages


def _sidebar(rt: Runtime, user: User) -> None:
    with st.sidebar:
        role = "admin" if user.is_admin else "member"
        st.caption(f":material/account_circle: Signed in as **{user.username}** ({role})")
        if st.button("Sign out", key="shell_sign_out", icon=":material/logout:"):
            state.sign_out(rt)
            st.rerun()


def main() -> None:
    st.set_page_config(page_title="BYOK Dashboard", page_icon=":material/key:", layout="wide")
    rt = open_or_explain()
    user = state.current_user(rt)
    state.emit_cookie_actions()
    if user is None:
        page = st.navigation(signed_out_pages(rt), position="hidden")
        page.run()
        return
    page = st.navigation(member_pages(user.is_admin), position="sidebar")
    _sidebar(rt, user)
    with state.page_context(state.Ctx(rt, user)), state.shows_errors():
        page.run()
