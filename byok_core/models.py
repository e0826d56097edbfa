"""SQLModel tables. Every schema change also needs an Alembic migration in ``migrations/versions``."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from byok_core.clock import utcnow
from byok_core.errors import CallStatus
from byok_core.identity import TEAM_ID, KeySource, OwnerKind, Role
from byok_core.providers import Provider, ProviderKind


class EnumText(sa.types.TypeDecorator[StrEnum]):
    """A StrEnum stored as its plain value in a VARCHAR column, read back as the enum member."""

    impl = sa.String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int):
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


def table(model: type[SQLModel]) -> sa.Table:
    """A model's Core table (SQLModel leaves ``__table__`` untyped)."""
    return cast(sa.Table, model.__table__)  # type: ignore[attr-defined]


def saved_id(value: int | None) -> int:
    """A saved row's integer id (SQLModel types it ``int | None`` for rows not saved yet)."""
    if value is None:
        raise ValueError("The row has not been saved yet.")
    return value


def rowcount(result: sa.Result[Any]) -> int:
    """Rows an UPDATE or DELETE changed (a Session's execute types its result without it)."""
    return cast(sa.CursorResult[Any], result).rowcount


def team_or_user(kind: Any, owner_id: Any, team_id: Any = TEAM_ID) -> sa.ColumnElement[bool]:
    """The team's row or the person's (a bound parameter ``user_id``; -1 matches no row) among rows
    owned by ``kind`` and ``owner_id``, for statements built once."""
    condition: sa.ColumnElement[bool] = ((kind == OwnerKind.TEAM) & (owner_id == team_id)) | (
        (kind == OwnerKind.USER) & (owner_id == sa.bindparam("user_id")))
    return condition


def enum_column(enum: type[StrEnum], length: int, *, nullable: bool = False,
                default: StrEnum | None = None) -> sa.Column[StrEnum]:
    return sa.Column(EnumText(enum, length), nullable=nullable, default=default)


class User(SQLModel, table=True):
    """An account. ``username`` is shown as it was typed (in NFKC form); ``username_key`` tells
    accounts apart: names that differ only in capitals or character width (``bob``, ``BOB``,
    full-width ``bob``) have one key, which the database keeps unique.

    Accounts created before migration 0007 whose names collided keep working: the oldest holds the
    plain key, each later one the key ``<key>#<id>`` (``#`` is never in a username, so it cannot
    collide), until an admin renames it (``accounts.name_clashes`` lists them)."""

    __tablename__ = "users"
    __table_args__ = (sa.Index("ux_users_username_key", "username_key", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(sa_column=sa.Column(sa.String(64), unique=True, nullable=False))
    # Filled from ``username`` on insert when not given (rows made by hand in tests and scripts too).
    username_key: str | None = Field(default=None, sa_column=sa.Column(
        sa.String(200), nullable=False,
        default=lambda context: User.key_of(context.get_current_parameters()["username"])))
    password_hash: str = Field(repr=False)
    role: Role = Field(default=Role.MEMBER, sa_column=enum_column(Role, 16, default=Role.MEMBER))
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    password_changed_at: datetime = Field(default_factory=utcnow)
    failed_logins: int = 0
    locked_until: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @staticmethod
    def key_of(name: str) -> str:
        """The key a username is told apart by: NFKC, case-folded, NFKC again (Unicode's
        NFKC_Casefold as the standard library can do it), around the trimmed name."""
        return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name.strip()).casefold())


class ApiKey(SQLModel, table=True):
    """A user's or the team's key for one provider. ``ciphertext`` is a crypto.py stored value."""

    __tablename__ = "api_keys"  # one active key per owner and provider: see add_partial_indexes

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, primary_key=True, max_length=32)
    owner_kind: OwnerKind = Field(sa_column=enum_column(OwnerKind, 8))
    owner_id: int = Field(index=True)  # users.id, or identity.TEAM_ID for the team
    provider: Provider = Field(sa_column=enum_column(Provider, 32))
    label: str = Field(default="", max_length=100)
    ciphertext: str = Field(repr=False)
    key_id: str = Field(max_length=32, index=True)  # master key id that sealed ciphertext
    mask: str = Field(max_length=16)
    base_url: str | None = Field(default=None, max_length=500)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    last_test_status: CallStatus | None = Field(default=None, sa_column=enum_column(CallStatus, 200, nullable=True))
    # The key watch (keywatch.py, migration 0015): its last check, since when the key stopped working and
    # why ("rejected", "out of quota"), the day after which it is not used, the expiry day its warning
    # was sent for, and the problem its owner dismissed the banner of (keywatch.Problem.token).
    checked_at: datetime | None = None
    failing_since: datetime | None = None
    failing_reason: str | None = Field(default=None, max_length=16)
    expires_on: date | None = None
    expiry_warned_on: date | None = None
    notice_dismissed: str | None = Field(default=None, max_length=60)
    # An OpenAI-compatible key's connection (migration 0014; same owner, same base URL); None for the others
    connection_id: str | None = Field(default=None, max_length=32, index=True)


class Connection(SQLModel, table=True):
    """A named OpenAI-compatible endpoint of one person or of the team: its keys (``ApiKey.connection_id``)
    go only to its base URL, which is also bound into each key's stored value. Names are unique per owner."""

    __tablename__ = "connections"
    __table_args__ = (sa.UniqueConstraint("owner_kind", "owner_id", "name", name="uq_connections_owner_name"),)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, primary_key=True, max_length=32)
    owner_kind: OwnerKind = Field(sa_column=enum_column(OwnerKind, 8))
    owner_id: int = Field(index=True)  # users.id, or identity.TEAM_ID for the team
    name: str = Field(max_length=80)
    base_url: str = Field(max_length=500)
    preset: str = Field(default="", max_length=32)  # connections.PRESETS id; "" for a custom connection
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class AuthSession(SQLModel, table=True):
    """A signed-in browser. Only the SHA-256 of the cookie token is stored."""

    __tablename__ = "auth_sessions"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), unique=True, nullable=False), repr=False)
    user_id: int = Field(foreign_key="users.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: datetime | None = None
    # A cookie's session: the SHA-256 of the browser's binding secret (accounts.session_bound_to).
    # None for a tab's own session, which never leaves the server.
    binding_hash: str | None = Field(default=None, max_length=64, repr=False)


class LoginTicket(SQLModel, table=True):
    """A one-time, short-lived ticket the browser exchanges for its session cookie. Kept in the
    database (hashed) so that any app replica can redeem it."""

    __tablename__ = "login_tickets"

    ticket_hash: str = Field(primary_key=True, max_length=64, repr=False)
    user_id: int = Field(foreign_key="users.id")
    expires_at: datetime


class AuditEvent(SQLModel, table=True):
    """Who did what to which key, account or setting (``audit.record`` writes them). Never holds a secret."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=80)  # username, or "operator" for the CLI
    action: str = Field(max_length=40)
    # what the event is about (audit.Target); NULL where its action has no use for a field
    owner_kind: OwnerKind | None = Field(default=None, sa_column=enum_column(OwnerKind, 8, nullable=True))
    owner_id: int | None = None
    username: str | None = Field(default=None, max_length=64)
    role: Role | None = Field(default=None, sa_column=enum_column(Role, 16, nullable=True))
    provider: Provider | None = Field(default=None, sa_column=enum_column(Provider, 32, nullable=True))
    key_row_id: str | None = Field(default=None, max_length=32)
    mask: str | None = Field(default=None, max_length=16)
    model: str | None = Field(default=None, max_length=120)
    usd: float | None = None  # the budget or price set
    detail: str = Field(default="", max_length=500)  # the rest, in words, shown as written (see AuditAction)
    # An event from before migration 0010 whose target was in no form a release wrote: that text, kept.
    old_target: str | None = Field(default=None, max_length=200)


# ix_usage_cube after its day expression: the usage page's dimensions, then every metric it sums.
CUBE_COLUMNS = ("provider", "model", "user_id", "key_source", "status", "input_tokens", "output_tokens",
                "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "ts")


class UsageRecord(SQLModel, table=True):
    """One provider call (chat or search), successful or not."""

    __tablename__ = "usage_records"
    __table_args__ = (
        sa.Index("ix_usage_user_ts", "user_id", "ts"),
        sa.Index("ix_usage_ts_provider", "ts", "provider"),
        # SQLite only (it has no hash aggregation): the usage page's GROUP BY (usage.summary) reads this
        # covering index in group order, with no sort. The day expression is usage.utc_day's on SQLite.
        sa.Index("ix_usage_cube", sa.text("substr(ts, 1, 10)"), *CUBE_COLUMNS).ddl_if(dialect="sqlite"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=utcnow, index=True)
    user_id: int | None = Field(default=None)  # None: the CLI without --user
    kind: ProviderKind = Field(sa_column=enum_column(ProviderKind, 8))
    provider: Provider = Field(sa_column=enum_column(Provider, 32))
    model: str = Field(default="", max_length=120)
    key_source: KeySource = Field(sa_column=enum_column(KeySource, 8))
    input_tokens: int | None = None  # all billed input: cache reads and writes, tool-use prompts included
    output_tokens: int | None = None  # all billed output: reasoning (thinking) included
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    latency_ms: int = 0
    status: CallStatus = Field(default=CallStatus.OK, sa_column=enum_column(CallStatus, 32, default=CallStatus.OK))
    cost_usd: float | None = None  # None: price unknown (never a made-up zero)
    # What the call counted against shared-key budgets (budgets.charge): its cost, or a bound where
    # that is unknown or partial; None on a person's own key.
    charged_usd: float | None = None
    # A shared-key call's worst case, reserved while it runs: what it is charged if its process dies.
    reserved_usd: float | None = None
    error: str | None = Field(default=None, max_length=300)
    connection: str | None = Field(default=None, max_length=80)  # an OpenAI-compatible call's connection name
    # genai-prices' figure when the provider reported the billed cost itself (``cost_usd``; OpenRouter)
    priced_usd: float | None = None
    key_row_id: str | None = Field(default=None, max_length=32)  # api_keys.id of the stored key that paid (0019)


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    title: str = Field(default="New chat", max_length=200)
    provider: Provider | None = Field(default=None, sa_column=enum_column(Provider, 32, nullable=True))
    model: str | None = Field(default=None, max_length=120)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # Its settings (presets.Settings; migration 0011): sent with every reply, None for the provider's default
    system_prompt: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    temperature: float | None = None
    max_output_tokens: int | None = None
    reasoning_effort: str | None = Field(default=None, max_length=8)  # adapters.base.Effort's value
    # The tip of the branch shown (migration 0012): set when a version is chosen, None for the newest message
    leaf_id: int | None = None
    connection_id: str | None = Field(default=None, max_length=32)  # an OpenAI-compatible one's (0014)


class Preset(SQLModel, table=True):
    """A name for a provider, a model and conversation settings to start a chat from: one person's
    own, or the team's (which admins manage and everyone may pick). Names are unique per owner."""

    __tablename__ = "presets"
    __table_args__ = (sa.UniqueConstraint("owner_kind", "owner_id", "name", name="uq_presets_owner_name"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_kind: OwnerKind = Field(sa_column=enum_column(OwnerKind, 8))
    owner_id: int = Field(index=True)  # users.id, or identity.TEAM_ID for the team
    name: str = Field(max_length=80)
    provider: Provider = Field(sa_column=enum_column(Provider, 32))
    model: str = Field(max_length=120)
    system_prompt: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    temperature: float | None = None
    max_output_tokens: int | None = None
    reasoning_effort: str | None = Field(default=None, max_length=8)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ReplyStatus(StrEnum):
    """Where an assistant reply stands. A user's message is always DONE."""

    STREAMING = "streaming"  # a worker is writing it (``heartbeat_at`` says it is alive)
    DONE = "done"
    STOPPED = "stopped"  # the person pressed Stop: the text so far is kept, and stays in the context
    FAILED = "failed"  # the call failed or was refused: shown with its reason, never sent again
    INTERRUPTED = "interrupted"  # its worker's process stopped mid-reply


class Message(SQLModel, table=True):
    __tablename__ = "messages"  # one reply streaming at a time per conversation: see add_partial_indexes

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("conversations.id", ondelete="CASCADE"), index=True,
                            nullable=False)
    )
    role: str = Field(max_length=16)  # user | assistant
    content: str
    created_at: datetime = Field(default_factory=utcnow)
    # The message this one answers or follows (migration 0012): None for a first prompt. Siblings
    # are versions: an edited prompt, a regenerated reply.
    parent_id: int | None = Field(default=None, index=True)
    # For assistant replies: provider, model, key source, tokens, cost, status, sources (JSON text).
    meta: str = Field(default="{}")
    status: ReplyStatus = Field(default=ReplyStatus.DONE,
                                sa_column=enum_column(ReplyStatus, 16, default=ReplyStatus.DONE))
    heartbeat_at: datetime | None = None  # a streaming reply's worker was alive then
    stop_requested: bool = False


class Attachment(SQLModel, table=True):
    """An image or PDF sent with a prompt (migration 0013), kept in the database with its message:
    deleting the conversation deletes it. ``user_id`` is the owner every read checks."""

    __tablename__ = "attachments"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    conversation_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("conversations.id", ondelete="CASCADE"), index=True,
                            nullable=False))
    message_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("messages.id", ondelete="CASCADE"), index=True, nullable=False))
    name: str = Field(max_length=200)
    media_type: str = Field(max_length=40)  # image/png, image/jpeg, image/webp, image/gif, application/pdf
    size_bytes: int
    width: int = 0  # images: pixels
    height: int = 0
    pages: int = 0  # PDFs
    text_bytes: int = 0  # PDFs: the text their pages hold, in UTF-8 bytes (the budget's worst case counts it)
    data: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Budget(SQLModel, table=True):
    """A monthly USD cap on calls paid by shared (team or server) keys: one user's, or the whole team's."""

    __tablename__ = "budgets"
    __table_args__ = (sa.UniqueConstraint("owner_kind", "owner_id", name="uq_budgets_owner"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_kind: OwnerKind = Field(sa_column=enum_column(OwnerKind, 8))
    owner_id: int  # users.id, or identity.TEAM_ID for the team
    monthly_usd: float


class BudgetMonth(SQLModel, table=True):
    """The running shared-key spend of one owner (a user, or the whole team) in one calendar month
    (UTC): the sum of the month's ``charged_usd``, kept so a budget check reads one row. ``alerted``
    is the highest threshold (80, 100) already announced this month."""

    __tablename__ = "budget_months"

    owner_kind: OwnerKind = Field(sa_column=sa.Column(EnumText(OwnerKind, 8), primary_key=True))
    owner_id: int = Field(primary_key=True)
    month: str = Field(primary_key=True, max_length=7)  # "2026-11"
    spent_usd: float = 0.0
    alerted: int = 0


class Reservation(SQLModel, table=True):
    """The worst-case cost of a shared-key call in flight, held against its budgets until it settles
    (or, for a call whose process died, until ``expires_at``)."""

    __tablename__ = "budget_reservations"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int | None = Field(default=None, index=True)  # None: the CLI without --user
    month: str = Field(max_length=7)
    amount_usd: float
    expires_at: datetime = Field(index=True)


class OwnKeyCap(SQLModel, table=True):
    """A monthly USD cap a person set on their own key for one provider: from 80% their replies say
    so, and with ``stop`` a call that could pass it is refused (``budgets.caps``)."""

    __tablename__ = "own_key_caps"
    __table_args__ = (sa.UniqueConstraint("user_id", "provider", name="uq_own_key_caps_user_provider"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id")
    provider: Provider = Field(sa_column=enum_column(Provider, 32))
    monthly_usd: float
    stop: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class OwnCapMonth(SQLModel, table=True):
    """A capped own key's spend in one calendar month (UTC): what its calls counted, kept so a check
    reads one row (as ``BudgetMonth`` for shared keys)."""

    __tablename__ = "own_cap_months"

    cap_id: int = Field(foreign_key="own_key_caps.id", primary_key=True, ondelete="CASCADE")
    month: str = Field(primary_key=True, max_length=7)
    spent_usd: float = 0.0


class OwnCapReservation(SQLModel, table=True):
    """The worst case of a call in flight on a capped own key, held until it settles or expires."""

    __tablename__ = "own_cap_reservations"

    id: int | None = Field(default=None, primary_key=True)
    cap_id: int = Field(foreign_key="own_key_caps.id", index=True, ondelete="CASCADE")
    amount_usd: float
    expires_at: datetime = Field(index=True)


class ModelAllowlist(SQLModel, table=True):
    """The models a role, or one user, may use on shared keys of one provider (``fnmatch``
    patterns, one per line). A user's list replaces their role's; no list: any model."""

    __tablename__ = "model_allowlists"
    __table_args__ = (sa.UniqueConstraint("subject", "provider", name="uq_model_allowlists"),)

    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(max_length=40)  # "role:member", "role:admin" or "user:<id>"
    provider: Provider = Field(sa_column=enum_column(Provider, 32))
    patterns: str = Field(max_length=4000)


class Lease(SQLModel, table=True):
    """Who runs a background job (``leases.acquire``): one process at a time, across replicas."""

    __tablename__ = "leases"

    name: str = Field(primary_key=True, max_length=40)
    holder: str = Field(max_length=80)
    expires_at: datetime


class AppSetting(SQLModel, table=True):
    """Small admin-editable settings, such as the per-request price of each search provider."""

    __tablename__ = "app_settings"

    name: str = Field(primary_key=True, max_length=80)
    value: str = Field(max_length=500)


class BillingKey(SQLModel, table=True):
    """An admin's read-only billing credential for a provider (OpenAI or Anthropic Admin key), sealed
    under the master key (``reconcile.seal``); used only to read what the provider billed (0019)."""

    __tablename__ = "billing_keys"

    provider: Provider = Field(sa_column=sa.Column(EnumText(Provider, 32), primary_key=True))
    ciphertext: str = Field(repr=False)
    key_id: str = Field(max_length=32)  # master key id that sealed ciphertext
    mask: str = Field(max_length=16)
    saved_at: datetime = Field(default_factory=utcnow)
    saved_by: str = Field(max_length=80)
    checked_at: datetime | None = None  # the last comparison with the provider's bill
    checked_from: date | None = None  # the days it covered
    checked_to: date | None = None
    problem: str | None = Field(default=None, max_length=300)  # why the last one failed, in words; None: it worked


class BillCheck(SQLModel, table=True):
    """One line of the last comparison with a provider's bill (``billcheck.Line``): a day, a key (or
    none: the cost side, or a day with no calls) and a model, what we logged and what it billed (0019)."""

    __tablename__ = "bill_checks"
    __table_args__ = (sa.Index("ix_bill_checks_provider_day", "provider", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: Provider = Field(sa_column=enum_column(Provider, 32))
    day: date
    key_row_id: str | None = Field(default=None, max_length=32)
    key_mask: str = Field(default="", max_length=40)  # ours, or the provider's hint of a key not stored here
    model: str = Field(default="", max_length=120)
    verdict: str = Field(max_length=16)  # billcheck.Verdict's value
    our_tokens: int = 0
    billed_tokens: int = 0
    our_usd: float | None = None
    billed_usd: float | None = None
    reason: str = Field(default="", max_length=500)
    alerted: bool = False  # the admins' webhook heard of this day and key (outside use): once


class DisplayCurrency(SQLModel, table=True):
    """One display currency and rate an admin set (``currency.set_display``); the newest is the
    team's. Rows are only ever added: a rate, once set, is never changed."""

    __tablename__ = "display_currencies"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=3)  # ISO 4217, one of currency.KNOWN
    per_usd: float  # what one US dollar buys of it
    set_at: datetime = Field(default_factory=utcnow)
    set_by: str = Field(max_length=80)  # username, or "operator" for the CLI


def add_partial_indexes() -> None:
    """Add the partial indexes to the metadata: one active key per owner and provider (migration
    0001), and per connection for OpenAI-compatible keys (0014), one reply streaming at a time per
    conversation, whichever process or replica starts it (0006), and the usage rows not finished yet
    (0008). Only Alembic's environment calls this, where the metadata is compared with the database:
    their ``*_where`` options load both SQL dialects (~25 ms of every `byok` command's start)."""
    partial = [
        (table(ApiKey), "uq_api_keys_one_active", ["owner_kind", "owner_id", "provider"],
         "active AND connection_id IS NULL", True),  # 0014: a connection's keys are counted per connection
        (table(ApiKey), "uq_api_keys_one_active_connection", ["connection_id"],
         "active AND connection_id IS NOT NULL", True),
        (table(Message), "ux_messages_one_streaming", ["conversation_id"], "status = 'streaming'", True),
        (table(UsageRecord), "ix_usage_pending", ["ts"], "status = 'pending'", False),  # 0008
    ]
    for tbl, name, columns, where, unique in partial:
        if name not in {index.name for index in tbl.indexes}:
            sa.Index(name, *(tbl.c[c] for c in columns), unique=unique,
                     sqlite_where=sa.text(where), postgresql_where=sa.text(where))
