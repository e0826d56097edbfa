"""Chat replies written on the server, not in a browser tab.

``send`` (and ``retry``, ``regenerate``, ``edit``) add the turn to the conversation and start a
worker thread that runs the chat call and writes the reply's text to the database as it arrives
(every FLUSH_SECONDS, not per token). A page shows it live — from the worker's buffer (``live``)
when it runs in the same process, from the database otherwise — and picks it up again after a
reload, in a second tab, or on another replica. Closing the tab does not cancel a paid call;
``stop`` does (the call is logged as cut off, the text so far is kept). One reply per conversation
at a time, enforced by the database (a unique index over streaming replies). Each process beats
the heart of its running replies every HEARTBEAT_SECONDS; a reply whose heart stopped for
STALE_AFTER (its process died) is marked interrupted, never left spinning, and the usage row of its
call is closed (``usage_log.close_abandoned``, every few minutes here and at each start).

What is sent to the model is exactly the conversation's system prompt (first, when it has one),
the successful turns of the branch shown (a prompt with a reply that finished or was stopped) plus
the new prompt, each prompt with its attached images and PDFs: failed turns stay on screen, out of
the context, and other branches are not sent.
An edit starts a branch beside the prompt it edits (the edited prompt keeps its files); Regenerate
keeps the earlier reply as a version. Its parameters (temperature, output cap, reasoning effort)
go with every reply; the output cap is the worst case a shared-key budget holds."""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from byok_core import attachments, chat, usage_log
from byok_core import conversations as convs
from byok_core.adapters.base import ChatMessage
from byok_core.adapters.files import Attached
from byok_core.chat import ChatResult
from byok_core.clock import utcnow
from byok_core.errors import ByokError, NotFoundError, ValidationError
from byok_core.models import Conversation, Message, ReplyStatus, rowcount, saved_id, table
from byok_core.presets import Settings
from byok_core.providers import Provider
from byok_core.runtime import Runtime
from byok_core.text import check_message

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
HEARTBEAT_SECONDS = 5.0
CLOSE_ABANDONED_EVERY = 24  # heartbeats: every 2 minutes
STALE_AFTER = timedelta(seconds=30)
_M = table(Message)
_C = table(Conversation)
_KEPT = (ReplyStatus.DONE, ReplyStatus.STOPPED)  # replies whose turn goes to the model again
# Built once (every page run, and every flush of a reply's text, runs one of these):
_STALE = sa.and_(_M.c.conversation_id == sa.bindparam("in_conversation"), _M.c.status == ReplyStatus.STREAMING,
                 sa.or_(_M.c.heartbeat_at.is_(None), _M.c.heartbeat_at < sa.bindparam("beaten_before")))
_ANY_STALE = sa.select(_M.c.id).where(_STALE).limit(1)
_MARK_STALE = sa.update(_M).where(_STALE).values(status=ReplyStatus.INTERRUPTED)
_WRITE_SO_FAR = sa.update(_M).where(_M.c.id == sa.bindparam("reply_id")).values(
    content=sa.bindparam("text"), heartbeat_at=sa.bindparam("beat"))
_STOP_ASKED = sa.select(_M.c.stop_requested).where(_M.c.id == sa.bindparam("reply_id"))
_ONE_REPLY = select(Message).join(Conversation, col(Conversation.id) == col(Message.conversation_id)).where(
    col(Message.id) == sa.bindparam("message_id"), col(Conversation.user_id) == sa.bindparam("user_id"))


class ReplyRunning(ValidationError):
    """A reply is already being written in this conversation."""


@dataclass(frozen=True)
class Request:
    """What to call for a reply."""

    provider: Provider
    model: str
    search_provider: Provider | None = None
    settings: Settings | None = None  # the system prompt and parameters; None: the conversation's own
    connection: str | None = None  # an OpenAI-compatible connection's id (None: the only one there is)


# --- what the model is sent ---------------------------------------------------------------------


def context(history: list[convs.StoredMessage], system_prompt: str = "",
            files: Mapping[int, Attached] | None = None) -> list[ChatMessage]:
    """The system prompt, if any, then the visible successful turns: each prompt whose reply
    finished or was stopped (with its ``files``, by attachment id), with that reply."""
    sent: list[ChatMessage] = [ChatMessage("system", system_prompt)] if system_prompt.strip() else []
    for prompt, reply in itertools.pairwise(history):
        if (prompt.role, reply.role) == ("user", "assistant") and reply.status in _KEPT and reply.content:
            sent += [_prompt(prompt, files or {}), ChatMessage("assistant", reply.content)]
    return sent


def _prompt(prompt: convs.StoredMessage, files: Mapping[int, Attached], text: str | None = None) -> ChatMessage:
    """A prompt as sent: its text (or ``text``, edited) and its files."""
    return ChatMessage("user", prompt.content if text is None else text,
                       tuple(files[a.id] for a in prompt.attachments if a.id in files))


def _files(rt: Runtime, user_id: int, stored: Sequence[convs.StoredMessage]) -> dict[int, Attached]:
    """The files of the prompts shown, as sent (a statement only when there are any)."""
    return attachments.contents(rt, user_id, (a.id for m in stored for a in m.attachments))


# --- the live buffer of a reply running in this process -----------------------------------------


@dataclass
class Live:
    """A reply being written by a worker in this process: its text so far, and whether it is done."""

    rt: Runtime
    message_id: int
    stream: chat.ChatStream
    chunks: list[str] = field(default_factory=list)
    done: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, delta: str) -> None:
        with self.changed:
            self.chunks.append(delta)
            self.changed.notify_all()

    def request_stop(self) -> None:
        """Stop now: the worker ends the call, even one still waiting for its first word."""
        self.stop.set()
        self.stream.hang_up()

    def finish(self) -> None:
        with self.changed:
            self.done = True
            self.changed.notify_all()

    def after(self, seen: int = -1, timeout: float = 1.0) -> tuple[str, bool, int]:
        """(text so far, done, chunks so far) once there are more than ``seen`` chunks or it is done,
        else after ``timeout`` seconds."""
        with self.changed:
            if len(self.chunks) == seen and not self.done:
                self.changed.wait(timeout)
            return "".join(self.chunks), self.done, len(self.chunks)

    def follow(self, timeout: float = 1.0) -> Iterator[tuple[str, bool]]:
        """(text so far, done) each time it changes, or every ``timeout`` seconds while it does not."""
        seen = -1
        while True:
            text, done, seen = self.after(seen, timeout)
            yield text, done
            if done:
                return


_live: dict[int, Live] = {}
_live_lock = threading.Lock()
_heart: threading.Thread | None = None


def live(message_id: int) -> Live | None:
    """The live buffer of a reply whose worker runs in this process, if it is still running."""
    with _live_lock:
        return _live.get(message_id)


def _beat_forever() -> None:
    """Every HEARTBEAT_SECONDS: mark this process's running replies alive, and pass on Stop requests
    made from any process."""
    for beat in itertools.count(1):
        time.sleep(HEARTBEAT_SECONDS)
        with _live_lock:
            running = list(_live.values())
        by_rt: dict[int, list[Live]] = {}
        for item in running:
            by_rt.setdefault(id(item.rt), []).append(item)
        for group in by_rt.values():
            if beat % CLOSE_ABANDONED_EVERY == 0:
                _close_abandoned(group[0].rt)
            ids = [item.message_id for item in group]
            try:
                with group[0].rt.engine.begin() as conn:
                    conn.execute(sa.update(_M).where(_M.c.id.in_(ids), _M.c.status == ReplyStatus.STREAMING)
                                 .values(heartbeat_at=utcnow()))
                    stopped = set(conn.execute(sa.select(_M.c.id).where(_M.c.id.in_(ids), _M.c.stop_requested))
                                  .scalars())
            except sa.exc.SQLAlchemyError as exc:
                log.warning("could not mark running replies alive (%s)", type(exc).__name__)
                continue
            for item in group:
                if item.message_id in stopped and not item.stop.is_set():
                    item.request_stop()


def _close_abandoned(rt: Runtime) -> None:
    try:
        usage_log.close_abandoned(rt)  # usage rows of calls whose process died (another replica, killed)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("could not close the usage rows of calls whose process stopped (%s)", type(exc).__name__)


def _register(item: Live) -> None:
    global _heart
    with _live_lock:
        _live[item.message_id] = item
        if _heart is None:
            _heart = threading.Thread(target=_beat_forever, name="byok-reply-heartbeat", daemon=True)
            _heart.start()


def _unregister(item: Live) -> None:
    with _live_lock:
        _live.pop(item.message_id, None)


# --- starting a reply ---------------------------------------------------------------------------


def mark_interrupted(rt: Runtime, conversation_id: int) -> bool:
    """Mark the conversation's replies whose worker stopped beating as interrupted; whether there
    was one. Every page run calls this: it only reads unless there is one (an UPDATE would take
    SQLite's write lock)."""
    params = {"in_conversation": conversation_id, "beaten_before": utcnow() - STALE_AFTER}
    with rt.engine.connect() as conn:
        if conn.execute(_ANY_STALE, params).first() is None:
            return False
    with rt.engine.begin() as conn:
        return bool(rowcount(conn.execute(_MARK_STALE, params)))


Opened = tuple[convs.ConversationInfo, list[convs.StoredMessage]]  # a conversation and the branch it shows


def opened(rt: Runtime, user_id: int, conversation_id: int) -> Opened:
    """The conversation and the branch it shows, replies whose process died marked interrupted first."""
    mark_interrupted(rt, conversation_id)
    return convs.opened(rt, user_id, conversation_id)


def _begin(rt: Runtime, user_id: int, conversation_id: int, request: Request, parent: int | None, *,
           prompt: str | None = None, drop: tuple[int, ...] = (), files: Sequence[Attached] = (),
           files_of: int | None = None) -> int:
    """In one transaction: drop a replaced reply, add the prompt (if any) below ``parent`` with its
    ``files`` (and those of the prompt ``files_of``, which it edits) and the streaming reply below
    it (or below ``parent``), which is then the branch shown; ReplyRunning
    when one is already being written (the unique index says so, on any replica), unless its
    worker died: that one is marked interrupted and the turn is begun again."""
    for _ in range(2):
        try:
            return _add_turn(rt, user_id, conversation_id, request, parent, prompt, drop, files, files_of)
        except IntegrityError:
            if not mark_interrupted(rt, conversation_id):
                break
    raise ReplyRunning("A reply is still being written in this conversation: wait for it, or press Stop.")


def _add_turn(rt: Runtime, user_id: int, conversation_id: int, request: Request, parent: int | None,
              prompt: str | None, drop: tuple[int, ...], files: Sequence[Attached], files_of: int | None) -> int:
    now = utcnow()
    with rt.engine.begin() as conn:  # leaf_id None: the reply, the newest message, is the tip shown
        owned = conn.execute(sa.update(_C).where(_C.c.id == conversation_id, _C.c.user_id == user_id)
                             .values(updated_at=now, provider=request.provider, model=request.model[:120],
                                     leaf_id=None, connection_id=request.connection))
        if not rowcount(owned):
            raise NotFoundError("No such conversation.")
        if drop:
            conn.execute(sa.delete(_M).where(_M.c.conversation_id == conversation_id, _M.c.id.in_(drop),
                                             _M.c.status != ReplyStatus.STREAMING))
        if prompt is not None:
            parent = saved_id(conn.execute(sa.insert(_M).values(
                conversation_id=conversation_id, role="user", content=prompt, created_at=now, meta="{}",
                status=ReplyStatus.DONE, parent_id=parent)).inserted_primary_key[0])  # type: ignore[index]
            attachments.add(conn, user_id, conversation_id, parent, files)
            if files_of is not None:
                attachments.copy(conn, user_id, files_of, parent)
        return saved_id(conn.execute(sa.insert(_M).values(
            conversation_id=conversation_id, role="assistant", content="", created_at=now, parent_id=parent,
            meta=_json(convs.reply_meta(None) | _started_meta(request)), status=ReplyStatus.STREAMING,
            heartbeat_at=now, stop_requested=False)).inserted_primary_key[0])  # type: ignore[index]


def _system(request: Request) -> str:
    return request.settings.system_prompt if request.settings is not None else ""


def _started_meta(request: Request) -> dict[str, object]:
    """What a reply's meta says from its start: the provider and model it was asked of."""
    return {"provider": request.provider.value, "model": request.model}


def _json(meta: dict[str, object]) -> str:
    return json.dumps(meta, default=str)




def _opened(rt: Runtime, user_id: int, conversation_id: int, request: Request,
            read: Opened | None = None) -> tuple[Request, list[convs.StoredMessage]]:
    """``request`` with the conversation's own settings unless it brings some, and its messages
    (as the caller ``read`` them just before, when it did: ``opened``)."""
    info, stored = read if read is not None and read[0].id == conversation_id else convs.opened(
        rt, user_id, conversation_id)
    return (request if request.settings is not None else replace(request, settings=info.settings)), stored


def send(rt: Runtime, user_id: int, conversation_id: int, prompt: str, request: Request, *,
         files: Sequence[Attached] = (), client: httpx.Client | None = None, read: Opened | None = None) -> int:
    """Add ``prompt`` with its ``files`` (checked: ``attachments.check_all``) at the end of the
    branch shown and start its reply; the reply's message id. ``read``: the conversation as the
    caller has just read it with ``opened`` (the Chat page, on every run), not read again."""
    files = attachments.check_message(files)
    request, stored = _opened(rt, user_id, conversation_id, request, read)
    turns = context(stored, _system(request), _files(rt, user_id, stored))  # a dead reply in the way: see _begin
    reply_id = _begin(rt, user_id, conversation_id, request, stored[-1].id if stored else None,
                      prompt=check_message(prompt, convs.MAX_MESSAGE, empty_ok=bool(files)), files=files)
    _start(rt, user_id, reply_id, request, [*turns, ChatMessage("user", prompt, tuple(files))], client)
    return reply_id


def _turn(rt: Runtime, user_id: int, conversation_id: int, request: Request, prompt_id: int | None) -> tuple[
        Request, list[convs.StoredMessage], convs.StoredMessage, convs.StoredMessage | None]:
    """(``request`` with the conversation's settings, the branch before the prompt ``prompt_id`` (None:
    the last one shown), that prompt, its reply if any); replies whose process died are marked
    interrupted first, and none may be running."""
    mark_interrupted(rt, conversation_id)
    request, messages = _opened(rt, user_id, conversation_id, request)
    if any(m.running for m in messages):
        raise ReplyRunning("A reply is still being written in this conversation: wait for it, or press Stop.")
    prompts = [i for i, m in enumerate(messages) if m.role == "user" and prompt_id in (None, m.id)]
    if not prompts:
        raise (NotFoundError("No such message in this conversation.") if prompt_id is not None
               else ValidationError("There is no message to send again yet."))
    at = prompts[-1]
    reply = messages[at + 1] if at + 1 < len(messages) else None
    return request, messages[:at], messages[at], reply


def retry(rt: Runtime, user_id: int, conversation_id: int, request: Request, *,
          client: httpx.Client | None = None) -> int:
    """Send the last prompt shown again: a failed (or interrupted) reply is replaced, a finished or
    stopped one kept as the version before (Regenerate)."""
    request, before, prompt, reply = _turn(rt, user_id, conversation_id, request, None)
    failed = reply is not None and reply.status not in _KEPT
    reply_id = _begin(rt, user_id, conversation_id, request, prompt.id, drop=(reply.id,) if failed and reply else ())
    files = _files(rt, user_id, [*before, prompt])
    _start(rt, user_id, reply_id, request, [*context(before, _system(request), files), _prompt(prompt, files)], client)
    return reply_id


regenerate = retry


def edit(rt: Runtime, user_id: int, conversation_id: int, prompt: str, request: Request, *,
         message_id: int | None = None, client: httpx.Client | None = None) -> int:
    """Send ``prompt`` in place of the prompt ``message_id`` of the branch shown (None: its last):
    a new branch from there, beside the original, which stays as the version before. The edited
    prompt keeps the original's files."""
    request, before, edited, _reply = _turn(rt, user_id, conversation_id, request, message_id)
    prompt = check_message(prompt, convs.MAX_MESSAGE, empty_ok=bool(edited.attachments))
    reply_id = _begin(rt, user_id, conversation_id, request, edited.parent_id, prompt=prompt, files_of=edited.id)
    files = _files(rt, user_id, [*before, edited])
    _start(rt, user_id, reply_id, request, [*context(before, _system(request), files), _prompt(edited, files, prompt)],
           client)
    return reply_id


def stop(rt: Runtime, user_id: int, message_id: int) -> None:
    """Ask the worker writing ``message_id`` to stop, whichever process runs it. Someone else's
    reply (or one already finished) is left alone, as if there were no such reply."""
    with rt.engine.begin() as conn:
        owned = sa.select(_C.c.id).where(_C.c.user_id == user_id)
        marked = rowcount(conn.execute(sa.update(_M).where(
            _M.c.id == message_id, _M.c.conversation_id.in_(owned),
            _M.c.status == ReplyStatus.STREAMING).values(stop_requested=True)))
    running = live(message_id) if marked else None
    if running is not None:
        running.request_stop()


# --- the worker ---------------------------------------------------------------------------------


def _start(rt: Runtime, user_id: int, reply_id: int, request: Request, messages: list[ChatMessage],
           client: httpx.Client | None) -> None:
    """Prepare the call (a refusal fails the reply now) and start its worker."""
    params = request.settings.params if request.settings is not None else chat.ChatParams()
    try:
        stream = chat.stream_chat(rt, user_id=user_id, provider=request.provider, model=request.model,
                                  messages=messages, search_provider=request.search_provider, client=client,
                                  params=params, connection=request.connection)
    except ByokError as exc:
        _finish(rt, reply_id, request, ReplyStatus.FAILED, "", None, str(exc), _retry_after(exc))
        return
    item = Live(rt, reply_id, stream)
    _register(item)
    # run in a copy of the caller's context: the reply's budget words are in its currency (currency.showing)
    threading.Thread(target=contextvars.copy_context().run, args=(_work, item, stream, request),
                     name=f"byok-reply-{reply_id}", daemon=True).start()


def _work(item: Live, stream: chat.ChatStream, request: Request) -> None:
    rt, reply_id = item.rt, item.message_id
    deltas = iter(stream)  # a generator: closing it stops the call
    flushed = time.monotonic()
    try:
        for delta in deltas:
            item.add(delta)
            if time.monotonic() - flushed >= FLUSH_SECONDS:
                flushed = time.monotonic()
                if _flush(rt, reply_id, "".join(item.chunks)) and not item.stop.is_set():
                    item.request_stop()
            if item.stop.is_set():
                deltas.close()  # type: ignore[attr-defined]  # logged as cut off, the text so far kept
                break
        result = stream.result
        if item.stop.is_set():
            status = ReplyStatus.STOPPED
        elif result is not None and result.error is None:
            status = ReplyStatus.DONE
        else:
            status = ReplyStatus.FAILED
        _finish(rt, reply_id, request, status, "".join(item.chunks), result, None)
    except Exception as exc:  # a bug: the reply fails with a plain message, and its text is kept
        log.error("reply %s failed unexpectedly: %s", reply_id, type(exc).__name__)
        _finish(rt, reply_id, request, ReplyStatus.FAILED, "".join(item.chunks), stream.result,
                "The reply could not be finished; try again.")
    finally:
        item.finish()
        _unregister(item)


def _flush(rt: Runtime, reply_id: int, text: str) -> bool:
    """Write the text so far; whether a Stop was asked for (from any process)."""
    try:
        with rt.engine.begin() as conn:
            conn.execute(_WRITE_SO_FAR, {"reply_id": reply_id, "text": text, "beat": utcnow()})
            return bool(conn.execute(_STOP_ASKED, {"reply_id": reply_id}).scalar())
    except sa.exc.SQLAlchemyError as exc:  # the text is written again at the next flush, and at the end
        log.warning("could not save reply %s so far (%s)", reply_id, type(exc).__name__)
        return False


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds until a rate-limited call may be tried again, when the provider or the limit said."""
    wait = getattr(exc, "retry_after", None)
    return float(wait) if isinstance(wait, int | float) and wait > 0 else None


def _finish(rt: Runtime, reply_id: int, request: Request, status: ReplyStatus, text: str,
            result: ChatResult | None, error: str | None, retry_after: float | None = None) -> None:
    if result is not None and status is ReplyStatus.FAILED:
        retry_after = retry_after or _retry_after(result.error)
    retry_at = utcnow() + timedelta(seconds=retry_after) if retry_after else None
    meta = convs.reply_meta(None, error=error, retry_at=retry_at)
    if result is not None:
        meta = convs.reply_meta(result.record if result.model_called else None, result.sources,
                                result.budget_warning, result.search_record,
                                error or (str(result.error) if result.error and status is ReplyStatus.FAILED else None),
                                retry_at)
    meta |= _started_meta(request)
    for attempt in range(3):  # the reply's end must be written: it is what stops every page's spinner
        try:
            with rt.engine.begin() as conn:
                conn.execute(sa.update(_M).where(_M.c.id == reply_id).values(
                    content=text, status=status, meta=_json(meta), heartbeat_at=None))
            return
        except sa.exc.SQLAlchemyError as exc:
            log.error("could not save the end of reply %s (%s), attempt %d", reply_id, type(exc).__name__,
                      attempt + 1)
            time.sleep(0.5 * (attempt + 1))


def reply(rt: Runtime, user_id: int, message_id: int) -> convs.StoredMessage:
    """One reply as stored now (for pages following a reply another process writes)."""
    with Session(rt.engine) as session:
        row = session.exec(_ONE_REPLY, params={"message_id": message_id, "user_id": user_id}).first()
    if row is None:
        raise NotFoundError("No such message.")
    return convs.StoredMessage.of(row)
