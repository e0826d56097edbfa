"""The keys component: one form per provider, the saved-keys table, Test and Delete.

Used by the Keys page (the signed-in user's own keys) and the Admin page (the team's keys).
Keys are write-only: the password input is cleared on submit and only masks are ever shown.
Actions run in widget callbacks, before the page is drawn, so the table is always current.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from byok_core import keys, keytest, words
from byok_core.errors import ByokError
from byok_core.identity import Actor, KeySource, Owner
from byok_core.keys import KeyInfo
from byok_core.providers import Provider, ProviderKind
from byok_core.runtime import Runtime
from byok_ui import state
from byok_ui.state import fmt_time


def _card(prefix: str, provider: Provider) -> str:
    """The flash name of a provider's card: outcomes show next to the button that was pressed."""
    return f"{prefix}_{provider.value}"


def _save(rt: Runtime, actor: Actor, owner: Owner, provider: Provider, prefix: str) -> None:
    form = f"{prefix}_{provider.value}"
    raw = st.session_state.get(f"{form}_key", "")
    label = st.session_state.get(f"{form}_label", "")
    base_url = st.session_state.get(f"{form}_url", "") or None
    st.session_state[f"{form}_key"] = ""  # never keep or send the key back to the browser
    try:
        info = keys.store(rt, actor, owner, provider, raw, label=label, base_url=base_url)
    except ByokError as exc:
        state.flash(_card(prefix, provider), f"{provider.label}: {exc}", ok=False)
    else:
        state.flash(_card(prefix, provider), f"Saved the {provider.label} key {info.mask}.")


def _test(rt: Runtime, actor: Actor, owner: Owner, provider: Provider, prefix: str) -> None:
    try:
        message = keytest.test_key(rt, actor, owner, provider)
    except ByokError as exc:
        state.flash(_card(prefix, provider), f"{provider.label} test failed: {exc}", ok=False)
    else:  # a rejected key is an answer, not an exception: say it plainly either way
        state.flash(_card(prefix, provider), f"{provider.label}: {message}", ok=message.startswith("OK"))


def _delete(rt: Runtime, actor: Actor, owner: Owner, key_id: str, prefix: str) -> None:
    st.session_state.pop(f"{prefix}_confirm", None)
    try:
        keys.delete(rt, actor, owner, key_id)
    except ByokError as exc:
        state.flash(prefix, str(exc), ok=False)
    else:
        state.flash(prefix, "The key was deleted.")


def _ask_delete(prefix: str) -> None:
    st.session_state[f"{prefix}_confirm"] = st.session_state.get(f"{prefix}_pick")


def _cancel_delete(prefix: str) -> None:
    st.session_state.pop(f"{prefix}_confirm", None)


def keys_table(infos: list[KeyInfo]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Provider": [i.provider.label for i in infos],
            "Label": [i.label for i in infos],
            "Key": [i.mask for i in infos],
            "Status": ["active" if i.active else "replaced" for i in infos],
            "Base URL": [i.base_url or "" for i in infos],
            "Created": [fmt_time(i.created_at) for i in infos],
            "Last used": [fmt_time(i.last_used_at) for i in infos],
            "Last test": [words.STATUS[i.last_test_status] if i.last_test_status else "" for i in infos],
        }
    )


def _describe(info: KeyInfo) -> str:
    status = "active" if info.active else "replaced"
    label = f" “{info.label}”" if info.label else ""
    return f"{info.provider.label} · {info.mask}{label} · {status} · {fmt_time(info.created_at)}"


def _provider_card(rt: Runtime, actor: Actor, owner: Owner, provider: Provider, active: KeyInfo | None,
                   prefix: str, source: KeySource | None) -> None:
    form = f"{prefix}_{provider.value}"
    with st.container(border=True, key=f"{form}_card"):
        st.markdown(f"**{provider.label}**")
        state.show_flash(_card(prefix, provider))
        if active is not None:
            label = f" “{active.label}”" if active.label else ""
            st.caption(f":material/key: Saved key `{active.mask}`{label}, last used {fmt_time(active.last_used_at)}")
        elif source is not None and source is not KeySource.USER:
            st.caption(f"No key saved here. Calls now use {words.KEY_USED[source]}.")
        else:
            st.caption("No key saved." + (f" Hint: {provider.spec.key_hint}." if provider.spec.key_hint else ""))
        with st.expander("Replace key" if active else "Add key", icon=":material/edit:"), \
                st.form(form, clear_on_submit=True, border=False):
                st.text_input("API key", type="password", key=f"{form}_key", autocomplete="off",
                              placeholder=provider.spec.key_hint or "paste the key",
                              help="Stored encrypted. It is never shown again, only a mask.")
                st.text_input("Label (optional)", key=f"{form}_label", max_chars=100)
                if provider.user_supplies_url:
                    st.text_input("Base URL", key=f"{form}_url", placeholder="https://openrouter.ai/api/v1",
                                  help="The endpoint's OpenAI-compatible API root. Only your own key is ever "
                                       "sent to a URL typed here.")
                st.form_submit_button("Save key", type="primary", on_click=_save,
                                      args=(rt, actor, owner, provider, prefix))
        if active is not None:
            st.button("Test", key=f"{form}_test", icon=":material/network_check:",
                      on_click=_test, args=(rt, actor, owner, provider, prefix),
                      help="Checks the key with the provider's cheapest authenticated call.")


def render(rt: Runtime, actor: Actor, owner: Owner, *, prefix: str, user_id: int | None = None) -> None:
    """The whole keys component for ``owner``. ``user_id`` adds the 'where keys come from' view."""
    state.show_flash(prefix)
    infos = keys.list_keys(rt, actor, owner)
    active = {i.provider: i for i in infos if i.active}
    sources = keys.sources(rt, user_id) if user_id is not None else {}

    st.subheader("Saved keys", anchor=False)
    if infos:
        st.dataframe(keys_table(infos), hide_index=True, key=f"{prefix}_table",
                     alt="Saved keys: provider, label, masked key, status, dates")
        by_id = {i.id: i for i in infos}
        confirm = st.session_state.get(f"{prefix}_confirm")
        if confirm in by_id:
            st.warning(f"Delete {_describe(by_id[confirm])}? This cannot be undone.", icon=":material/warning:")
            with st.container(horizontal=True):
                st.button("Yes, delete", type="primary", key=f"{prefix}_yes", on_click=_delete,
                          args=(rt, actor, owner, confirm, prefix))
                st.button("Cancel", key=f"{prefix}_no", on_click=_cancel_delete, args=(prefix,))
        else:
            with st.container(horizontal=True, vertical_alignment="bottom"):
                st.selectbox("Key to delete", list(by_id), format_func=lambda k: _describe(by_id[k]),
                             key=f"{prefix}_pick", width=520)
                st.button("Delete…", key=f"{prefix}_del", icon=":material/delete:", on_click=_ask_delete,
                          args=(prefix,))
    else:
        st.caption("No keys saved yet.")

    if sources:
        st.subheader("Where each provider's key comes from today", anchor=False)
        st.dataframe(
            pd.DataFrame({"Provider": [p.label for p in sources],
                          "Kind": [words.KIND[p.kind] for p in sources],
                          "Key used": [words.KEY_USED[s] for s in sources.values()]}),
            hide_index=True, key=f"{prefix}_sources", alt="Which key each provider would use now",
        )

    for kind, title in ((ProviderKind.CHAT, "Chat providers"), (ProviderKind.SEARCH, "Search providers")):
        st.subheader(title, anchor=False)
        providers = Provider.of_kind(kind)
        columns = st.columns(2)
        for index, provider in enumerate(providers):
            with columns[index % 2]:
                _provider_card(rt, actor, owner, provider, active.get(provider), prefix, sources.get(provider))
