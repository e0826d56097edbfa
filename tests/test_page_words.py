"""Every page, as an admin and as a member, over data with every status, payer, provider and audit
action: what the page shows — text, labels, choices, metrics and every table cell (which a browser
draws on a canvas) — never holds a raw enum value, a column name or a "None"
(tests/e2e/test_e2e_words.py reads the same in Chromium, chart axes included)."""

from __future__ import annotations

import pandas as pd
import pytest
from apptest import app_test, drawn, make_user, open_page, page_as, sign_in
from callhelpers import PAGES, RAW, seed_every_kind

from byok_core import accounts, conversations, limits
from byok_core.identity import Actor

ADMIN, MEMBER = ("wendy", "wendy password 1"), ("mia", "mia password 1")
_TEXT_ELEMENTS = ("title", "header", "subheader", "markdown", "caption", "text", "info", "warning", "error",
                  "success", "exception")
_WIDGETS = ("button", "selectbox", "multiselect", "radio", "text_input", "number_input", "text_area", "toggle",
            "checkbox", "date_input", "tabs", "expander")


def shown_cells(frame: pd.DataFrame) -> list[str]:
    """The headers and cells as a table shows them: an empty cell reads "None", in a column of text
    or of numbers alike (Streamlit's tables draw a missing value as a grey "None")."""
    cells = [str(c) for c in frame.columns]
    for name in frame.columns:
        for value in frame[name]:
            missing = value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value))
            cells.append("None" if missing else str(value))
    return cells


def shown(at) -> list[str]:
    """Everything an AppTest run put on the page, as text."""
    found: list[str] = []
    for kind in _TEXT_ELEMENTS:
        found += [str(e.value) for e in getattr(at, kind)]
    for kind in _WIDGETS:
        for widget in getattr(at, kind):
            found += [str(getattr(widget, "label", "") or ""), str(getattr(widget, "help", "") or "")]
            found += [str(o) for o in getattr(widget, "options", []) or []]
    for metric in at.metric:
        found += [metric.label, str(metric.value)]
    for frame in at.dataframe:
        found += shown_cells(frame.value) + shown_cells(drawn(frame))
    return found


@pytest.mark.parametrize("who", ["admin", "member"])
def test_every_page_speaks_plain_words(app, rt, who):
    seed_every_kind(rt, ADMIN, MEMBER)
    mia = accounts.get_user(rt, MEMBER[0])
    limits.set_person_limit(rt, Actor.operator(), mia.id, 0)  # the Budgets page's table of people's own limits
    user = accounts.get_user(rt, (ADMIN if who == "admin" else MEMBER)[0])
    raw: dict[str, list[str]] = {}
    for title in PAGES[who]:
        at = app_test()
        sign_in(at, rt, user)
        if title == "Chat" and who == "member":  # her conversation with a failed turn
            at.query_params["c"] = str(conversations.list_conversations(rt, user.id)[0].id)
        at.run()
        open_page(at, title.lower()).run()
        assert not at.exception, (title, at.exception)
        bad = sorted({m.group(0) for text in shown(at) for m in RAW.finditer(text)})
        if bad:
            raw[title] = bad
    assert not raw, f"raw values on screen ({who}): {raw}"


def test_admin_messages_name_people_without_python_quotes(app, rt):
    """What the Admin page says after each action names the person as written: "Created the
    account carol.", never "Created 'carol'."."""
    seed_every_kind(rt, ADMIN, MEMBER)
    at = app_test()
    sign_in(at, rt, accounts.get_user(rt, ADMIN[0]))
    at.run()
    open_page(at, "admin").run()
    at.text_input(key="admin_new_name").set_value("carol")
    at.text_input(key="admin_new_pw").set_value("carol password 1")
    at.button(key="FormSubmitter:admin_create-Create user").click().run()
    said = [e.value for e in at.success]
    at.selectbox(key="admin_pick").select("carol").run()
    for button in ("admin_role", "admin_disable", "admin_enable"):
        at.button(key=button).click().run()
        said += [e.value for e in at.success]
    at.text_input(key="admin_rename_to").set_value("carla")
    at.button(key="FormSubmitter:admin_rename-Rename").click().run()
    said += [e.value for e in at.success]
    assert said == ["Created the account carol.", "carol is now an admin.", "Disabled carol; they are signed out.",
                    "Enabled carol.", "Renamed carol to carla."]


@pytest.mark.parametrize("who", ["admin", "member"])
def test_the_usage_periods_search_marks_and_audit_filters_speak_plain_words(app, rt, who):
    """Issue 22's screens: Usage over each period (its headline and the admins' spend by person),
    Search with providers marked as having no key, and the audit log narrowed by who and what (the
    first-run checklist: the next test)."""
    seed_every_kind(rt, ADMIN, MEMBER)
    user = accounts.get_user(rt, (ADMIN if who == "admin" else MEMBER)[0])
    at = app_test()
    sign_in(at, rt, user)
    at.run()
    seen: list[str] = []
    open_page(at, "usage").run()
    for period in ("last_month", "last_30_days", "days", "this_month"):
        at.button_group(key="usage_period").set_value(period).run()
        assert not at.exception, (period, at.exception)
        seen += shown(at)
    assert "On shared keys" in seen
    open_page(at, "search").run()
    seen += shown(at) + [str(o) for group in at.button_group for o in group.options]  # the pills' labels too
    assert any("(no key)" in text for text in seen) and any(text.startswith(":material/key_off: No key")
                                                             for text in seen)
    if who == "admin":
        open_page(at, "admin").run()
        at.multiselect(key="audit_who").set_value([ADMIN[0]]).run()
        at.multiselect(key="audit_what").set_value(["key.store", "budget.set"]).run()
        seen += shown(at)
        assert any("events, newest first" in text for text in seen)
    bad = sorted({m.group(0) for text in seen for m in RAW.finditer(text)})
    assert not bad, f"raw values on screen ({who}): {bad}"


def test_the_first_run_checklist_speaks_plain_words(app, rt):
    """The admin's checklist on every page until done: its steps and links (some done, some not)."""
    root = make_user(rt, "root", admin=True)
    seen: list[str] = []
    for title in PAGES["admin"]:
        at = page_as(rt, root, title.lower())
        seen += shown(at) + [str(link.label) for link in at.get("page_link")]
    assert "**Get your team started**" in seen and "Budgets" in seen
    bad = sorted({m.group(0) for text in seen for m in RAW.finditer(text)})
    assert not bad, f"raw values on screen: {bad}"
