"""Budgets (admins): monthly USD limits on calls paid by the team's or the server's keys."""

import pandas as pd
import streamlit as st

from byok_core import accounts, budgets, pricing
from byok_core.errors import ByokError
from byok_core.identity import Owner
from byok_core.providers import Provider, ProviderKind
from byok_ui import state

c = state.ctx()
if not c.user.is_admin:  # defence in depth: the shell never routes members here
    st.error("This page is for admins.")
    st.stop()
rt = c.rt

st.title("Budgets", anchor=False)
st.caption("A budget caps what calls on shared keys (the team's or the server's) may cost each calendar month "
           "(UTC). At 80% the user is warned; at 100% shared-key calls are refused until the 1st. "
           "Calls on a person's own keys never count and are never refused. Calls of unknown cost add nothing.")

state.show_flash("budgets")

report = budgets.spend_report(rt)
st.dataframe(pd.DataFrame({
    "Who": [line.name for line in report],
    "Monthly budget (USD)": [line.budget_usd for line in report],
    "Spent this month (USD)": [line.spent_usd for line in report],
    "Used": [line.used for line in report],
}), hide_index=True, key="budgets_report", column_config={
    "Monthly budget (USD)": st.column_config.NumberColumn(format="$%.2f", help="Empty: no budget"),
    "Spent this month (USD)": st.column_config.NumberColumn(format="$%.2f"),
    "Used": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0),
})

targets = {Owner.team(): "The whole team"} | {Owner.user(u.id): u.username for u in accounts.list_users(rt)}


def _apply(clear: bool) -> None:
    owner = st.session_state.budgets_target
    try:
        if clear:
            done = budgets.clear_budget(rt, c.actor, owner)
            message = "Budget removed." if done else "There was no budget to remove."
        else:
            budgets.set_budget(rt, c.actor, owner, float(st.session_state.budgets_usd))
            message = f"Budget for {targets[owner]} set."
    except ByokError as exc:
        state.flash("budgets", str(exc), ok=False)
    else:
        state.flash("budgets", message)


with st.container(border=True, horizontal=True, vertical_alignment="bottom"):
    st.selectbox("Budget for", list(targets), format_func=targets.get, key="budgets_target")
    st.number_input("USD per month", min_value=0.0, value=50.0, step=5.0, key="budgets_usd")
    st.button("Set budget", type="primary", on_click=_apply, args=(False,), key="budgets_set")
    st.button("Remove budget", on_click=_apply, args=(True,), key="budgets_clear")

st.subheader("Search prices", anchor=False)
st.caption("Searches are priced per request; change the prices on the Admin page (Search prices).")
searches = Provider.of_kind(ProviderKind.SEARCH)
st.dataframe(pd.DataFrame({
    "Provider": [p.label for p in searches],
    "USD per request": [pricing.search_price(rt, p) for p in searches],
    "Default": [p.spec.price_per_request for p in searches],
}), hide_index=True, key="budgets_prices")
