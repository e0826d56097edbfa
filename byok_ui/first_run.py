"""The first-run checklist an admin sees above every page until its steps are done or they dismiss it
(byok_core.onboarding keeps both in the database): a key, members, a budget, each with its page."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from byok_core import onboarding
from byok_ui.state import Ctx

PAGES = Path(__file__).resolve().parent.parent / "pages"


def _dismiss(c: Ctx) -> None:
    if c.user.id is not None:
        onboarding.dismiss_checklist(c.rt, c.user.id)


def _step(done: bool, text: str, links: list[tuple[str, str, str]]) -> None:
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        mark = ":material/check_circle:" if done else ":material/radio_button_unchecked:"
        st.markdown(f"{mark} {'~~' + text + '~~' if done else text}", width="content")
        if not done:
            for script, label, icon in links:
                st.page_link(str(PAGES / script), label=label, icon=icon)


def show_checklist(c: Ctx) -> None:
    """For an admin: the steps that get a team going, ticked from what exists, with a Dismiss button."""
    if not c.user.is_admin or c.user.id is None:
        return
    steps = onboarding.checklist(c.rt, c.user.id)
    if steps is None:
        return
    with st.container(border=True, key="first_run_checklist"):
        st.markdown("**Get your team started**")
        _step(steps.has_key, "Add a key that pays for calls: a team key, or your own",
              [("admin.py", "Team keys (Admin)", ":material/admin_panel_settings:"),
               ("keys.py", "Your keys", ":material/key:")])
        _step(steps.has_members, "Invite members: create their accounts",
              [("admin.py", "Users (Admin)", ":material/group_add:")])
        _step(steps.has_budget, "Set a monthly budget on the shared keys",
              [("budgets.py", "Budgets", ":material/savings:")])
        st.button("Dismiss", key="first_run_dismiss", icon=":material/close:", on_click=_dismiss, args=(c,),
                  help="Hide this list for good (in every browser); the pages stay in the menu.")
