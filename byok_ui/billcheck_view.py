"""The Usage page's "Checked against the bill" section, for admins: per provider whose bill can be
read, the last check's headline and the lines that need a look, "Check now", and the billing key's
form (``byok_core.reconcile`` decides who may, tries the key and keeps it sealed)."""

from __future__ import annotations

import streamlit as st

from byok_core import reconcile
from byok_core.adapters import billing
from byok_core.billcheck import Verdict
from byok_core.errors import ByokError
from byok_core.identity import Actor
from byok_core.keys import day
from byok_core.md import md_escape
from byok_core.providers import Provider
from byok_core.runtime import Runtime
from byok_ui import state
from byok_ui.chat_view import keys_link

FORM = "billcheck"
NOT_CHECKED = "Google has no API that reports usage per API key, so Gemini spend cannot be checked against its bill."


def _save(rt: Runtime, actor: Actor, provider: Provider) -> None:
    field = f"{FORM}_key_{provider.value}"
    try:
        info = reconcile.save_key(rt, actor, provider, st.session_state.get(field, ""))
    except ByokError as exc:
        state.flash(FORM, str(exc), ok=False)
        return
    finally:
        st.session_state[field] = ""  # keys are write-only: the field is emptied whichever way it went
    state.flash(FORM, f"Saved the {provider.label} billing key {info.mask}: it works. Check now to compare.")


def _check(rt: Runtime, actor: Actor, provider: Provider) -> None:
    try:
        result = reconcile.check_now(rt, actor, provider)
    except ByokError as exc:
        state.flash(FORM, str(exc), ok=False)
        return
    state.flash(FORM, result.headline, ok=result.problem is None)


def _provider(rt: Runtime, actor: Actor, provider: Provider) -> None:
    got = reconcile.report(rt, actor, provider)
    st.markdown(f"**{provider.label}**")
    if got.key is None:
        st.caption(f"No billing key: save an {provider.label} Admin key ({reconcile.ADMIN_KEYS_AT[provider]}) to "
                   "check this app's count against the bill. It is used only to read the bill.")
    else:
        when = "not checked yet" if got.key.checked_at is None else f"last checked {day(got.key.checked_at.date())}"
        st.caption(f"Billing key {md_escape(got.key.mask)} · {when} · checked once a day")
        if got.headline is not None:
            (st.error if got.key.problem else st.warning if got.loud else st.success)(md_escape(got.headline))
        for line in got.loud:
            st.error(md_escape(line.reason), icon=":material/report:")
        if any(line.verdict == Verdict.OUTSIDE for line in got.loud):
            keys_link("Replace the key on the Keys page (a team key: Admin → Team keys)")
        st.button("Check now", key=f"{FORM}_check_{provider.value}", icon=":material/fact_check:",
                  on_click=_check, args=(rt, actor, provider))
    with st.form(f"{FORM}_form_{provider.value}", border=False, enter_to_submit=True):
        st.text_input(f"{provider.label} Admin key", type="password", key=f"{FORM}_key_{provider.value}",
                      placeholder="replaces the saved one" if got.key else "sk-admin-…" if provider is
                      Provider.OPENAI else "sk-ant-admin…", autocomplete="off")
        st.form_submit_button("Save billing key", icon=":material/key:", on_click=_save, args=(rt, actor, provider))


def _openrouter(rt: Runtime, actor: Actor) -> None:
    """OpenRouter: no billing key; each connection's key reads its own count of the month's spend."""
    got = reconcile.report(rt, actor, reconcile.OPENROUTER)
    st.markdown("**OpenRouter**")
    st.caption("No billing key needed: each OpenRouter connection's key reads OpenRouter's own count of what it "
               "spent this month, set beside what this app logged on it. Checked once a day.")
    if got.headline is not None:
        (st.warning if got.loud else st.success)(md_escape(got.headline))
    for line in got.loud:
        st.error(md_escape(line.reason), icon=":material/report:")
    if any(line.verdict == Verdict.OUTSIDE for line in got.loud):
        keys_link("Replace the key on the Keys page (a team key: Admin → Team keys)")
    st.button("Check now", key=f"{FORM}_check_openrouter", icon=":material/fact_check:",
              on_click=_check, args=(rt, actor, reconcile.OPENROUTER))


def render(rt: Runtime, actor: Actor) -> None:
    """The section; only for admins (the core refuses anyone else)."""
    with st.expander("Checked against the providers' bills", icon=":material/receipt_long:", expanded=True):
        state.show_flash(FORM)
        for provider in billing.READS:
            _provider(rt, actor, provider)
        _openrouter(rt, actor)
        st.caption(NOT_CHECKED)
