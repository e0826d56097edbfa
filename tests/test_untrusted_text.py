"""Text from outside (a provider's error, a username, a key's label, an endpoint, anything read
from the database) is shown as text on every page: a planted ``![e](http://…)`` must never become
an image the browser loads.

Two kinds of test: a scan of every Streamlit call in byok_ui/ and pages/ that renders Markdown,
which requires each value it shows to be fixed text, to go through byok_core.md, or to be on the
reviewed list below (app-made words and numbers); and AppTest pages with planted text, rendered by
a CommonMark parser as the browser's react-markdown would (tests/e2e/test_e2e_untrusted.py checks
a real Chromium)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from apptest import make_user, page_as, send_message, use_environment
from callhelpers import log_call
from fakeproviders import FakeProvider, default_error_body
from markdown_it import MarkdownIt

from byok_core import budgets, keys
from byok_core.identity import Actor, KeySource, Owner
from byok_core.models import User, table
from byok_core.providers import Provider

ROOT = Path(__file__).resolve().parent.parent
# Streamlit calls whose first argument is Markdown, and those whose label (first argument) is
HAS_BODY = {"error", "warning", "info", "success", "markdown", "caption", "toast", "write", "title", "header",
            "subheader"}
HAS_LABEL = {"button", "form_submit_button", "download_button", "link_button", "popover", "expander", "page_link",
             "text_input", "text_area", "number_input", "selectbox", "multiselect", "toggle", "checkbox", "pills",
             "radio", "segmented_control", "tabs", "metric", "spinner"}
MARKDOWN_KEYWORDS = {"body", "label", "help"}  # tooltips are Markdown too; a placeholder is not
HELPERS = {"md_escape", "md_line", "no_images", "source_line"}  # byok_core/md.py

# Values shown unescaped, reviewed: each is made by the app from fixed words, enums and numbers.
WORDS = "the app's fixed words"
NUMBERS = "a number or an amount the app formats"
REVIEWED: dict[str, dict[str, str]] = {
    "byok_ui/budget_view.py": {
        "whose[0].upper()": WORDS, "whose[1:]": WORDS, "status.warning": "budgets.BudgetStatus: words and amounts",
        "status.left": "budgets.BudgetStatus: words and amounts",
        "amounts": NUMBERS, "names": "usernames through md_escape, fixed words",
    },
    "byok_ui/chat_view.py": {
        "label": "keys_link(label): every caller passes fixed words", "len(sources)": NUMBERS, "n": NUMBERS,
        "message.version": NUMBERS, "message.versions": NUMBERS,
        "message": "show_status(): md_escape where it is assigned",
        "waiting(label, since)": "a provider's label and seconds",
        "caption(message.record)": "caption(): the model name goes through md_escape, the rest is words and numbers",
        "search_caption(message.search_record)": "a provider's label, words and an amount",
        "total_caption(*made)": NUMBERS, "stopped_early(message.record)": "fixed words and an amount",
    },
    "byok_ui/keys_panel.py": {
        "_ago(newest.replaced_at)": NUMBERS, "keys.KEEP_REPLACED.days": NUMBERS, "older": "masks through md_escape",
        "_title(slot, active)": "_title(): a provider's or preset's label, names through md_escape",
        "title": "the section titles, fixed words", "preset.label": WORDS,
        "who": "a preset's label, or the connection's name through md_escape",
        "_in_use(active)": "_in_use(): mask and label through md_escape, dates", "endpoint": "_endpoint(): md_escape",
        "slot.key_hint": "a preset's or the provider registry's fixed words", "words.KEY_USED[source]": WORDS,
        "kept": "_still_restorable() through md_escape where it is assigned",
        "line": "_watched(): keywatch.status_line() through md_escape where it is assigned",
    },
    "byok_ui/billcheck_view.py": {"provider.label": WORDS, "reconcile.ADMIN_KEYS_AT[provider]": WORDS,
                                  "when": "a date the page formats", "NOT_CHECKED": WORDS},
    "byok_ui/caps_view.py": {"shown().code": "an ISO currency code of currency.KNOWN"},
    "byok_ui/audit_view.py": {"shown[:1].upper()": NUMBERS, "shown[1:]": NUMBERS, "'s' * (total != 1)": WORDS},
    "byok_ui/first_run.py": {"mark": WORDS, "text": "the checklist's fixed steps", "label": WORDS},
    "byok_ui/presets_view.py": {"provider.label": WORDS, "FIELD_WORDS.get(field, field)": "an adapter's field name",
                                "field": "an adapter's field name"},
    "byok_ui/shell.py": {"spec.title": WORDS, "role": WORDS, "where": "md_escape, or fixed words",
                         "instead": "fixed words and a page's title"},
    "pages/admin.py": {"provider.label": WORDS, "words.ROLE[new_role]": WORDS, "accounts.USERNAME_RULES": WORDS},
    "pages/chat.py": {"fmt_when(when, today)": NUMBERS, "when": NUMBERS, "shown_group": WORDS,
                      "words.PAID_BY[s]": WORDS, "left": NUMBERS, "attachments.LIMITS": "fixed words and numbers"},
    "pages/search.py": {"count": NUMBERS, "'s' * (count != 1)": WORDS, "words.PAID_BY[record.key_source]": WORDS,
                        "money(record.cost_usd, unknown=chat_view.COST_UNKNOWN)": NUMBERS, "provider.label": WORDS,
                        "p.label": WORDS},
    "byok_ui/state.py": {"message": "show_flash(): md_escape where it is assigned"},
    "pages/sign_in.py": {"reason": "accounts.SESSION_ENDED: fixed sentences"},
    "pages/usage.py": {"pages": NUMBERS, "list(TITLES.values())": WORDS,
                       "PERIODS[period or usage.Period.THIS_MONTH]": WORDS,
                       "_span(since, until)": "dates the page formats",
                       "shown.code": "an ISO currency code of currency.KNOWN"},
    "pages/budgets.py": {"alerts.month_name(budgets.month_of(utcnow()))": "a month's name and year",
                         "shown.code": "an ISO currency code of currency.KNOWN", "p.label": WORDS},
    "pages/account.py": {"names": "providers' labels"},
}


def _unchecked(node: ast.expr, reviewed: dict[str, str]) -> list[str]:
    """The parts of a shown value that are neither fixed text, nor through a helper, nor reviewed."""
    if isinstance(node, ast.Constant):
        return []
    if isinstance(node, ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in HELPERS:
            return []
        if name == "join" and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Constant) \
                and len(node.args) == 1:
            return _unchecked(node.args[0], reviewed)
    parts: list[ast.expr] | None = None
    if isinstance(node, ast.GeneratorExp | ast.ListComp):
        parts = [node.elt]
    elif isinstance(node, ast.JoinedStr):
        parts = [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
    elif isinstance(node, ast.IfExp):
        parts = [node.body, node.orelse]
    elif isinstance(node, ast.BoolOp):
        parts = node.values
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        parts = [node.left, node.right]
    elif isinstance(node, ast.List | ast.Tuple):
        parts = node.elts
    if parts is not None:
        return [bad for part in parts for bad in _unchecked(part, reviewed)]
    source = ast.unparse(node)
    return [] if source in reviewed else [source]


def _shown_values(call: ast.Call) -> list[ast.expr]:
    """The arguments of a Streamlit call that the browser renders as Markdown."""
    name = call.func.attr if isinstance(call.func, ast.Attribute) else ""
    values = [k.value for k in call.keywords if k.arg in MARKDOWN_KEYWORDS]
    if call.args and (name in HAS_BODY or (name in HAS_LABEL and name != "page_link")):
        values.insert(0, call.args[0])
    return values


def _display_calls(path: Path) -> list[ast.Call]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in HAS_BODY | HAS_LABEL and ast.unparse(node.func.value) not in {"log", "logging"}:
            calls.append(node)
    return calls


SCANNED = sorted([*ROOT.glob("byok_ui/**/*.py"), *ROOT.glob("pages/*.py")])


def test_every_shown_value_is_fixed_text_escaped_or_reviewed():
    unchecked = []
    for path in SCANNED:
        rel = path.relative_to(ROOT).as_posix()
        for call in _display_calls(path):
            for value in _shown_values(call):
                unchecked += [f"{rel}:{call.lineno}: {bad}" for bad in _unchecked(value, REVIEWED.get(rel, {}))]
    assert not unchecked, "shown as Markdown without md_escape (or add it to REVIEWED with a reason):\n" + \
        "\n".join(unchecked)


def test_the_scan_finds_what_it_must():
    """The scan itself: it sees the pages' calls, and it flags a value from outside."""
    assert sum(len(_display_calls(p)) for p in SCANNED) > 100
    call = ast.parse('st.error(f"Deleted {user.username}", help=message)').body[0].value
    assert [bad for v in _shown_values(call) for bad in _unchecked(v, {})] == ["user.username", "message"]
    call = ast.parse('st.error(f"Deleted {md_escape(user.username)}", help=md_escape(message))').body[0].value
    assert [bad for v in _shown_values(call) for bad in _unchecked(v, {})] == []


def test_every_reviewed_value_is_still_there():
    """A reviewed entry that no call uses any more is dead weight: drop it."""
    seen: dict[str, set[str]] = {}
    for path in SCANNED:
        rel = path.relative_to(ROOT).as_posix()
        for call in _display_calls(path):
            for value in _shown_values(call):
                seen.setdefault(rel, set()).update(_unchecked(value, {}))
    stale = {rel: sorted(set(entries) - seen.get(rel, set())) for rel, entries in REVIEWED.items()}
    assert not any(stale.values()), stale


# --- planted text, on the pages ----------------------------------------------------------------

IMG = "![e](http://127.0.0.1:9/e1)"


def loads(markdown: str) -> list[str]:
    """The images a CommonMark renderer makes of ``markdown``."""
    return re.findall(r"<img[^>]*>", MarkdownIt("commonmark").render(markdown))


def shown(at) -> list[str]:
    """Every Markdown body and label on the page, the sidebar's included."""
    texts = [str(e.value) for kind in ("markdown", "caption", "error", "warning", "success", "info", "title",
                                       "subheader") for e in getattr(at, kind)]
    texts += [b.label for b in at.button] + [str(getattr(b.proto, "help", "")) for b in at.button]
    texts += [e.proto.label for e in at.get("expandable")]
    return texts


def assert_nothing_loads(at) -> None:
    assert not at.exception, at.exception
    texts = shown(at)
    assert texts and not [t for t in texts if loads(t)], [t for t in texts if loads(t)]


def test_a_providers_error_with_an_image_is_shown_as_text(app, rt, environ, monkeypatch):
    """A provider (or a member's own endpoint, or a gateway relaying its upstream) answers 400 with
    an image in its message: on Chat (the failed reply), Keys (Test) and Search (the error)."""
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-ann-key-1234")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.BRAVE, "brave-ann-key-1234")
    with FakeProvider(Provider.OPENAI, status=400, error_body=default_error_body(
            Provider.OPENAI, 400, f"Unsupported model {IMG}")) as openai, \
            FakeProvider(Provider.BRAVE, status=400, error_body=default_error_body(
                Provider.BRAVE, 400, f"Unsupported query {IMG}")) as brave:
        use_environment(monkeypatch, {**environ, **openai.env(), **brave.env()})
        chat = page_as(rt, ann)
        send_message(chat, rt, "hi")
        keys_page = page_as(rt, ann, "keys")
        keys_page.button(key="mykeys_openai_test").click().run()
        search = page_as(rt, ann, "search")
        search.text_input(key="search_query").set_value("example")
        search.session_state["search_providers"] = [Provider.BRAVE]
        search.button(key="FormSubmitter:search_form-Search").click().run()
    for at in (chat, keys_page, search):
        errors = [e.value for e in [*at.error, *at.warning] if "Unsupported" in e.value]
        assert errors and IMG in MarkdownIt("commonmark").render(errors[0]), shown(at)  # the words, as text
        assert_nothing_loads(at)


@pytest.fixture
def planted(rt):
    """An admin, and a member whose username was written straight into the database (as a
    single sign-on email or an old import could), over 80% of a budget."""
    boss, mem = make_user(rt, "boss", admin=True), make_user(rt, "mem")
    with rt.engine.begin() as conn:
        conn.execute(sa.update(table(User)).where(table(User).c.id == mem.id).values(username=f"mem{IMG}"))
    budgets.set_budget(rt, Actor.operator(), Owner.user(mem.id), 1.0)
    log_call(rt, user_id=mem.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.TEAM,
             input_tokens=100, output_tokens=10, latency_ms=5, cost_usd=0.9)
    return boss, mem


def test_a_planted_username_is_shown_as_text_in_the_banner_and_admin_messages(app, rt, planted):
    boss, _mem = planted
    at = page_as(rt, boss, "budgets")
    banner = next(w.value for w in at.warning if "Budgets at 80% or more" in w.value)
    assert "mem![e](http://127.0.0.1:9/e1)" in MarkdownIt("commonmark").render(banner)
    assert_nothing_loads(at)
    at = page_as(rt, boss, "admin")
    at.selectbox(key="admin_pick").set_value(f"mem{IMG}").run()
    at.button(key="admin_disable").click().run()
    assert at.success and "Disabled" in at.success[0].value
    assert_nothing_loads(at)


def test_a_planted_username_is_shown_as_text_to_its_owner(app, rt, planted):
    _boss, mem = planted
    for page in ("chat", "account"):
        assert_nothing_loads(page_as(rt, mem, page))
