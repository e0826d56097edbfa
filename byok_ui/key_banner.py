"""The banner about a key that stopped working, expired or is about to (``keywatch.problems``): above
every page, for its owner (the team's keys: for admins), until dismissed; each problem once."""

from __future__ import annotations

import streamlit as st

from byok_core import keywatch
from byok_core.keywatch import Problem
from byok_core.md import md_escape
from byok_ui.state import Ctx


def _dismiss(c: Ctx, problem: Problem) -> None:
    keywatch.dismiss(c.rt, c.actor, problem)


def show(c: Ctx) -> None:
    """One warning per problem, each with Dismiss."""
    for problem in keywatch.problems(c.rt, c.actor):
        with st.container(horizontal=True, vertical_alignment="center", key=f"key_banner_{problem.key_id}"):
            st.warning(md_escape(problem.text), icon=":material/key_off:", width="stretch")
            st.button("Dismiss", key=f"key_banner_dismiss_{problem.key_id}", icon=":material/close:",
                      on_click=_dismiss, args=(c, problem), help="Hide this for good; a new problem shows again.")
