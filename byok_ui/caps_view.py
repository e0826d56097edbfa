"""Caps on your own keys, on the Keys page: this month's spend against each cap, and the form that
sets one (``byok_core.budgets.caps`` decides who may, and holds the calls to it)."""

from __future__ import annotations

import streamlit as st

from byok_core import currency, keys
from byok_core.budgets import caps
from byok_core.currency import money, shown
from byok_core.errors import ByokError
from byok_core.identity import Actor, KeySource
from byok_core.md import md_escape
from byok_core.providers import Provider
from byok_core.runtime import Runtime
from byok_ui import state

FORM = "caps"


def _save(rt: Runtime, actor: Actor, user_id: int) -> None:
    provider: Provider = st.session_state[f"{FORM}_provider"]
    shown_in = currency.current(rt)  # a callback runs before the page run, outside its currency
    try:
        cap = caps.set_cap(rt, actor, user_id, provider, st.session_state.get(f"{FORM}_amount", ""),
                           stop=bool(st.session_state.get(f"{FORM}_stop")), currency=shown_in)
    except ByokError as exc:
        state.flash(FORM, str(exc), ok=False)
        return
    rule = "calls that could pass it are refused" if cap.stop else "your replies warn from 80%"
    amount = money(cap.monthly_usd, whole=True, currency=shown_in)
    state.flash(FORM, f"Your own {provider.label} key is capped at {amount} a month; {rule}.")
    st.session_state[f"{FORM}_amount"] = ""


def _clear(rt: Runtime, actor: Actor, user_id: int, provider: Provider) -> None:
    try:
        caps.clear_cap(rt, actor, user_id, provider)
    except ByokError as exc:
        state.flash(FORM, str(exc), ok=False)
        return
    state.flash(FORM, f"Your own {provider.label} key has no cap now.")


def render(rt: Runtime, actor: Actor, user_id: int) -> None:
    """The caps, each with Remove, and the form for one provider with an own key."""
    st.subheader("Caps on your own keys", anchor=False)
    st.caption("Your own keys are not limited unless you set a cap: a monthly amount per provider (calendar "
               "months in UTC; it starts from what this month's calls on that key have cost). From 80% your "
               "replies say so; with **Stop calls at the cap** a call that could pass it is refused.")
    state.show_flash(FORM)
    held = caps.caps_of(rt, user_id)
    for provider, cap in held.items():
        with st.container(horizontal=True, vertical_alignment="center", key=f"{FORM}_{provider.value}"):
            rule = "stops calls" if cap.stop else "only warns"
            line = (f"{money(cap.spent_usd, whole=True)} of {money(cap.monthly_usd, whole=True)} this month "
                    f"({cap.used:.0%}), {rule}")
            st.markdown(f"**{md_escape(provider.label)}**: {md_escape(line)}", width="stretch")
            st.button("Remove", key=f"{FORM}_clear_{provider.value}", icon=":material/close:",
                      on_click=_clear, args=(rt, actor, user_id, provider))
    own = [p for p, (source, _) in keys.payers(rt, user_id).items() if source is KeySource.USER]
    if not own:
        st.caption("Save a key of your own above to cap it.")
        return
    with st.form(f"{FORM}_form", border=True, enter_to_submit=True):
        st.selectbox("Provider", own, format_func=lambda p: p.label, key=f"{FORM}_provider")
        st.text_input(f"Monthly cap in {shown().code}", key=f"{FORM}_amount", placeholder="for example 20")
        st.checkbox("Stop calls at the cap (otherwise it only warns)", key=f"{FORM}_stop", value=True)
        st.form_submit_button("Save cap", icon=":material/savings:", on_click=_save, args=(rt, actor, user_id))
