"""The audit log: who stored, replaced, deleted or failed to read which key, and account changes."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from byok_core.models import AuditEvent

if TYPE_CHECKING:
    from byok_core.runtime import Runtime


class AuditAction(StrEnum):
    KEY_STORE = "key.store"
    KEY_REPLACE = "key.replace"
    KEY_DELETE = "key.delete"
    KEY_ROTATE = "key.rotate"
    KEY_DECRYPT_FAILED = "key.decrypt_failed"
    USER_CREATE = "user.create"
    USER_DISABLE = "user.disable"
    USER_ENABLE = "user.enable"
    USER_ROLE = "user.role"
    USER_PASSWORD = "user.password"
    USER_THROTTLED = "user.throttled"
    USER_RENAME = "user.rename"
    BUDGET_SET = "budget.set"
    BUDGET_CLEAR = "budget.clear"
    LIMITS_SET = "limits.set"
    MODELS_SET = "models.set"
    ALERTS_SET = "alerts.set"
    PRICE_SET = "price.set"


def record(session: Session, actor: str, action: AuditAction, target: str = "", detail: str = "") -> None:
    """Add an event to ``session``'s transaction. Callers pass ids and masks, never secrets."""
    session.add(AuditEvent(actor=actor[:80], action=AuditAction(action).value, target=target[:200],
                           detail=detail[:500]))


def recent(rt: Runtime, limit: int = 200) -> list[AuditEvent]:
    """The newest events first."""
    with Session(rt.engine) as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)))
