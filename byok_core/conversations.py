"""Chat conversations kept per user.

Every function takes the acting user's id and checks ownership in the query itself: another
user's conversation id behaves exactly like one that does not exist (NotFoundError).

A conversation's messages form a tree: each names its parent, the message it answers or follows.
An edited prompt is a sibling of the prompt it replaces, a regenerated reply a sibling of the
earlier reply; siblings are the versions shown as ``< 2/3 >``. What is shown, exported and sent to
the model is one branch (``branch``): from the first prompt to the conversation's tip, which is its
newest message unless a version was chosen (``show_version``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from byok_core import attachments, md, presets
from byok_core.adapters.base import SearchResult
from byok_core.attachments import AttachmentInfo
from byok_core.clock import utcnow
from byok_core.errors import NotFoundError, ValidationError
from byok_core.models import Conversation, Message, ReplyStatus, rowcount, saved_id, table
from byok_core.presets import Settings
from byok_core.providers import Provider
from byok_core.record import CallRecord
from byok_core.runtime import Runtime
from byok_core.text import check_line

MAX_TITLE = 200
MAX_MESSAGE = 200_000
ROLES = ("user", "assistant")
_NOT_FOUND = "No such conversation."


@dataclass(frozen=True)
class ConversationInfo:
    id: int
    title: str
    provider: Provider | None
    model: str | None
    created_at: datetime
    updated_at: datetime
    settings: Settings = field(default_factory=Settings)  # its system prompt and parameters
    leaf_id: int | None = None  # the tip of the branch shown; None: the newest message
    connection_id: str | None = None  # an OpenAI-compatible conversation's connection (its last reply's)

    @classmethod
    def of(cls, row: Conversation) -> ConversationInfo:
        return cls(saved_id(row.id), row.title, row.provider, row.model, row.created_at, row.updated_at,
                   Settings.of(row), row.leaf_id, row.connection_id)


@dataclass(frozen=True)
class StoredMessage:
    id: int
    role: str
    content: str
    created_at: datetime
    record: CallRecord | None = None  # assistant replies: the model call that produced it, if it was made
    sources: list[SearchResult] = field(default_factory=list)  # web search results the reply cites
    budget_warning: str | None = None
    status: ReplyStatus = ReplyStatus.DONE
    search_record: CallRecord | None = None  # the web search made before the reply, if any
    error: str | None = None  # why a failed reply failed, in plain words
    provider: Provider | None = None  # a reply's provider and model, known from its start
    model: str = ""
    stop_requested: bool = False
    retry_at: datetime | None = None  # a rate-limited reply: when the next try is allowed
    parent_id: int | None = None  # the message it answers or follows; None for a first prompt
    version: int = 1  # its place among its siblings (the versions), oldest first
    versions: int = 1
    attachments: tuple[attachments.AttachmentInfo, ...] = ()  # a prompt's images and PDFs

    @classmethod
    def of(cls, row: Message, files: Sequence[AttachmentInfo] = ()) -> StoredMessage:
        try:
            meta = json.loads(row.meta or "{}")
        except ValueError:
            meta = {}
        if not isinstance(meta, dict):
            meta = {}
        record = CallRecord.from_json(meta) if meta.get("model_called", True) else None
        search = meta.get("search")
        try:
            provider = Provider.parse(str(meta["provider"])) if meta.get("provider") else None
        except ValueError:
            provider = None
        return cls(saved_id(row.id), row.role, row.content, row.created_at, record, _sources(meta.get("sources")),
                   meta.get("budget_warning"), ReplyStatus(row.status),
                   CallRecord.from_json(search) if isinstance(search, dict) else None,
                   meta.get("failure") or (record.error if record else None), provider, str(meta.get("model") or ""),
                   bool(row.stop_requested), _moment(meta.get("retry_at")), row.parent_id, attachments=tuple(files))

    @property
    def running(self) -> bool:
        return self.status is ReplyStatus.STREAMING

    @property
    def notice(self) -> str | None:
        """What the person must be told under a reply, in plain words: the model refused (its refusal
        is the reply), the output cap or a safety filter stopped it, it asked for a tool, or it wrote
        nothing. None for an ordinary reply."""
        return self.record.notice if self.record is not None else None

    @property
    def refusal(self) -> bool:
        """The model refused: the reply shown is its refusal."""
        return self.record is not None and self.record.notice_kind == "refusal"


def _children(stored: Sequence[StoredMessage]) -> dict[int | None, list[StoredMessage]]:
    """Each message's children (None: the first prompts), oldest first."""
    known = {m.id for m in stored}
    children: dict[int | None, list[StoredMessage]] = {}
    for m in sorted(stored, key=lambda m: m.id):
        children.setdefault(m.parent_id if m.parent_id in known else None, []).append(m)
    return children


def _tip(children: dict[int | None, list[StoredMessage]], start: StoredMessage) -> StoredMessage:
    """The end of the newest line of replies below ``start``."""
    while children.get(start.id):
        start = children[start.id][-1]
    return start


def branch(stored: Sequence[StoredMessage], leaf_id: int | None = None) -> list[StoredMessage]:
    """The branch that ends at ``leaf_id`` (the newest message when it is None or gone), first
    prompt first, each message with its place among its versions."""
    if not stored:
        return []
    by_id = {m.id: m for m in stored}
    children = _children(stored)
    node: StoredMessage | None = by_id.get(leaf_id) if leaf_id is not None else None
    node = node or max(stored, key=lambda m: m.id)
    path: dict[int, StoredMessage] = {}
    while node is not None and node.id not in path:  # a parent loop cannot hang it
        path[node.id] = node
        node = by_id.get(node.parent_id) if node.parent_id is not None else None
    shown = []
    for m in reversed(path.values()):
        siblings = [s.id for s in children[m.parent_id if m.parent_id in by_id else None]]
        shown.append(replace(m, version=siblings.index(m.id) + 1, versions=len(siblings)))
    return shown


def _sources(items: Any) -> list[SearchResult]:
    found = []
    for item in items if isinstance(items, list) else []:
        try:
            found.append(SearchResult(str(item["title"]), str(item["url"]), str(item.get("snippet") or ""),
                                      Provider.parse(str(item["provider"])), int(item["rank"])))
        except (KeyError, TypeError, ValueError):
            continue
    return found


def title_from(text: str, limit: int = 60) -> str:
    """A short one-line title made from the first prompt."""
    line = " ".join((text or "").split())
    if not line:
        return "New chat"
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _validate_title(title: str) -> str:
    title = " ".join(check_line(title, "The title").split())
    if not title:
        raise ValidationError("A conversation needs a title.")
    if len(title) > MAX_TITLE:
        raise ValidationError(f"Titles can be at most {MAX_TITLE} characters.")
    return title


def _owned(user_id: int, conversation_id: int) -> sa.ColumnElement[bool]:
    return (col(Conversation.id) == conversation_id) & (col(Conversation.user_id) == user_id)


def list_conversations(rt: Runtime, user_id: int, limit: int = 200, title: str = "") -> list[ConversationInfo]:
    """The user's conversations, most recently active first; with ``title``, those whose title or
    any of whose messages contains it (any case)."""
    query = select(Conversation).where(col(Conversation.user_id) == user_id)
    words = " ".join((title or "").split())[:MAX_TITLE]
    if words:
        escaped = words.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        said = sa.select(col(Message.id)).where(col(Message.conversation_id) == col(Conversation.id),
                                                 sa.func.lower(col(Message.content)).like(f"%{escaped}%", escape="\\"))
        query = query.where(sa.func.lower(col(Conversation.title)).like(f"%{escaped}%", escape="\\") | said.exists())
    with Session(rt.engine) as session:
        rows = session.exec(query.order_by(col(Conversation.updated_at).desc(), col(Conversation.id).desc())
                            .limit(limit))
        return [ConversationInfo.of(r) for r in rows]


def create(rt: Runtime, user_id: int, title: str = "New chat", provider: Provider | None = None,
           model: str | None = None, settings: Settings | None = None) -> ConversationInfo:
    """A new conversation, with ``settings`` (a system prompt and parameters) if given."""
    settings = presets.check_settings(settings or Settings(), provider)
    row = Conversation(user_id=user_id, title=_validate_title(title), provider=provider, model=model,
                       **settings.columns())
    with Session(rt.engine, expire_on_commit=False) as session, session.begin():
        session.add(row)
    return ConversationInfo.of(row)


def create_from_preset(rt: Runtime, user_id: int, preset_id: int) -> ConversationInfo:
    """A new chat with a preset's provider, model and settings, titled after it. The preset is the
    team's or the user's own; any other looks missing (NotFoundError)."""
    preset = presets.get_for(rt, user_id, preset_id)
    return create(rt, user_id, preset.name, provider=preset.provider, model=preset.model, settings=preset.settings)


def set_settings(rt: Runtime, user_id: int, conversation_id: int, settings: Settings) -> ConversationInfo:
    """Keep ``settings`` for the conversation's next replies (checked for its provider)."""
    info = get(rt, user_id, conversation_id)
    settings = presets.check_settings(settings, info.provider)
    with rt.engine.begin() as conn:
        changed = conn.execute(sa.update(Conversation).where(_owned(user_id, conversation_id))
                               .values(**settings.columns())).rowcount
    if not changed:
        raise NotFoundError(_NOT_FOUND)
    return replace(info, settings=settings)


# The chat page reads a conversation and its messages on every run: Core statements built once
# (rows, not ORM objects, which cost several times more to load).
_CONV, _MSG = table(Conversation), table(Message)
_ONE = sa.select(_CONV).where(_CONV.c.id == sa.bindparam("conversation_id"), _CONV.c.user_id == sa.bindparam("user_id"))
_FILE = attachments.info_columns()  # after a message's own columns, labelled apart from them
_ALL = (sa.select(_MSG, *(c.label(f"file_{c.name}") for c in _FILE))
        .outerjoin(_FILE[0].table, _FILE[0].table.c.message_id == _MSG.c.id)
        .where(_MSG.c.conversation_id == sa.bindparam("conversation_id")).order_by(_MSG.c.id, _FILE[0]))


def _one(conn: sa.Connection, user_id: int, conversation_id: int) -> ConversationInfo:
    row = conn.execute(_ONE, {"conversation_id": conversation_id, "user_id": user_id}).first()
    if row is None:
        raise NotFoundError(_NOT_FOUND)
    return ConversationInfo.of(row)  # type: ignore[arg-type]  # a row has the model's attributes


def get(rt: Runtime, user_id: int, conversation_id: int) -> ConversationInfo:
    with rt.engine.connect() as conn:
        return _one(conn, user_id, conversation_id)


def rename(rt: Runtime, user_id: int, conversation_id: int, title: str) -> bool:
    """Rename; a title over MAX_TITLE characters is shortened to it (ending in "…"): whether it was."""
    line = " ".join(check_line(title, "The title").split())
    shortened = len(line) > MAX_TITLE
    title = _validate_title(line[:MAX_TITLE - 1].rstrip() + "…" if shortened else line)
    with rt.engine.begin() as conn:
        changed = conn.execute(sa.update(Conversation).where(_owned(user_id, conversation_id))
                               .values(title=title, updated_at=utcnow())).rowcount
    if not changed:
        raise NotFoundError(_NOT_FOUND)
    return shortened


def delete(rt: Runtime, user_id: int, conversation_id: int) -> None:
    """Delete a conversation and its messages."""
    with Session(rt.engine) as session, session.begin():
        row = session.exec(select(Conversation).where(_owned(user_id, conversation_id))).first()
        if row is None:
            raise NotFoundError(_NOT_FOUND)
        attachments.delete_for(session.connection(), conversation_id)
        session.execute(sa.delete(Message).where(col(Message.conversation_id) == conversation_id))
        session.delete(row)


def _all(rt: Runtime, user_id: int, conversation_id: int) -> tuple[ConversationInfo, list[StoredMessage]]:
    """The conversation and every message of every branch, oldest first, each with its attachments
    (not their bytes): two statements."""
    width = len(_MSG.c)
    with rt.engine.connect() as conn:
        info = _one(conn, user_id, conversation_id)
        found: dict[int, tuple[sa.Row[Any], list[attachments.AttachmentInfo]]] = {}
        for row in conn.execute(_ALL, {"conversation_id": conversation_id}):
            files = found.setdefault(row.id, (row, []))[1]
            if row[width] is not None:
                files.append(attachments.info_of(row[width:]))
    return info, [StoredMessage.of(m, files) for m, files in found.values()]  # type: ignore[arg-type]


def opened(rt: Runtime, user_id: int, conversation_id: int) -> tuple[ConversationInfo, list[StoredMessage]]:
    """The conversation (its settings included) and the branch it shows: two statements."""
    info, stored = _all(rt, user_id, conversation_id)
    return info, branch(stored, info.leaf_id)


def messages(rt: Runtime, user_id: int, conversation_id: int) -> list[StoredMessage]:
    """The branch the conversation shows, first prompt first."""
    return opened(rt, user_id, conversation_id)[1]


def show_version(rt: Runtime, user_id: int, conversation_id: int, message_id: int, step: int) -> None:
    """Show the version ``step`` places from ``message_id`` among its siblings (-1: the one before),
    with the newest line of replies below it. Not while a reply is being written (ValidationError),
    whose branch would be hidden."""
    _, stored = _all(rt, user_id, conversation_id)
    if any(m.status is ReplyStatus.STREAMING for m in stored):
        raise ValidationError("Wait for the reply being written, or stop it, before you switch versions.")
    children = _children(stored)
    message = next((m for m in stored if m.id == message_id), None)
    if message is None:
        raise NotFoundError("No such message in this conversation.")
    siblings = children[message.parent_id if message.parent_id in {m.id for m in stored} else None]
    at = siblings.index(message) + step
    if not 0 <= at < len(siblings):
        raise ValidationError(f"There is no version {at + 1}; this message has {len(siblings)}.")
    tip = _tip(children, siblings[at])
    with rt.engine.begin() as conn:
        changed = conn.execute(sa.update(Conversation).where(_owned(user_id, conversation_id))
                               .values(leaf_id=tip.id)).rowcount
    if not changed:
        raise NotFoundError(_NOT_FOUND)


def add_message(rt: Runtime, user_id: int, conversation_id: int, role: str, content: str,
                meta: dict[str, Any] | None = None) -> StoredMessage:
    """Append a message at the tip of the branch shown (and mark the conversation active). ``meta``
    must be JSON-serializable."""
    if role not in ROLES:
        raise ValidationError(f"A message's role is one of: {', '.join(ROLES)}.")
    if len(content or "") > MAX_MESSAGE:
        raise ValidationError(f"Messages can be at most {MAX_MESSAGE:,} characters.")
    now = utcnow()
    with Session(rt.engine, expire_on_commit=False) as session, session.begin():
        parent = session.execute(sa.select(tip_of(conversation_id))).scalar()
        changed = rowcount(session.execute(sa.update(Conversation).where(_owned(user_id, conversation_id))
                                  .values(updated_at=now, leaf_id=None)))  # the new message is the newest
        if not changed:
            raise NotFoundError(_NOT_FOUND)
        row = Message(conversation_id=conversation_id, role=role, content=content or "", created_at=now,
                      meta=json.dumps(meta or {}, default=str), parent_id=parent)
        session.add(row)
    return StoredMessage.of(row)


def tip_of(conversation_id: int) -> sa.ColumnElement[int | None]:
    """The tip of the branch a conversation shows, in SQL: where its next message goes."""
    chosen = sa.select(col(Conversation.leaf_id)).where(col(Conversation.id) == conversation_id).scalar_subquery()
    newest = (sa.select(sa.func.max(col(Message.id))).where(col(Message.conversation_id) == conversation_id)
              .scalar_subquery())
    return sa.func.coalesce(chosen, newest)


def _moment(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def reply_meta(record: CallRecord | None, sources: Sequence[SearchResult] = (), budget_warning: str | None = None,
               search: CallRecord | None = None, error: str | None = None,
               retry_at: datetime | None = None) -> dict[str, Any]:
    """What is kept with a reply (never a key): the model call's record (None: never made), the web
    search's, the sources, the budget warning, a failure's reason, and when a rate-limited call may
    be tried again."""
    return {**(record.to_json() if record else {"model_called": False}), "sources": [asdict(s) for s in sources],
            "budget_warning": budget_warning, "search": search.to_json() if search else None, "failure": error,
            "retry_at": retry_at.isoformat() if retry_at else None}


def to_markdown(rt: Runtime, user_id: int, conversation_id: int) -> str:
    """One conversation as a Markdown document: its title, its settings and system prompt, then each
    turn of the branch shown, with who paid each reply and the files each prompt carried (by name).

    Opened in a viewer that loads images and renders HTML, it loads nothing: the title, model names
    and failures are plain text, prompts and replies keep their Markdown with images and HTML shown
    as text (``md.inert``), and sources link only to the http(s) URL each result named."""
    info, shown = opened(rt, user_id, conversation_id)
    lines = [f"# {md.md_line(info.title)}", "", f"Exported from BYOK Dashboard on {utcnow():%Y-%m-%d %H:%M} UTC.", ""]
    if said := presets.describe(info.settings):
        lines += [f"Settings: {md.md_line(said)}.", ""]
    if info.settings.system_prompt:
        lines += ["System prompt:", "", *(f"> {md.inert(line)}" for line in info.settings.system_prompt.splitlines()),
                  ""]
    for m in shown:
        who = "You" if m.role == "user" else (f"{m.record.provider.label} {md.md_line(m.record.model)}" if m.record
                                              else "Assistant")
        lines += [f"## {who} · {m.created_at:%Y-%m-%d %H:%M}", "", md.inert(m.content), ""]
        if m.attachments:
            lines += [f"Attached: {md.md_line(', '.join(a.describe() for a in m.attachments))}", ""]
        if m.status is ReplyStatus.FAILED and m.error:
            lines += [f"> Failed: {md.md_line(m.error)}", ""]
        if m.sources:
            lines += [f"{s.rank}. {md.source_line(s)}" for s in m.sources] + [""]
    return "\n".join(lines)
