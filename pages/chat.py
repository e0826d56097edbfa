"""Chat: provider and model pickers, streamed replies, conversations kept per user."""

import streamlit as st

from byok_core import chat, keys, limits, words
from byok_core import conversations as convs
from byok_core.adapters import CHAT_ADAPTERS
from byok_core.errors import ByokError, NotFoundError
from byok_core.identity import Owner
from byok_core.providers import Provider, ProviderKind
from byok_ui import budget_view, chat_view, state

c = state.ctx()
rt, uid = c.rt, c.user.id

CHAT_PROVIDERS = Provider.of_kind(ProviderKind.CHAT)
SEARCH_PROVIDERS = Provider.of_kind(ProviderKind.SEARCH)


@st.cache_data(ttl=600, max_entries=500, show_spinner=False)
def model_options(_rt, user_id: int, provider: Provider, key_version: str) -> list[str]:
    """The provider's models for this user's key, cached 10 minutes per user, provider and key
    (``key_version`` changes when a key is saved, so a new key or endpoint lists afresh)."""
    try:
        return list(chat.list_models(_rt, user_id=user_id, provider=provider))
    except ByokError:
        return []


def key_version(provider: Provider) -> str:
    mine = [k.id for k in keys.list_keys(rt, c.actor, Owner.user(uid)) if k.active and k.provider is provider]
    return f"{rt.settings.database_url}|{mine[0] if mine else keys.sources(rt, uid).get(provider)}"


def model_key(provider: Provider) -> str:
    """Each provider keeps its own model choice, so switching provider never carries a model over."""
    return f"chat_model_{provider.value}"


def default_model_index(provider: Provider, options: list[str]) -> int | None:
    current = st.session_state.get(model_key(provider))
    if current in options:
        return options.index(current)
    default = CHAT_ADAPTERS[provider].default_model
    return options.index(default) if default in options else (0 if options else None)


def _select_conversation(conv_id: int | None) -> None:
    st.session_state.chat_conv = conv_id
    st.session_state.pop("chat_confirm_delete", None)
    if conv_id is None:
        return
    try:
        info = convs.get(rt, uid, conv_id)
    except NotFoundError:
        st.session_state.chat_conv = None
        return
    if info.provider is not None:
        st.session_state.chat_provider = info.provider
        if info.model:
            st.session_state[model_key(info.provider)] = info.model


def _rename(conv_id: int) -> None:
    try:
        convs.rename(rt, uid, conv_id, st.session_state.get(f"chat_rename_{conv_id}", ""))
    except ByokError as exc:
        state.flash("chat", str(exc), ok=False)


def _delete(conv_id: int) -> None:
    try:
        convs.delete(rt, uid, conv_id)
    except ByokError as exc:
        state.flash("chat", str(exc), ok=False)
    _select_conversation(None)


# --- state -------------------------------------------------------------------------------
if "chat_provider" not in st.session_state:
    st.session_state.chat_provider = chat.default_provider(rt, uid) or Provider.OPENAI
current_id = st.session_state.get("chat_conv")
current = None
if current_id is not None:
    try:
        current = convs.get(rt, uid, current_id)
    except NotFoundError:
        st.session_state.chat_conv = current_id = None
# The chat input's value for this run, read before anything is drawn so that a first message
# creates its conversation in time for the title and the sidebar list.
prompt = st.session_state.get("chat_prompt")
chosen_model = st.session_state.get(model_key(st.session_state.chat_provider))
if prompt and current is None and chosen_model:
    current = convs.create(rt, uid, convs.title_from(prompt), provider=st.session_state.chat_provider,
                           model=chosen_model)
    st.session_state.chat_conv = current_id = current.id
conversation_list = convs.list_conversations(rt, uid, limit=100)

# --- sidebar: conversations ----------------------------------------------------------------
with st.sidebar:
    st.subheader("Conversations", anchor=False)
    st.button("New chat", icon=":material/add_comment:", on_click=_select_conversation, args=(None,),
              key="chat_new", width="stretch")
    with st.container(height=360, border=False):
        for info in conversation_list:
            st.button(chat_view.md_escape(info.title), key=f"chat_conv_{info.id}", on_click=_select_conversation,
                      args=(info.id,),
                      type="primary" if info.id == current_id else "tertiary", width="stretch")
        if not conversation_list:
            st.caption("No conversations yet.")

# --- header: pickers -----------------------------------------------------------------------
st.title(chat_view.md_escape(current.title) if current else "Chat", anchor=False)
state.show_flash("chat")

where = keys.sources(rt, uid)
with st.container(horizontal=True, vertical_alignment="bottom"):
    provider = st.selectbox("Provider", CHAT_PROVIDERS, format_func=lambda p: p.label, key="chat_provider",
                            width=220)
    paid_by = where.get(provider)
    options = model_options(rt, uid, provider, key_version(provider))
    if paid_by is not None:  # on a shared key, only the models the admins allow (the server refuses the rest)
        options = limits.allowed_models(rt, uid, provider, paid_by, options)
    typed = st.session_state.get(model_key(provider))
    if typed and typed not in options:
        options = [typed, *options]
    index = default_model_index(provider, options)
    if index is None:
        st.session_state.pop(model_key(provider), None)
    model = st.selectbox("Model", options, index=index, key=model_key(provider), accept_new_options=True, width=300,
                         placeholder="type a model name",
                         help="Pick from the provider's list, or type any model name.")
    use_search = st.toggle("Web search", key="chat_search",
                           help="Search the web first and give the results to the model as numbered sources.")
    search_provider = None
    if use_search:
        search_provider = st.selectbox("Search with", SEARCH_PROVIDERS, format_func=lambda p: p.label,
                                       key="chat_search_provider", width=180)
    if current is not None:
        with st.popover("Conversation", icon=":material/more_horiz:"):
            st.text_input("Title", value=current.title, key=f"chat_rename_{current.id}", max_chars=200)
            st.button("Rename", key="chat_rename_btn", on_click=_rename, args=(current.id,))
            if st.session_state.get("chat_confirm_delete") == current.id:
                st.warning("Delete this conversation and all its messages?")
                st.button("Yes, delete", type="primary", key="chat_delete_yes", on_click=_delete,
                          args=(current.id,))
            elif st.button("Delete conversation", icon=":material/delete:", key="chat_delete"):
                st.session_state.chat_confirm_delete = current.id
                st.rerun()

payer = {p: where.get(p) for p in (provider, search_provider) if p is not None}
st.caption(" · ".join(
    f"{p.label}: " + (f"paid by {words.PAID_BY[s]}" if s else "no key yet") for p, s in payer.items()
))
if any(s is None for s in payer.values()):
    chat_view.keys_link("Add a key on the Keys page")
budget_view.show_left(c)

# --- history -------------------------------------------------------------------------------
history = convs.messages(rt, uid, current.id) if current else []
for message in history:
    with st.chat_message(message.role):
        st.markdown(chat_view.no_images(message.content))
        if message.role == "assistant":
            chat_view.show_reply_footer(message.record, message.sources, message.budget_warning)
if not history and not prompt:
    st.caption("Ask anything. Replies stream in as they arrive; every reply says which key paid for it.")

# --- new message ---------------------------------------------------------------------------
st.chat_input("Your message", key="chat_prompt", max_chars=100_000)
if prompt:
    if not model or current is None:
        st.error("Choose or type a model first.")
        st.stop()
    convs.set_model(rt, uid, current.id, provider, model)
    convs.add_message(rt, uid, current.id, "user", prompt)
    messages = [chat.ChatMessage(m.role, m.content) for m in history if m.content]
    messages.append(chat.ChatMessage("user", prompt))
    with st.chat_message("user"):
        st.markdown(chat_view.no_images(prompt))
    with st.chat_message("assistant"):
        try:
            stream = chat.stream_chat(rt, user_id=uid, provider=provider, model=model, messages=messages,
                                      search_provider=search_provider)
        except ByokError as exc:
            chat_view.show_start_error(exc)
        else:
            chat_view.render_stream(stream)
            result = stream.result
            assert result is not None  # set by the iteration
            convs.add_reply(rt, uid, current.id, result.text, result.record, result.sources, result.budget_warning)
            chat_view.show_reply_footer(result.record, result.sources, result.budget_warning)
