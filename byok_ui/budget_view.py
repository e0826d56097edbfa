"""What is left of the shared-key budgets, for everyone, and the admins' alert banner."""

from __future__ import annotations

import streamlit as st

from byok_core import budgets
from byok_core.currency import money
from byok_core.md import md_escape
from byok_ui.state import Ctx


def show_left(c: Ctx) -> None:
    """One line on what is left this month of the budgets on this person's shared-key calls, and a
    banner for admins while a budget is at 80% or more."""
    status = budgets.status(c.rt, c.user.id)
    if status is not None:
        used_up = [line for line in status.lines if line.exceeded]
        if used_up:
            whose = " and ".join("the team's" if line.owner.is_team else "your" for line in used_up)
            amounts = "; ".join(f"{money(ln.spent_usd, whole=True)} of {money(ln.budget_usd, whole=True)}"
                                for ln in used_up)
            st.error(f"{whose[0].upper()}{whose[1:]} monthly budget for shared keys is used up "
                     f"({amounts}): calls on "
                     "shared keys are refused until the 1st; your own API keys keep working.",
                     icon=":material/savings:")
        elif status.warning:
            st.warning(status.warning, icon=":material/savings:")
        else:
            st.caption(status.left)
    if c.user.is_admin:
        near = [line for line in budgets.alerting(c.rt) if line.owner not in {ln.owner for ln in
                                                                             (status.lines if status else ())}]
        if near:
            names = ", ".join("the whole team" if line.owner.is_team else md_escape(line.name) for line in near)
            st.warning(f"Budgets at 80% or more this month: {names}. See the Budgets page.",
                       icon=":material/notifications:")
