"""Chat: conversations with their own URL (?c=<id>), replies written on the server (they survive a
reload, a second tab or a dropped connection), failed turns kept with Retry, Stop, Regenerate and Edit;
an edited prompt starts a branch and a regenerated reply is a version, both switched with ``< 2/3 >``.
Images and PDFs attached in the message box go with their prompt (``byok_core.attachments``)."""

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from functools import partial
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from byok_core import attachments, chat, connections, currency, db, keys, limits, onboarding, replies, search, words
from byok_core import conversations as convs
from byok_core.adapters import CHAT_ADAPTERS
from byok_core.clock import utcnow
from byok_core.errors import ByokError, NoKeyError, NotFoundError
from byok_core.identity import KeySource
from byok_core.md import cite, md_escape, no_images
from byok_core.models import ReplyStatus, saved_id
from byok_core.providers import Provider, ProviderKind
from byok_core.text import check_message
from byok_ui import attachments_view, budget_view, chat_view, model_lists, presets_view, state

c = state.ctx()
rt, uid = c.rt, saved_id(c.user.id)
drawing_page = True  # False once this run of the page is over: the live fragment's own runs follow

CHAT_PROVIDERS = Provider.of_kind(ProviderKind.CHAT)
SEARCH_PROVIDERS = Provider.of_kind(ProviderKind.SEARCH)
FINISHED = "chat_finished"  # the reply the live fragment drew finished (the whole page runs next)
STOPPING = "chat_stopping"  # the reply whose Stop was clicked (Stop stays disabled until it ends)


def key_version(provider: Provider) -> str:
    """Changes when the key that pays for ``provider`` does (a new key or endpoint lists afresh)."""
    picked = usable.get(st.session_state.get("chat_connection") or "") if provider.user_supplies_url else None
    source, key_id = (picked.source, picked.key_id) if picked else paying[provider]
    return f"{rt.settings.database_url}|{source}|{key_id}"


def model_key(provider: Provider) -> str:
    """Each provider (and connection) keeps its own model choice, so switching never carries a model over."""
    connection = st.session_state.get("chat_connection") if provider.user_supplies_url else None
    return f"chat_model_{provider.value}" + (f"@{connection}" if connection else "")


def pick_of(provider: Provider, connection: str | None = None) -> str:
    """The Provider picker's entry for a provider, or for one of its connections."""
    return f"{provider.value}@{connection}" if connection and provider.user_supplies_url else provider.value


def parse_pick(pick: str) -> tuple[Provider, str | None]:
    provider, _, connection = pick.partition("@")
    return Provider.parse(provider), connection or None


def picks() -> list[str]:
    """Each chat provider, with the connections one can chat on, by name, in the OpenAI-compatible
    one's place (that one itself when there are none)."""
    listed = [p for provider in CHAT_PROVIDERS for p in (
        [pick_of(provider, c) for c in usable] if provider.user_supplies_url and usable else [pick_of(provider)])]
    chosen = st.session_state.get("chat_pick")
    return listed if chosen is None or chosen in listed else [*listed, chosen]  # a connection deleted meanwhile


def pick_label(pick: str) -> str:
    provider, connection = parse_pick(pick)
    if connection is None:
        return provider.label
    found = usable.get(connection)
    if found is None:
        return "A deleted connection"
    return found.connection.name + (" (team)" if found.connection.owner.is_team else "")


def provider_name(provider: Provider) -> str:
    """The chosen provider as people know it: a connection by its name."""
    return pick_label(st.session_state.chat_pick) if provider.user_supplies_url else provider.label


def model_choices(provider: Provider, paid_by: KeySource | None) -> list[str]:
    """What the Model picker lists: the provider's models (on a shared key only those the admins
    allow; the server refuses the rest), with a model typed earlier first."""
    options = model_lists.model_options(rt, uid, provider, key_version(provider),
                                        st.session_state.get("chat_connection") if provider.user_supplies_url else None)
    if paid_by is not None:
        options = limits.allowed_models(rt, uid, provider, paid_by, options)
    typed = st.session_state.get(model_key(provider))
    return [typed, *options] if typed and typed not in options else options


def settle_model(provider: Provider, paid_by: KeySource | None) -> str | None:
    """The model a message goes to, which the picker shows: the one chosen or typed, else the
    provider's default when listed, else the first listed; None when there is nothing to choose.
    The list is read only when none is chosen yet (not before every message)."""
    key = model_key(provider)
    if not st.session_state.get(key):
        options = model_choices(provider, paid_by)
        default = CHAT_ADAPTERS[provider].default_model
        chosen = default if default in options else next(iter(options), None)
        if chosen is None:
            st.session_state.pop(key, None)
        else:
            st.session_state[key] = chosen  # before the picker is drawn: its value is the state's
    return st.session_state.get(key) or None


def browser_zone() -> tzinfo:
    """The reader's time zone, as the browser reports it (UTC when it does not)."""
    try:
        return ZoneInfo(st.context.timezone or "UTC")
    except (ValueError, ZoneInfoNotFoundError):
        return UTC


def day_group(moment: datetime, today: date) -> str:
    """Where a conversation last active at ``moment`` (in the reader's zone) is listed."""
    days = (today - moment.date()).days
    return "Today" if days <= 0 else "Yesterday" if days == 1 else "Previous 7 days" if days <= 7 else "Older"


def fmt_when(moment: datetime, today: date) -> str:
    """A conversation's last activity, short: the time today, else the day."""
    return moment.strftime("%H:%M") if moment.date() == today else moment.strftime("%b %d")


# --- the conversation the URL names ------------------------------------------------------


def _open(conv_id: int | None) -> None:
    if conv_id is None:
        st.query_params.pop("c", None)
    else:
        st.query_params["c"] = str(conv_id)
    st.session_state.pop("chat_confirm_delete", None)


def _current() -> tuple[convs.ConversationInfo | None, list[convs.StoredMessage]]:
    """The conversation the URL names and the branch it shows (read once per run), or (None, [])."""
    raw = st.query_params.get("c")
    if not raw:
        return None, []
    try:
        return replies.opened(rt, uid, int(raw))
    except (ValueError, NotFoundError):  # someone else's conversation looks exactly like a missing one
        st.query_params.pop("c", None)
        state.flash("chat", "That conversation does not exist; here is a new chat.", ok=False)
        return None, []


def _rename(conv_id: int) -> None:
    """Rename; a title over the limit is shortened, and the person told so (never cut silently)."""
    try:
        if convs.rename(rt, uid, conv_id, st.session_state.get(f"chat_rename_{conv_id}", "")):
            state.flash("chat", f"Titles can be at most {convs.MAX_TITLE} characters, so this one was shortened.")
    except ByokError as exc:
        state.flash("chat", str(exc), ok=False)


def _delete(conv_id: int) -> None:
    try:
        convs.delete(rt, uid, conv_id)
    except ByokError as exc:
        state.flash("chat", str(exc), ok=False)
    _open(None)


def _request() -> replies.Request:
    provider = st.session_state.chat_provider
    searching = st.session_state.get("chat_search_provider") if st.session_state.get("chat_search") else None
    return replies.Request(provider, st.session_state.get(model_key(provider)) or "", searching,
                           connection=st.session_state.get("chat_connection"))


def _act(action: Callable[..., object], *args: object) -> None:
    """Start a reply from a button (Retry, Regenerate, Edit, Stop); a refusal shows as a flash."""
    try:
        action(*args)
    except ByokError as exc:
        state.flash("chat", str(exc), ok=False)


def _edit(conversation_id: int, message_id: int) -> None:
    """Send an edited prompt: a new branch from there (the original stays as the version before)."""
    text = st.session_state.get(f"chat_edit_text_{message_id}", "")
    try:
        replies.edit(rt, uid, conversation_id, text, _request(), message_id=message_id)
    except ByokError as exc:
        state.flash("chat", str(exc), ok=False)
        return  # the edit stays open, with its text
    st.session_state.pop("chat_editing", None)


def _switch(conversation_id: int, message_id: int, step: int) -> None:
    _act(convs.show_version, rt, uid, conversation_id, message_id, step)


Files = list[tuple[str, bytes]]  # attached in the box: (name, bytes), checked when sent


def _box() -> tuple[str, Files]:
    """The text and the files just sent from the message box."""
    value = st.session_state.get("chat_prompt")
    if value is None or isinstance(value, str):
        return value or "", []
    return value.text or "", [(f.name, f.getvalue()) for f in value.files or ()]


def _queue(conversation_id: int, prompt: str, files: Files) -> None:
    """A message sent while a reply is written waits for it (two sent meanwhile become one)."""
    waiting = st.session_state.get("chat_queued")
    if waiting and waiting[0] == conversation_id:
        prompt, files = f"{waiting[1]}\n\n{prompt}".strip(), [*waiting[2], *files]
    st.session_state.chat_queued = (conversation_id, prompt, files)


def _keep_in_box(prompt: str, files: Files, why: str = "") -> None:
    """What could not be sent goes back into the box, and ``why`` is shown; files cannot go back, so
    the person is told which to attach again."""
    st.session_state.chat_prompt = prompt
    names = attachments.usable(files)  # a file refused as bad is not worth attaching again
    again = (f"Your message is kept in the box; attach {'the file' if len(names) == 1 else 'the files'} again "
             f"({', '.join(names)}) before you send it." if names else "Your message is kept in the box." if files
             else "")
    if why or again:
        state.flash("chat", " ".join(filter(None, (why, again))), ok=False)


def _unqueue() -> None:
    """Cancel a waiting message: it goes back into the box."""
    waiting = st.session_state.pop("chat_queued", None)
    if waiting:
        _keep_in_box(waiting[1], waiting[2])


current, history = _current()
for done_key in (FINISHED, STOPPING):  # the live fragment's marks, over with this run of the page
    st.session_state.pop(done_key, None)
usable = {u.connection.id: u for u in connections.usable(rt, uid)}
if "chat_pick" not in st.session_state:
    if current and current.provider:
        st.session_state.chat_pick = pick_of(current.provider, current.connection_id)
    else:
        first = chat.default_provider(rt, uid) or Provider.OPENAI
        st.session_state.chat_pick = pick_of(first, next(iter(usable), None))
if current is not None and current.model and st.session_state.get("chat_opened") != current.id:
    st.session_state.chat_opened = current.id  # a conversation opens with the model it last used
    if current.provider is not None:
        st.session_state.chat_pick = pick_of(current.provider, current.connection_id)
        st.session_state.chat_connection = parse_pick(st.session_state.chat_pick)[1]
        st.session_state[model_key(current.provider)] = current.model
if parse_pick(st.session_state.chat_pick) == (Provider.OPENAI_COMPATIBLE, None) and usable:
    st.session_state.chat_pick = pick_of(Provider.OPENAI_COMPATIBLE, next(iter(usable)))  # its connection, now
st.session_state.chat_provider, st.session_state.chat_connection = parse_pick(st.session_state.chat_pick)
if "chat_search_provider" not in st.session_state:
    st.session_state.chat_search_provider = search.default_provider(rt, uid) or SEARCH_PROVIDERS[0]
paying = keys.payers(rt, uid)
where = {p: source for p, (source, _) in paying.items()}
if st.session_state.chat_connection is not None:  # who pays on the connection chosen
    picked = usable.get(st.session_state.chat_connection)
    where[Provider.OPENAI_COMPATIBLE] = picked.source if picked else None
chosen_model = settle_model(st.session_state.chat_provider, where.get(st.session_state.chat_provider))
running = next((m for m in history if m.running), None)

# A prompt just sent (or one that waited for a reply to end): the conversation (new, or this one)
# gets the turn and its reply starts before anything is drawn, so the title, the list and the
# reply all show it. While a reply is written, a message sent waits for it.
prompt, uploads = _box()
if (prompt or uploads) and current is not None and running is not None:
    _queue(current.id, prompt, uploads)
    prompt, uploads = "", []
elif not (prompt or uploads) and running is None and st.session_state.get("chat_queued"):
    conversation_id, prompt, uploads = st.session_state.pop("chat_queued")
    if current is None or conversation_id != current.id:  # another conversation is open: back into the box
        _keep_in_box(prompt, uploads)
        prompt, uploads = "", []
asked = False  # whether this run sent a message: it then follows the reply's first words for a moment
if prompt or uploads:
    request = _request()
    try:
        if not request.model:
            raise ByokError(f"Choose or type a {request.provider.label} model first (the button above the "
                            "conversation); your message is kept in the box.")
        if where.get(request.provider) is None:  # before a conversation is made for it
            raise NoKeyError(request.provider)
        check_message(prompt, convs.MAX_MESSAGE, empty_ok=bool(uploads))  # before a new conversation is made for it
        files = attachments.check_all(uploads)  # a bad file: a plain message, and the text stays in the box
        if current is None:
            current = convs.create(rt, uid, convs.title_from(prompt or uploads[0][0]), provider=request.provider,
                                   model=request.model, settings=presets_view.take_draft())
            _open(current.id)
        replies.send(rt, uid, current.id, prompt, request, files=files, read=(current, history))
        asked = True
        history = convs.messages(rt, uid, current.id)  # the turn just begun (no reply to mark interrupted)
        running = next((m for m in history if m.running), None)
    except (ByokError, SQLAlchemyError) as exc:
        problem = exc if isinstance(exc, ByokError) else db.storage_error(exc)  # disk full, read-only, down
        if problem is None:
            raise
        _keep_in_box(prompt, uploads, str(problem))  # what could not be sent stays in the box

# --- sidebar: conversations (drawn last) ---------------------------------------------------
CLOSE_ON_PHONE = """<script>(() => {
  if (window.byokClosesSidebar) return; window.byokClosesSidebar = true;
  document.addEventListener("click", (event) => {  // on a phone, choosing a conversation shows it
    if (window.innerWidth > 768 || !event.target.closest(".st-key-chat_list [data-testid=stBaseButton-tertiary],"
        + ".st-key-chat_list [data-testid=stBaseButton-primary]")) return;
    setTimeout(() => document.querySelector("[data-testid=stSidebarCollapseButton] button")?.click(), 0);
  }, true);
})();</script>"""


@st.dialog("Conversation")
def manage(info: convs.ConversationInfo) -> None:
    """Rename or delete a conversation from the list."""
    with st.form("chat_manage_form", border=False, enter_to_submit=True):
        st.text_input("Title", value=info.title, key=f"chat_rename_{info.id}")
        if st.form_submit_button("Rename", type="primary"):
            _rename(info.id)
            st.rerun()
    if st.session_state.get("chat_confirm_delete") == info.id:
        st.warning("Delete this conversation and all its messages?")
        if st.button("Delete", icon=":material/delete:", key="chat_manage_delete_yes"):
            if current is not None and current.id == info.id:
                _delete(info.id)
            else:
                _forget(info.id)
            st.rerun()
    elif st.button("Delete conversation", icon=":material/delete:", key="chat_manage_delete"):
        st.session_state.chat_confirm_delete = info.id
        st.rerun(scope="fragment")


def _forget(conv_id: int) -> None:
    """Delete a conversation other than the one shown."""
    try:
        convs.delete(rt, uid, conv_id)
    except ByokError as exc:
        state.flash("chat", str(exc), ok=False)
    st.session_state.pop("chat_confirm_delete", None)


# --- header: the title, then the pickers (drawn into ``header`` after the history) ----------
st.title(md_escape(current.title) if current else "Chat", anchor=False)
state.show_flash("chat")
header = st.container()

def pickers_label() -> str:
    """What the settings button says: the provider and model a message goes to, and the search."""
    chosen = st.session_state.chat_provider
    parts = [provider_name(chosen), st.session_state.get(model_key(chosen)) or "choose a model"]
    if st.session_state.get("chat_search"):
        parts.append(f"web search with {st.session_state.get('chat_search_provider', SEARCH_PROVIDERS[0]).label}")
    settings = presets_view.settings_label(current)
    if settings:
        parts.append(settings)
    return " · ".join(parts)


PICKERS_OPEN = "chat_pickers_open"  # the pickers' popover is open (its widgets are drawn only then)


def keep_pickers_open() -> None:
    """A pick changes the popover's label, and Streamlit takes a popover with another label for a
    new one, closed: the state of the popover open now is given to the one drawn next, unless the
    browser closed it with the pick (one run for both: a pick then a quick Escape)."""
    if st.session_state.get(PICKERS_OPEN):
        st.session_state[PICKERS_OPEN] = True  # under its key: the popover with the new label starts open


def draw_pickers() -> None:
    """Inside the open pickers' popover: provider, model, web search and this chat's settings. Their
    values outlive the runs where the popover is closed (``persist_state``)."""
    provider = parse_pick(st.selectbox("Provider", picks(), format_func=pick_label, key="chat_pick",
                                       on_change=keep_pickers_open, persist_state="page",
                                       help="Each connection from the Keys page shows by its name."))[0]
    # The default is the state's value too: the picker's list is drawn only once opened, and
    # then starts from the default, which it would send back.
    options = model_choices(provider, where.get(provider))
    st.selectbox("Model", options, key=model_key(provider), accept_new_options=True,
                 index=options.index(chosen_model) if chosen_model in options else None,
                 on_change=keep_pickers_open, persist_state="page",
                 placeholder="type a model name", help="Pick from the provider's list, or type any model name.")
    if st.toggle("Web search", key="chat_search", on_change=keep_pickers_open, persist_state="page",
                 help="Search the web first and give the results to the model as numbered sources."):
        st.selectbox("Search with", SEARCH_PROVIDERS, format_func=lambda p: p.label, key="chat_search_provider",
                     on_change=keep_pickers_open, persist_state="page",
                     help="Starts with the first provider you have a key for: your own, then the team's, "
                          "then the server's.")
    presets_view.conversation_settings(rt, c.user, current, provider, st.session_state.get(model_key(provider)),
                                       on_save=keep_pickers_open)


def draw_conversation_menu(current: convs.ConversationInfo) -> None:
    """Inside the open Conversation popover: rename, export, delete."""
    with st.form("chat_rename_form", border=False, enter_to_submit=True):  # Enter renames too
        st.text_input("Title", value=current.title, key=f"chat_rename_{current.id}")
        st.form_submit_button("Rename", on_click=_rename, args=(current.id,))
    st.download_button("Export as Markdown", partial(convs.to_markdown, rt, uid, current.id),
                       file_name=f"conversation-{current.id}.md", mime="text/markdown",
                       icon=":material/download:", key="chat_export", on_click="ignore")
    if st.session_state.get("chat_confirm_delete") == current.id:
        st.warning("Delete this conversation and all its messages?")
        with st.container(horizontal=True):
            st.button("Cancel", key="chat_delete_no",
                      on_click=lambda: st.session_state.pop("chat_confirm_delete", None))
            st.button("Delete", icon=":material/delete:", key="chat_delete_yes", on_click=_delete,
                      args=(current.id,))
    elif st.button("Delete conversation", icon=":material/delete:", key="chat_delete"):
        st.session_state.chat_confirm_delete = current.id
        st.rerun()


def draw_header() -> None:
    """The pickers, who pays, and the budget left: drawn after the history (into ``header``, above
    it), so that a reply just asked for shows its first words before the rest of the page is drawn."""
    # One compact row, on a phone too: the pickers live in a popover named after what they chose.
    # Each popover's content is drawn only while it is open (opening one runs the page): closed,
    # they save every run about twenty elements.
    with st.container(horizontal=True, vertical_alignment="center"):
        with st.popover(md_escape(pickers_label()), icon=":material/tune:", key=PICKERS_OPEN, on_change="rerun",
                        help="Provider, model, web search and this chat's settings") as menu:
            if menu.open:
                draw_pickers()
        provider = st.session_state.chat_provider
        search_provider = st.session_state.chat_search_provider if st.session_state.get("chat_search") else None
        with st.popover("Presets", icon=":material/bookmarks:", key="chat_presets_open", on_change="rerun",
                        help="Save this chat as a preset, or delete one") as menu:
            if menu.open:
                presets_view.presets_manager(rt, c.user, current.id if current else None, provider,
                                             st.session_state.get(model_key(provider)))
        if current is not None:
            with st.popover("Conversation", icon=":material/more_horiz:", key="chat_conversation_open",
                            on_change="rerun") as menu:
                if menu.open:
                    draw_conversation_menu(current)

    payer = {p: where.get(p) for p in (provider, search_provider) if p is not None}
    st.caption(" · ".join(
        f"{md_escape(provider_name(p))}: " + (f"paid by {words.PAID_BY[s]}" if s else "no key yet")
        for p, s in payer.items()
    ))
    if missing := [p for p, s in payer.items() if s is None]:  # whom to ask, by name
        ask = onboarding.whom_to_ask(rt, missing, asker_is_admin=c.user.is_admin)
        st.caption(f":material/key_off: {md_escape(ask)}")
        chat_view.keys_link("Add a key on the Keys page")
    budget_view.show_left(c)


def draw_sidebar() -> None:
    """The conversations: drawn last, for the same reason as ``draw_header``."""
    with st.sidebar:
        st.subheader("Conversations", anchor=False)
        st.button("New chat", icon=":material/add_comment:", on_click=_open, args=(None,), key="chat_new",
                  width="stretch")
        presets_view.new_chat_from_preset(rt, c.user)
        found = st.text_input("Find a conversation", key="chat_find", placeholder="Search titles and messages",
                              label_visibility="collapsed", icon=":material/search:")
        listed = convs.list_conversations(rt, uid, limit=100, title=found)
        zone = browser_zone()
        today = datetime.now(zone).date()
        with st.container(height=420, border=False, key="chat_list"):
            shown_group = None
            for info in listed:
                when = info.updated_at.astimezone(zone)
                if day_group(when, today) != shown_group:
                    shown_group = day_group(when, today)
                    st.caption(shown_group)
                with st.container(horizontal=True, vertical_alignment="center", gap=None):
                    st.button(f"{md_escape(info.title)} · {fmt_when(when, today)}", key=f"chat_conv_{info.id}",
                              on_click=_open, args=(info.id,), help=f"Last active {when:%Y-%m-%d %H:%M}",
                              type="primary" if current and info.id == current.id else "tertiary", width="stretch")
                    if st.button("", icon=":material/more_vert:", key=f"chat_manage_{info.id}", type="tertiary",
                                 help="Rename or delete"):
                        manage(info)
            if not listed:
                st.caption("No conversation has that in its title or messages." if found else "No conversations yet.")
        st.html(CLOSE_ON_PHONE, unsafe_allow_javascript=True, width="content")


# --- the message box, and Stop beside it while a reply is written (both always in view; drawn
# before the history, whose live reply is followed for a moment within this run) -----------------
with st.bottom, st.container(horizontal=True, vertical_alignment="bottom"):
    st.chat_input("Your message (sent when the reply ends)" if running else "Your message", key="chat_prompt",
                  max_chars=100_000, accept_file="multiple", file_type=list(attachments.FILE_TYPES))
    stop_slot = st.empty()  # Stop, drawn there by the live reply's fragment while the reply is written

# --- history -------------------------------------------------------------------------------


def _stop(reply_id: int) -> None:
    st.session_state[STOPPING] = reply_id
    _act(replies.stop, rt, uid, reply_id)


@st.fragment(run_every=chat_view.LIVE_EVERY)
def live_reply(running: convs.StoredMessage) -> None:
    """The reply being written, redrawn by short runs of this fragment alone: the page is never
    held, and the message box takes typing meanwhile; the fragment draws Stop beside the box. The
    run that sees the reply end draws it finished (Stop gone, the line on who paid under it), and
    the next one runs the whole page, which draws the rest (Regenerate, Edit, the list): other
    people's replies get their last words out first. A message that waited for the reply is sent
    at once."""
    assert current is not None
    if st.session_state.get(FINISHED) == running.id:
        st.rerun(scope="app")
    seconds = chat_view.LIVE_FOR if not drawing_page else chat_view.PAGE_FOR if asked else 0.0
    label = running.provider.label if running.provider else "the provider"
    if not chat_view.follow(rt, uid, current.id, running.id, label, running.created_at, seconds):
        stop_slot.button("Stop", icon=":material/stop_circle:", key="chat_stop", on_click=_stop, args=(running.id,),
                         disabled=running.stop_requested or st.session_state.get(STOPPING) == running.id,
                         help="Stop this reply; its text so far is kept")
        return
    stop_slot.empty()
    if drawing_page or st.session_state.get("chat_queued"):
        st.rerun(scope="app")
    try:
        finished = replies.reply(rt, uid, running.id)
    except NotFoundError:  # the conversation was deleted meanwhile (another tab): the page says so
        st.rerun(scope="app")
    if finished.content:
        chat_view.copy_button()
    with currency.showing(currency.current(rt)):  # the shell sets it for a page's run, not a fragment's
        chat_view.show_reply_footer(finished)
    st.session_state[FINISHED] = running.id


@st.fragment(run_every=1.0)
def retry_countdown(until: datetime) -> None:
    """Retry, offered once the provider (or the shared key's limit) allows it: counted down till then."""
    left = math.ceil((until - utcnow()).total_seconds())
    if left <= 0:
        st.rerun(scope="app")
    st.button(f"Retry in {left} s", icon=":material/hourglass_top:", key="chat_again_wait", disabled=True,
              help="The provider asked to wait before the next try.")


editing = st.session_state.get("chat_editing") if running is None else None
for i, message in enumerate(history):
    assert current is not None  # a history is the current conversation's
    with st.chat_message(message.role):
        if message.role == "user" and message.id == editing:
            st.text_area("Edit your message", value=message.content, key=f"chat_edit_text_{message.id}",
                         max_chars=100_000)
            attachments_view.chips(message.attachments)  # the edited prompt keeps them
            with st.container(horizontal=True):
                st.button("Send", type="primary", key="chat_edit_send", on_click=_edit, args=(current.id, message.id),
                          help="A new branch from here; the conversation as it was stays as the version before")
                st.button("Cancel", key="chat_edit_cancel", on_click=lambda: st.session_state.pop("chat_editing", None))
            continue
        if message.role == "user":
            if message.content:
                st.markdown(no_images(message.content))
            attachments_view.show(rt, uid, message.attachments)
            with st.container(horizontal=True, vertical_alignment="center"):  # one row under the prompt
                chat_view.copy_button()
                if running is None:
                    st.button("Edit", icon=":material/edit:", key=f"chat_edit_{message.id}", type="tertiary",
                              on_click=lambda mid=message.id: st.session_state.update(chat_editing=mid),
                              help="Change this message and send it again, as a new branch")
                chat_view.versions(message, partial(_switch, current.id), disabled=running is not None)
            continue
        if message.running:
            live_reply(message)
            continue
        if message.content:
            st.markdown(no_images(cite(message.content, message.sources)))  # [n] links to source n
        if message.versions > 1:
            with st.container(horizontal=True, vertical_alignment="center"):  # Copy beside < 2/3 >
                if message.content:
                    chat_view.copy_button()
                chat_view.versions(message, partial(_switch, current.id), disabled=running is not None)
        elif message.content:
            chat_view.copy_button()  # alone: no row around it (one element fewer per reply drawn)
        chat_view.show_reply_footer(message)
        if i == len(history) - 1 and running is None:
            failed = message.status in (ReplyStatus.FAILED, ReplyStatus.INTERRUPTED)
            if failed and message.retry_at is not None and message.retry_at > utcnow():
                retry_countdown(message.retry_at)
            else:
                st.button("Retry" if failed else "Regenerate", icon=":material/refresh:", key="chat_again",
                          type="primary" if failed else "secondary",
                          on_click=_act, args=(replies.retry, rt, uid, current.id, _request()))
waiting = st.session_state.get("chat_queued")
if current is not None and waiting and waiting[0] == current.id:
    with st.chat_message("user"):
        st.markdown(no_images(waiting[1]))
        if waiting[2]:
            st.caption(" · ".join(f":material/attach_file: {md_escape(name)}" for name, _ in waiting[2]))
        with st.container(horizontal=True, vertical_alignment="center"):
            st.caption("Sent when the reply above ends.")
            st.button("Cancel", key="chat_unqueue", type="tertiary", on_click=_unqueue,
                      help="Take this message back into the box")
if history:
    chat_view.copy_script()
else:
    st.caption("Ask anything. Replies are written on the server: they keep going if you reload or close the tab, "
               "and every reply says which key paid for it.")
    st.caption(f":material/attach_file: {attachments.LIMITS}")

with header:
    draw_header()
draw_sidebar()
drawing_page = False
