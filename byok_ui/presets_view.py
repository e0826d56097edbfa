"""The chat's settings and presets: a conversation's system prompt and parameters (drawn in the
chat's picker), the presets manager (one's own, and the team's for admins), and "New chat from
preset". Everything is saved and checked by the core (``conversations.set_settings``, ``presets``);
this module only draws and calls.

A chat not started yet keeps its settings in the session (``take_draft`` hands them to the
conversation the first message makes)."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from byok_core import conversations as convs
from byok_core import presets
from byok_core.adapters import CHAT_ADAPTERS
from byok_core.adapters.base import ChatParams, Effort
from byok_core.errors import ByokError
from byok_core.identity import Actor, Owner
from byok_core.md import md_escape
from byok_core.models import User, saved_id
from byok_core.presets import PresetInfo, Settings, describe
from byok_core.providers import Provider
from byok_core.runtime import Runtime
from byok_ui import state

DRAFT = "chat_draft_settings"  # the settings of a chat not started yet
SETTINGS_OPEN = "chat_settings_open"  # the picker's "Settings of this chat" expander is open
EFFORTS: list[Effort | None] = [None, Effort.LOW, Effort.MEDIUM, Effort.HIGH]
FIELD_WORDS = {"reasoning_effort": "its reasoning effort", "thinking.budget_tokens": "an extended-thinking budget",
               "thinkingConfig.thinkingBudget": "a thinking budget"}


def _effort_label(effort: Effort | None) -> str:
    return "Provider default" if effort is None else effort.value.capitalize()


def take_draft() -> Settings | None:
    """The settings chosen before a chat's first message (for ``conversations.create``), forgotten here."""
    draft = st.session_state.pop(DRAFT, None)
    return draft if isinstance(draft, Settings) else None


def _drafted() -> Settings:
    draft = st.session_state.get(DRAFT)
    return draft if isinstance(draft, Settings) else Settings()


def _shown(rt: Runtime, user_id: int, conversation_id: int | None) -> Settings:
    """The settings as stored now (for a callback, which runs before the page reads anything)."""
    if conversation_id is None:
        return _drafted()
    try:
        return convs.get(rt, user_id, conversation_id).settings
    except ByokError:
        return Settings()


def _of(conversation: convs.ConversationInfo | None) -> Settings:
    """The settings of the conversation the page shows (its draft for a chat not started yet)."""
    return conversation.settings if conversation is not None else _drafted()


def settings_label(conversation: convs.ConversationInfo | None) -> str:
    """What the chat's picker adds to its label: the conversation's settings in a few words ("" for none)."""
    return describe(_of(conversation))


def _keys(conversation_id: int | None, provider: Provider) -> dict[str, str]:
    base = f"chat_settings_{conversation_id or 'new'}_{provider.value}"
    return {name: f"{base}_{name}" for name in ("system", "use_temperature", "temperature", "cap", "effort")}


def _from_widgets(keys: dict[str, str]) -> Settings:
    s = st.session_state
    temperature = float(s[keys["temperature"]]) if s.get(keys["use_temperature"]) else None
    cap = s.get(keys["cap"])
    return Settings(s.get(keys["system"]) or "",
                    ChatParams(temperature, int(cap) if cap is not None else None, s.get(keys["effort"])))


def _save(rt: Runtime, user_id: int, conversation_id: int | None, keys: dict[str, str],
          then: Callable[[], None]) -> None:
    then()
    settings = _from_widgets(keys)
    try:
        if conversation_id is None:
            st.session_state[DRAFT] = presets.check_settings(settings, None)
            state.flash("chat_settings", "Saved for this new chat: they go with its first message.")
        else:
            convs.set_settings(rt, user_id, conversation_id, settings)
            state.flash("chat_settings", "Saved: the next reply uses these settings.")
    except ByokError as exc:
        state.flash("chat_settings", str(exc), ok=False)


def conversation_settings(rt: Runtime, user: User, conversation: convs.ConversationInfo | None, provider: Provider,
                          model: str | None, on_save: Callable[[], None] = lambda: None) -> None:
    """The conversation's system prompt, temperature, output cap and reasoning effort, saved with it
    (a chat not started yet keeps them for its first message); says what the model takes. Drawn
    in an expander of the chat's picker, and only while it is open (opening it runs the page):
    closed, it saves every page run a form of seven elements."""
    with st.expander("Settings of this chat", icon=":material/settings:", key=SETTINGS_OPEN,
                     on_change="rerun") as box:
        if box.open:
            _settings_form(rt, user, conversation, provider, model, on_save)


def _settings_form(rt: Runtime, user: User, conversation: convs.ConversationInfo | None, provider: Provider,
                   model: str | None, on_save: Callable[[], None]) -> None:
    user_id = saved_id(user.id)
    conversation_id = conversation.id if conversation is not None else None
    adapter = CHAT_ADAPTERS[provider]
    shown = _of(conversation)
    p, keys = shown.params, _keys(conversation_id, provider)
    with st.form(f"chat_settings_form_{conversation_id or 'new'}_{provider.value}", border=False):
        st.text_area("System prompt", value=shown.system_prompt, key=keys["system"],
                     max_chars=presets.MAX_SYSTEM_PROMPT, height=100,
                     placeholder="Instructions the model reads before the conversation")
        st.checkbox("Set a temperature", value=p.temperature is not None, key=keys["use_temperature"],
                    help="Off: the provider's default.")
        st.slider("Temperature", 0.0, presets.MAX_TEMPERATURE,
                  value=p.temperature if p.temperature is not None else 1.0, step=0.05, key=keys["temperature"],
                  help="Lower is more focused, higher more varied.")
        cap = None if p.max_output_tokens is None else min(p.max_output_tokens, adapter.max_output_tokens)
        st.number_input("Output cap (tokens)", min_value=1, max_value=adapter.max_output_tokens, value=cap, step=256,
                        key=keys["cap"], placeholder=f"{adapter.max_output_tokens:,} (the most)",
                        help="The most a reply may write, thinking included; it is also the worst case a shared "
                             "key's budget holds for each reply. Empty: the most this app asks of "
                             f"{provider.label}.")
        st.selectbox("Reasoning effort", EFFORTS, index=EFFORTS.index(p.reasoning_effort), key=keys["effort"],
                     format_func=_effort_label)
        st.form_submit_button("Save settings", on_click=_save, args=(rt, user_id, conversation_id, keys, on_save))
    state.show_flash("chat_settings")
    field = adapter.reasoning_field(model or "")
    if not model:
        return
    if field is None:
        st.caption(f"{md_escape(model)} takes no reasoning effort: none is sent to it.")
    else:
        st.caption(f"{md_escape(model)} takes the reasoning effort as {FIELD_WORDS.get(field, field)} (`{field}`).")
    if p.temperature is not None and not adapter.takes_temperature(model, p):
        st.caption(f"{md_escape(model)} takes no temperature with these settings: none is sent.")


# --- presets --------------------------------------------------------------------------------


def _preset_line(preset: PresetInfo) -> str:
    said = describe(preset.settings)
    return f"{preset.provider.label} · {preset.model}" + (f" · {said}" if said else "")


def _delete(rt: Runtime, actor: Actor, preset: PresetInfo) -> None:
    try:
        presets.delete(rt, actor, preset.id)
        state.flash("presets", f"Deleted the preset {preset.name}.")
    except ByokError as exc:
        state.flash("presets", str(exc), ok=False)


def _update(rt: Runtime, actor: Actor, preset: PresetInfo, conversation_id: int | None, provider: Provider,
            model: str | None) -> None:
    try:
        if not model:
            raise ByokError(f"Choose a {provider.label} model first.")
        presets.update(rt, actor, preset.id, preset.name, provider, model,
                       _shown(rt, saved_id(actor.user_id), conversation_id))
        state.flash("presets", f"The preset {preset.name} now has this chat's provider, model and settings.")
    except ByokError as exc:
        state.flash("presets", str(exc), ok=False)


def _create(rt: Runtime, actor: Actor, conversation_id: int | None, provider: Provider, model: str | None) -> None:
    name = st.session_state.get("presets_new_name") or ""
    team = st.session_state.get("presets_new_for") == "The team"
    try:
        if not model:
            raise ByokError(f"Choose a {provider.label} model first.")
        owner = Owner.team() if team else Owner.user(actor.user_id)
        made = presets.create(rt, actor, owner, name, provider, model,
                              _shown(rt, saved_id(actor.user_id), conversation_id))
        state.flash("presets", f"Saved the preset {made.name}" + (" for the team." if team else "."))
        st.session_state.presets_new_name = ""
    except ByokError as exc:
        state.flash("presets", str(exc), ok=False)


def presets_manager(rt: Runtime, user: User, conversation_id: int | None, provider: Provider,
                    model: str | None) -> None:
    """The presets one may pick (the team's, then one's own), each deletable by who manages it, and
    a form that saves this chat's provider, model and settings as a new preset (admins may make it
    the team's). Drawn in the page's open Presets popover."""
    actor = Actor.of(user)
    listed = presets.list_for(rt, actor)
    state.show_flash("presets")
    for preset in listed:
        with st.container(horizontal=True, vertical_alignment="center", key=f"presets_item_{preset.id}"):
            st.markdown(f"**{md_escape(preset.name)}**" + (" (team)" if preset.is_team else "")
                        + f"  \n{md_escape(_preset_line(preset))}")
            if not preset.is_team or actor.is_admin:
                st.button("", icon=":material/save:", key=f"presets_update_{preset.id}", type="tertiary",
                          help=f"Make {md_escape(preset.name)} this chat's provider, model and settings",
                          on_click=_update, args=(rt, actor, preset, conversation_id, provider, model))
                st.button("", icon=":material/delete:", key=f"presets_delete_{preset.id}", type="tertiary",
                          help=f"Delete the preset {md_escape(preset.name)}", on_click=_delete,
                          args=(rt, actor, preset))
    if not listed:
        st.caption("No presets yet.")
    with st.form("presets_new_form", border=False, enter_to_submit=True):
        st.text_input("Preset name", key="presets_new_name", max_chars=presets.MAX_NAME,
                      placeholder="e.g. Code reviewer")
        if actor.is_admin:
            st.radio("For", ["Just me", "The team"], key="presets_new_for", horizontal=True,
                     help="Team presets are listed for everyone; only admins change them.")
        st.form_submit_button("Save this chat as a preset", on_click=_create,
                              args=(rt, actor, conversation_id, provider, model),
                              help="The provider, model and settings of this chat.")


def _start(rt: Runtime, user_id: int, preset_id: int) -> None:
    try:
        made = convs.create_from_preset(rt, user_id, preset_id)
    except ByokError as exc:
        state.flash("chat", str(exc), ok=False)
        return
    st.query_params["c"] = str(made.id)


def new_chat_from_preset(rt: Runtime, user: User) -> None:
    """A "New chat from preset" button listing the presets one may pick; choosing one opens a new
    chat with its provider, model and settings. The list is read and drawn only while it is open."""
    user_id = saved_id(user.id)
    with st.popover("New chat from preset", icon=":material/bookmarks:", width="stretch", key="presets_start_open",
                    on_change="rerun") as menu:
        if not menu.open:
            return
        listed = presets.list_for(rt, Actor.of(user))
        for preset in listed:
            st.button(("Team: " if preset.is_team else "") + md_escape(preset.name), key=f"presets_start_{preset.id}",
                      help=md_escape(_preset_line(preset)), on_click=_start, args=(rt, user_id, preset.id),
                      width="stretch")
        if not listed:
            st.caption("No presets yet: save a chat's settings as one (Presets, above the conversation).")
