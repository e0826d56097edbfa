"""The keys component: one card per provider, and per OpenAI-compatible connection, with everything
about its key; and the form that adds a connection, from a preset or custom.

Used by the Keys page (the signed-in user's own keys) and the Admin page (the team's keys). A card
shows the key in use (mask, label, dates), what the daily key watch found ("Last checked …: works",
"Stopped working on …"), its expiry date, its endpoint, what a key looks like and where to get one;
it holds Check now, Delete (asks first, with Cancel), Restore for the key replaced last, the expiry
date, and the form that adds or replaces the key. Saving tests the key first (``keytest.save``): a rejected key
is not saved, and when the provider cannot be reached the card offers "Save without testing".

Keys are write-only: the key field is emptied whenever a form is sent and only masks are shown. A
key that waits for "Save without testing" is held only in that button's callback arguments (a
``Secret``, on the server), so it is gone as soon as the button is no longer on screen. Actions run
in widget callbacks, before the page is drawn, so every card is current.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd
import streamlit as st

from byok_core import connections, keys, keytest, keywatch, words
from byok_core.clock import utcnow
from byok_core.connections import PRESETS, ConnectionInfo
from byok_core.errors import ByokError
from byok_core.identity import Actor, KeySource, Owner
from byok_core.keys import KeyInfo
from byok_core.md import md_escape
from byok_core.providers import Provider, ProviderKind
from byok_core.runtime import Runtime
from byok_core.secret import Secret
from byok_ui import state
from byok_ui.state import fmt_time


@dataclass(frozen=True)
class Slot:
    """What a card holds the key of: a provider, or an OpenAI-compatible connection."""

    provider: Provider
    connection: ConnectionInfo | None = None

    def form(self, prefix: str) -> str:
        """The name of the card, its form and widgets; outcomes show on the card that was used."""
        return f"{prefix}_{self.provider.value}" if self.connection is None else f"{prefix}_conn_{self.connection.id}"

    @property
    def name(self) -> str:
        return self.connection.name if self.connection is not None else self.provider.label

    @property
    def preset(self) -> connections.Preset | None:
        return PRESETS.get(self.connection.preset) if self.connection is not None else None

    @property
    def key_hint(self) -> str:
        return self.preset.key_hint if self.preset is not None else self.provider.spec.key_hint

    @property
    def key_url(self) -> str | None:
        return self.preset.key_url if self.preset is not None else self.provider.spec.key_url

    @property
    def connection_id(self) -> str | None:
        return self.connection.id if self.connection is not None else None

    def key_name(self, info: KeyInfo) -> str:
        """What a key of this card is called in messages: its connection's name, else ``KeyInfo.name``."""
        return self.connection.name if self.connection is not None else info.name


@dataclass(frozen=True)
class _Untested:
    """A key whose test could not be made, waiting for "Save without testing"."""

    secret: Secret  # repr shows only the mask
    label: str
    base_url: str | None


def _save(rt: Runtime, actor: Actor, owner: Owner, slot: Slot, prefix: str,
          untested: _Untested | None = None) -> None:
    form = slot.form(prefix)
    if untested is None:
        raw = st.session_state.get(f"{form}_key", "")
        label = st.session_state.get(f"{form}_label", "")
        base_url = st.session_state.get(f"{form}_url", "") or None
    else:
        raw, label, base_url = untested.secret.reveal(), untested.label, untested.base_url
    st.session_state[f"{form}_key"] = ""  # never keep or send the key back to the browser
    try:
        outcome = keytest.save(rt, actor, owner, slot.provider, raw, label, base_url, test=untested is None,
                               connection=slot.connection_id)
    except ByokError as exc:  # input that cannot be saved: the form stays open with what was typed
        state.flash(form, str(exc), ok=False)
        st.session_state[f"{form}_open"] = True
        return
    state.flash(form, outcome.message, ok=outcome.ok)
    if outcome.saved is not None:
        for field in ("label", "url"):  # drawn again empty (the base URL: the new key's)
            st.session_state.pop(f"{form}_{field}", None)
        st.session_state[f"{form}_open"] = False
        return
    st.session_state[f"{form}_open"] = True
    if outcome.can_save_untested:
        st.session_state[f"_untested_{form}"] = _Untested(Secret(raw.strip()), label, base_url)


def _test(rt: Runtime, actor: Actor, owner: Owner, slot: Slot, prefix: str) -> None:
    form = slot.form(prefix)
    try:
        outcome = keywatch.check(rt, actor, owner, slot.provider, connection=slot.connection_id)
    except ByokError as exc:
        state.flash(form, str(exc), ok=False)
    else:
        state.flash(form, outcome.message, ok=outcome.ok)


def _set_expiry(rt: Runtime, actor: Actor, owner: Owner, info: KeyInfo, form: str, remove: bool = False) -> None:
    value = None if remove else st.session_state.get(f"{form}_expires")
    try:
        keys.set_expiry(rt, actor, owner, info.id, value if isinstance(value, date) else None)
    except ByokError as exc:
        state.flash(form, str(exc), ok=False)
    else:
        state.flash(form, f"The {info.name} key {info.mask} is used through {keys.day(value)} (UTC), then no more."
                    if isinstance(value, date) else f"The {info.name} key {info.mask} no longer expires.")
    st.session_state.pop(f"{form}_expires", None)


def _ask_delete(form: str, key_id: str) -> None:
    st.session_state[f"{form}_confirm"] = key_id


def _cancel_delete(form: str) -> None:
    st.session_state.pop(f"{form}_confirm", None)


def _delete(rt: Runtime, actor: Actor, owner: Owner, slot: Slot, info: KeyInfo, form: str) -> None:
    st.session_state.pop(f"{form}_confirm", None)
    try:
        left = keys.delete(rt, actor, owner, info.id)
    except ByokError as exc:
        state.flash(form, str(exc), ok=False)
    else:
        state.flash(form, f"Deleted the {slot.key_name(info)} key {info.mask}." +
                    (f" {_still_restorable(left)}" if left else ""))


def _still_restorable(left: KeyInfo) -> str:
    """That a replaced key of the same provider can still be put back, and until when."""
    until = keys.restorable_until(left)
    return (f"The key {left.mask} it replaced can still be restored with the button below" +
            (f" until {until:%B} {until.day}" if until else "") + "; after that it is deleted.")


def _restore(rt: Runtime, actor: Actor, owner: Owner, slot: Slot, info: KeyInfo, current: KeyInfo | None,
             form: str) -> None:
    try:
        restored = keys.restore(rt, actor, owner, info.id)
    except ByokError as exc:
        state.flash(form, str(exc), ok=False)
        return
    days = keys.KEEP_REPLACED.days
    state.flash(form, f"The {slot.key_name(restored)} key {restored.mask} is in use again" + (
        f", and the key {current.mask} it replaced can be restored for {days} days." if current else "."))


def _ago(when: datetime) -> str:
    days = (utcnow() - when).days
    return "less than a day ago" if days < 1 else "1 day ago" if days == 1 else f"{days} days ago"


def _in_use(info: KeyInfo) -> str:
    label = f" “{md_escape(info.label)}”" if info.label else ""
    return (f":material/key: Saved key {md_escape(info.mask)}{label} · added {fmt_time(info.created_at)} · "
            f"last used {fmt_time(info.last_used_at)}")


def _watched(info: KeyInfo) -> None:
    """What the key watch found, as a warning when the key stopped working or expired."""
    line = md_escape(keywatch.status_line(info))
    if info.failing_since is not None or info.expired:
        st.warning(line, icon=":material/key_off:")
    else:
        st.caption(f":material/monitor_heart: {line}")


def _endpoint(rt: Runtime, slot: Slot, active: KeyInfo | None) -> str | None:
    """The endpoint worth showing: a connection's own, or an operator's override."""
    provider = slot.provider
    if slot.connection is not None:
        return f"Endpoint: {md_escape(slot.connection.base_url)}"
    if provider.user_supplies_url:
        return f"Endpoint: {md_escape(active.base_url)}" if active is not None and active.base_url else None
    url = rt.settings.base_urls.get(provider)
    if not url or url == provider.spec.default_base_url:
        return None
    return f"Endpoint: {md_escape(url)} (set by the server's operator)"


def _outcome(rt: Runtime, actor: Actor, owner: Owner, slot: Slot, prefix: str) -> None:
    """The card's last outcome, once, with "Save without testing" when the test could not be made."""
    form = slot.form(prefix)
    state.show_flash(form)
    untested = st.session_state.pop(f"_untested_{form}", None)
    if isinstance(untested, _Untested):
        st.button("Save without testing", key=f"{form}_untested", icon=":material/save:", on_click=_save,
                  args=(rt, actor, owner, slot, prefix, untested),
                  help=f"Saves the key {md_escape(untested.secret.mask)} as it is; press Check now later to check it.")


def _actions(rt: Runtime, actor: Actor, owner: Owner, slot: Slot, prefix: str, active: KeyInfo,
             replaced: list[KeyInfo]) -> None:
    form = slot.form(prefix)
    if st.session_state.get(f"{form}_confirm") == active.id:
        kept = f" {md_escape(_still_restorable(replaced[0]))}" if replaced else ""
        st.warning(f"Delete the {md_escape(slot.key_name(active))} key "
                   f"{md_escape(active.mask)}? This cannot be undone.{kept}",
                   icon=":material/warning:")
        with st.container(horizontal=True):
            st.button("Yes, delete", key=f"{form}_yes", icon=":material/delete:", on_click=_delete,
                      args=(rt, actor, owner, slot, active, form))
            st.button("Cancel", key=f"{form}_no", on_click=_cancel_delete, args=(form,))
        return
    with st.container(horizontal=True):
        if not active.expired:  # an expired key is not used, so not checked either
            st.button("Check now", key=f"{form}_test", icon=":material/network_check:",
                      on_click=_test, args=(rt, actor, owner, slot, prefix),
                      help="Checks the key with the provider's cheapest authenticated call, as the daily check does.")
        with st.popover("Expiry date", icon=":material/event:", key=f"{form}_expiry"):
            # an expired key's date is past the earliest one the field offers: it starts empty (pick a new day)
            st.date_input("Last day the key is used (UTC)", value=None if active.expired else active.expires_on,
                          min_value=utcnow().date(),
                          format="YYYY-MM-DD", key=f"{form}_expires", on_change=_set_expiry,
                          args=(rt, actor, owner, active, form),
                          help="For a contractor's or a trial's key: after this day it is not used, and you are "
                               "told a week before.")
            if active.expires_on is not None:
                st.button("No expiry", key=f"{form}_noexpiry", on_click=_set_expiry,
                          args=(rt, actor, owner, active, form, True))
        st.button("Delete", key=f"{form}_del", icon=":material/delete:", on_click=_ask_delete, args=(form, active.id))


def _replaced(rt: Runtime, actor: Actor, owner: Owner, slot: Slot, prefix: str, active: KeyInfo | None,
              replaced: list[KeyInfo]) -> None:
    """Restore for the key replaced last; the older ones listed."""
    if not replaced:
        return
    form, newest = slot.form(prefix), replaced[0]
    assert newest.replaced_at is not None
    st.button(f"Restore the key {md_escape(newest.mask)} replaced {_ago(newest.replaced_at)}", key=f"{form}_restore",
              icon=":material/undo:", on_click=_restore, args=(rt, actor, owner, slot, newest, active, form),
              help=f"Makes that key the one in use again. Replaced keys are kept, encrypted, for "
                   f"{keys.KEEP_REPLACED.days} days.")
    if len(replaced) > 1:
        older = ", ".join(f"{md_escape(i.mask)} ({_ago(i.replaced_at)})" for i in replaced[1:] if i.replaced_at)
        st.caption(f"Older replaced keys, kept for {keys.KEEP_REPLACED.days} days after they were replaced: {older}.")


def _key_form(rt: Runtime, actor: Actor, owner: Owner, slot: Slot, prefix: str,
              active: KeyInfo | None) -> None:
    form, provider = slot.form(prefix), slot.provider
    typed_url = provider.user_supplies_url and slot.connection is None
    if typed_url and active is not None and f"{form}_url" not in st.session_state:
        st.session_state[f"{form}_url"] = active.base_url or ""  # replacing a key usually keeps its endpoint
    with st.expander("Replace key" if active else "Add key", icon=":material/edit:", key=f"{form}_open",
                     on_change="rerun"), st.form(form, border=False):
        st.text_input("API key", type="password", key=f"{form}_key", autocomplete="off",
                      placeholder=slot.key_hint or "paste the key",
                      help="Stored encrypted. It is never shown again, only a mask.")
        keep = f"leave empty to keep “{active.label}”" if active is not None and active.label else ""
        st.text_input("Label (optional)", key=f"{form}_label", max_chars=100, placeholder=keep)
        if typed_url:
            st.text_input("Base URL", key=f"{form}_url", placeholder="https://openrouter.ai/api/v1",
                          help="The endpoint's OpenAI-compatible API root. Only your own key is ever "
                               "sent to a URL typed here.")
        if slot.key_hint:
            st.caption(f"Hint: {slot.key_hint}.")
        st.form_submit_button("Save key", type="primary", on_click=_save, args=(rt, actor, owner, slot, prefix),
                              help="Tests the key with the provider first; a key the provider rejects is not saved.")


def _title(slot: Slot, active: KeyInfo | None) -> str:
    provider = slot.provider
    if slot.connection is not None:
        return f"{md_escape(slot.connection.name)} · {slot.preset.label if slot.preset else 'custom'}"
    if active is None or active.name == provider.label:
        return provider.label
    return f"{provider.label} · {md_escape(active.name)}"


def _card(rt: Runtime, actor: Actor, owner: Owner, slot: Slot, mine: list[KeyInfo],
          prefix: str, source: KeySource | None) -> None:
    form = slot.form(prefix)
    active = next((i for i in mine if i.active), None)
    replaced = [i for i in mine if not i.active]  # the most recently replaced first
    with st.container(border=True, key=f"{form}_card"):
        with st.container(horizontal=True, vertical_alignment="center"):
            st.markdown(f"**{_title(slot, active)}**")
            if slot.key_url:
                who = slot.preset.label if slot.preset else md_escape(slot.name)
                st.link_button("Get a key", slot.key_url, icon=":material/open_in_new:", type="tertiary",
                               help=f"Opens the page where {who} gives out API keys.")
        _outcome(rt, actor, owner, slot, prefix)
        if active is not None:
            st.caption(_in_use(active))
            _watched(active)
        elif source is not None and source is not KeySource.USER:
            st.caption(f"No key saved here. Calls now use {words.KEY_USED[source]}.")
        else:
            st.caption("No key saved.")
        endpoint = _endpoint(rt, slot, active)
        if endpoint:
            st.caption(endpoint)
        if active is not None:
            _actions(rt, actor, owner, slot, prefix, active, replaced)
        _replaced(rt, actor, owner, slot, prefix, active, replaced)
        _key_form(rt, actor, owner, slot, prefix, active)
        if slot.connection is not None:
            _manage_connection(rt, actor, owner, slot.connection, form)


# --- connections: add (from a preset or custom), rename, delete ----------------------------------

CUSTOM = ""  # the preset picker's "Custom" choice


def _preset_chosen(form: str) -> None:
    """Fill the name and base URL from the preset just picked (both stay editable)."""
    preset = PRESETS.get(st.session_state.get(f"{form}_preset") or CUSTOM)
    st.session_state[f"{form}_name"] = preset.label.removesuffix(" (local)") if preset else ""
    st.session_state[f"{form}_url"] = preset.base_url if preset and preset.id != connections.AZURE else ""


def _add_connection(rt: Runtime, actor: Actor, owner: Owner, prefix: str) -> None:
    """Add the connection, then test and save its key on its own card (a key that fails its test
    leaves the connection there without a key, with the reason on its card)."""
    form = f"{prefix}_newconn"
    raw = st.session_state.get(f"{form}_key", "")
    st.session_state[f"{form}_key"] = ""  # never keep or send the key back to the browser
    try:
        keys.validate_key(raw)  # a key that could never be saved adds no connection
        preset = st.session_state.get(f"{form}_preset") or CUSTOM
        added = connections.create(rt, actor, owner, st.session_state.get(f"{form}_name", ""),
                                   st.session_state.get(f"{form}_url", ""), preset,
                                   st.session_state.get(f"{form}_version", "") if preset == connections.AZURE else "")
    except ByokError as exc:
        state.flash(form, str(exc), ok=False)
        st.session_state[f"{form}_open"] = True
        return
    for field in ("name", "url", "preset", "version"):
        st.session_state.pop(f"{form}_{field}", None)
    st.session_state[f"{form}_open"] = False
    slot = Slot(Provider.OPENAI_COMPATIBLE, added)
    st.session_state[f"{slot.form(prefix)}_key"] = raw
    _save(rt, actor, owner, slot, prefix)


def _add_form(rt: Runtime, actor: Actor, owner: Owner, prefix: str) -> None:
    form = f"{prefix}_newconn"
    state.show_flash(form)
    with st.expander("Add a connection", icon=":material/add_link:", key=f"{form}_open", on_change="rerun"):
        st.selectbox("Preset", [CUSTOM, *PRESETS], key=f"{form}_preset", on_change=_preset_chosen, args=(form,),
                     format_func=lambda p: PRESETS[p].label if p in PRESETS else "Custom (any OpenAI-compatible API)",
                     help="Fills the name, base URL and what its keys look like; you can change them.")
        preset = PRESETS.get(st.session_state.get(f"{form}_preset") or CUSTOM)
        with st.form(form, border=False):
            st.text_input("Name", key=f"{form}_name", max_chars=connections.MAX_NAME, placeholder="e.g. Groq")
            if preset is not None and preset.id == connections.AZURE:
                st.text_input("Endpoint", key=f"{form}_url", placeholder=preset.base_url,
                              help="Your resource's endpoint, from Keys and Endpoint in the Azure portal. Only keys "
                                   "saved for this connection are ever sent there.")
                st.text_input("API version", key=f"{form}_version", placeholder="v1",
                              help="Leave empty for the v1 API; or a dated version such as 2024-10-21. In a chat, "
                                   "the model is the name of your deployment.")
            else:
                st.text_input("Base URL", key=f"{form}_url", placeholder="https://api.example.com/v1",
                              help="The endpoint's OpenAI-compatible API root. Only keys saved for this connection "
                                   "are ever sent there.")
            st.text_input("API key", type="password", key=f"{form}_key", autocomplete="off",
                          placeholder=preset.key_hint if preset else "paste the key",
                          help="Stored encrypted and tested before it is saved. It is never shown again.")
            if preset is not None and preset.local:
                st.caption("A server on your own machine or network: the server's operator must allow private "
                           "addresses (BYOK_ALLOW_PRIVATE_ENDPOINTS=1).")
            st.form_submit_button("Add connection", type="primary", on_click=_add_connection,
                                  args=(rt, actor, owner, prefix))
        if preset is not None and preset.key_url:
            st.link_button(f"Get a {preset.label} key", preset.key_url, icon=":material/open_in_new:",
                           type="tertiary")


def _rename_connection(rt: Runtime, actor: Actor, owner: Owner, conn: ConnectionInfo, form: str) -> None:
    try:
        renamed = connections.rename(rt, actor, owner, conn.id, st.session_state.get(f"{form}_rename", ""))
    except ByokError as exc:
        state.flash(form, str(exc), ok=False)
        return
    state.flash(form, f"Renamed the connection {conn.name} to {renamed.name}.")


def _delete_connection(rt: Runtime, actor: Actor, owner: Owner, conn: ConnectionInfo, form: str) -> None:
    st.session_state.pop(f"{form}_confirm_conn", None)
    try:
        connections.delete(rt, actor, owner, conn.id)
    except ByokError as exc:
        state.flash(form, str(exc), ok=False)
        return
    state.flash(f"{form.rsplit('_conn_', 1)[0]}_newconn", f"Deleted the connection {conn.name} and its keys.")


def _manage_connection(rt: Runtime, actor: Actor, owner: Owner, conn: ConnectionInfo, form: str) -> None:
    with st.expander("Rename or delete", icon=":material/settings:"):
        with st.form(f"{form}_rename_form", border=False):
            st.text_input("Name", value=conn.name, key=f"{form}_rename", max_chars=connections.MAX_NAME)
            st.form_submit_button("Rename", on_click=_rename_connection, args=(rt, actor, owner, conn, form))
        if st.session_state.get(f"{form}_confirm_conn"):
            st.warning(f"Delete the connection {md_escape(conn.name)} and every key saved for it? This cannot be "
                       "undone.", icon=":material/warning:")
            with st.container(horizontal=True):
                st.button("Yes, delete", key=f"{form}_conn_yes", icon=":material/delete:",
                          on_click=_delete_connection, args=(rt, actor, owner, conn, form))
                st.button("Cancel", key=f"{form}_conn_no",
                          on_click=lambda: st.session_state.pop(f"{form}_confirm_conn", None))
        else:
            st.button("Delete connection", key=f"{form}_conn_del", icon=":material/delete:",
                      on_click=lambda: st.session_state.update({f"{form}_confirm_conn": True}))


def render(rt: Runtime, actor: Actor, owner: Owner, *, prefix: str, user_id: int | None = None) -> None:
    """The whole keys component for ``owner``. ``user_id`` adds the 'where keys come from' view."""
    infos = keys.list_keys(rt, actor, owner)
    sources = keys.sources(rt, user_id) if user_id is not None else {}
    if not infos:
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
        slots = [Slot(p) for p in Provider.of_kind(kind) if not p.user_supplies_url]
        _cards(rt, actor, owner, slots, infos, prefix, sources)
    st.subheader("Connections", anchor=False)
    st.caption("Any OpenAI-compatible API (Groq, Mistral, DeepSeek, xAI, OpenRouter, Together, Fireworks, Cerebras, "
               "Perplexity, or a server of your own such as Ollama, vLLM or LM Studio), each with its own name, "
               "address and key. Each shows in Chat's provider list by its name.")
    _add_form(rt, actor, owner, prefix)
    mine = connections.list_connections(rt, actor, owner)
    _cards(rt, actor, owner, [Slot(Provider.OPENAI_COMPATIBLE, c) for c in mine], infos, prefix, {})


def _cards(rt: Runtime, actor: Actor, owner: Owner, slots: list[Slot], infos: list[KeyInfo], prefix: str,
           sources: dict[Provider, KeySource | None]) -> None:
    columns = st.columns(2)
    for index, slot in enumerate(slots):
        held = [i for i in infos if i.provider is slot.provider and i.connection_id == slot.connection_id]
        with columns[index % 2]:
            _card(rt, actor, owner, slot, held, prefix, sources.get(slot.provider))
