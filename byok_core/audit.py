"""The audit log: who stored, replaced, deleted or failed to read which key, and account and setting changes.

An event names what it is about in fields (a ``Target``: an owner, an account, a role, a provider, a
key row and its mask, a model), the amount set when there is one, and a ``detail`` in words that is
shown as written, never parsed (``words.audit_sentence`` makes the sentence from the fields).

Admins read it newest first, narrowed by who acted, what they did and when (``AuditFilter``), and
export the same as CSV (``write_csv``)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import sqlalchemy as sa
from sqlmodel import Session, col, select

from byok_core.csvcells import cell
from byok_core.identity import Owner, OwnerKind, Role
from byok_core.models import AuditEvent
from byok_core.providers import Provider

if TYPE_CHECKING:
    from byok_core.runtime import Runtime


class AuditAction(StrEnum):
    """What happened. After each, what its ``detail`` holds ("shown": the audit log's sentence says it
    as written; "a note": kept, not shown); none: empty."""

    KEY_STORE = "key.store"
    KEY_REPLACE = "key.replace"  # shown: "a replaced key, restored"
    KEY_DELETE = "key.delete"  # shown: "replaced more than 30 days ago", "forgotten: ..."
    KEY_ROTATE = "key.rotate"  # a note: "from master key <id> to <id>"
    KEY_DECRYPT_FAILED = "key.decrypt_failed"  # why, shown
    KEY_EXPIRY = "key.expiry"  # the last day the key is used, shown (YYYY-MM-DD; empty: no expiry)
    USER_CREATE = "user.create"  # a note: "first-run setup"
    USER_DISABLE = "user.disable"
    USER_ENABLE = "user.enable"
    USER_ROLE = "user.role"  # why single sign-on chose the role, shown: "from their single sign-on groups"
    USER_PASSWORD = "user.password"
    USER_THROTTLED = "user.throttled"  # after what, shown: "3 failed tries"
    USER_RENAME = "user.rename"  # the account's old name, shown
    BUDGET_SET = "budget.set"
    BUDGET_CLEAR = "budget.clear"
    LIMITS_SET = "limits.set"  # the limits, shown
    MODELS_SET = "models.set"  # the models allowed, shown (empty: any model)
    ALERTS_SET = "alerts.set"  # the webhook's host, shown (empty: removed)
    ALERTS_ROTATE = "alerts.rotate"  # a note: "to master key <id>"
    PRICE_SET = "price.set"
    PRESET_SET = "preset.set"  # the team preset's name, shown (created or changed)
    PRESET_DELETE = "preset.delete"  # the team preset's name, shown
    CURRENCY_SET = "currency.set"  # the currency and its rate, shown: "EUR at 1 USD = 0.92 EUR"
    FALLBACK_SET = "fallback.set"  # shown: "on" or "off" (the provider: the target's)
    CONNECTION_SET = "connection.set"  # the connection's name and base URL, shown (created or renamed)
    CONNECTION_DELETE = "connection.delete"  # the connection's name, shown
    BILLING_KEY_SET = "billing_key.set"  # the provider's; the key's mask (none: removed)


class _KeyRow(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def owner_kind(self) -> OwnerKind: ...
    @property
    def owner_id(self) -> int: ...
    @property
    def provider(self) -> Provider: ...


@dataclass(frozen=True)
class Target:
    """What an event is about; the fields it has no use for stay None."""

    owner: Owner | None = None  # whose key, budget or model list
    username: str | None = None  # the account (after a rename, its new name)
    role: Role | None = None  # the role an account was given, or the role a model list is for
    provider: Provider | None = None  # the key's, model list's or price's
    key_row_id: str | None = None
    mask: str | None = None
    model: str | None = None  # the chat model a per-call price is for

    @classmethod
    def key(cls, row: _KeyRow, mask: str | None = None) -> Target:
        """A stored key (a row of ``api_keys``, or of a query over its columns) and its mask."""
        return cls(owner=Owner(row.owner_kind, row.owner_id), provider=row.provider, key_row_id=row.id, mask=mask)

    @classmethod
    def of(cls, event: AuditEvent) -> Target:
        owner = None if event.owner_kind is None or event.owner_id is None else Owner(event.owner_kind,
                                                                                      event.owner_id)
        return cls(owner=owner, username=event.username, role=event.role, provider=event.provider,
                   key_row_id=event.key_row_id, mask=event.mask, model=event.model)


def event(actor: str, action: AuditAction, target: Target = Target(), *, usd: float | None = None,
          detail: str = "") -> AuditEvent:
    """An event about ``target``: ``usd`` is the budget or price set (None when removed), ``detail``
    what its action keeps there (see AuditAction). Callers pass ids and masks, never secrets."""
    owner = target.owner
    return AuditEvent(
        actor=actor[:80], action=AuditAction(action).value,
        owner_kind=None if owner is None else owner.kind, owner_id=None if owner is None else owner.id,
        username=target.username, role=target.role, provider=target.provider, key_row_id=target.key_row_id,
        mask=target.mask, model=target.model, usd=usd, detail=detail[:500])


def record(session: Session, actor: str, action: AuditAction, target: Target = Target(), *,
           usd: float | None = None, detail: str = "") -> None:
    """Add an ``event`` to ``session``'s transaction."""
    session.add(event(actor, action, target, usd=usd, detail=detail))


@dataclass(frozen=True)
class AuditFilter:
    """Which events to read: by whom (``AuditEvent.actor``), which actions, and UTC days (both
    inclusive); empty or None means any."""

    actors: Sequence[str] = ()
    actions: Sequence[str] = ()
    since: date | None = None
    until: date | None = None

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        where: list[sa.ColumnElement[bool]] = []
        if self.actors:
            where.append(col(AuditEvent.actor).in_(list(self.actors)))
        if self.actions:
            where.append(col(AuditEvent.action).in_([str(a) for a in self.actions]))
        if self.since:
            where.append(col(AuditEvent.ts) >= datetime.combine(self.since, time(), tzinfo=UTC))
        if self.until:
            where.append(col(AuditEvent.ts) < datetime.combine(self.until + timedelta(days=1), time(), tzinfo=UTC))
        return where


def recent(rt: Runtime, limit: int = 200, flt: AuditFilter = AuditFilter()) -> list[AuditEvent]:
    """The newest events of ``flt`` first, at most ``limit``."""
    query = select(AuditEvent).where(*flt.conditions()).order_by(col(AuditEvent.id).desc()).limit(limit)
    with Session(rt.engine) as session:
        return list(session.exec(query))


def count(rt: Runtime, flt: AuditFilter = AuditFilter()) -> int:
    """How many events ``flt`` selects."""
    with rt.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(AuditEvent).where(*flt.conditions()))
                   .scalar_one())


def actors(rt: Runtime) -> list[str]:
    """Everyone who appears as the actor of an event (usernames, "operator", ...), sorted."""
    with rt.engine.connect() as conn:
        return sorted(conn.execute(sa.select(col(AuditEvent.actor)).distinct()).scalars())


CSV_COLUMNS = ["timestamp", "actor", "action", "what_happened", "username", "provider", "key_row_id", "mask",
               "model", "usd", "detail"]


def write_csv(rt: Runtime, flt: AuditFilter, out: TextIO, sentence: Callable[[AuditEvent], str],
              batch: int = 2_000) -> int:
    """Write ``flt``'s events as CSV, oldest first, each with ``sentence`` (the log's words for it;
    ``words.audit_sentence``) and its fields; the row count. Never holds a secret: events do not."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    query = select(AuditEvent).where(*flt.conditions()).order_by(col(AuditEvent.id))
    written = 0
    with Session(rt.engine) as session:
        for event in session.exec(query.execution_options(yield_per=batch)):
            values: list[Any] = [event.ts.isoformat(), event.actor, event.action, sentence(event), event.username,
                                 event.provider.value if event.provider else None, event.key_row_id, event.mask,
                                 event.model, event.usd, event.detail or None]
            writer.writerow([cell(v) for v in values])
            written += 1
    return written
