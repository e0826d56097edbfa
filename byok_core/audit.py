"""The audit log: who stored, replaced, deleted or failed to read which key, and account changes."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from byok_core.models import AuditEvent


def record(session: Session, actor: str, action: str, target: str = "", detail: str = "") -> None:
    """Add an event to ``session``'s transaction. Callers pass ids and masks, never secrets."""
    session.add(AuditEvent(actor=actor[:80], action=action, target=target[:200], detail=detail[:500]))


def recent(engine: Engine, limit: int = 200) -> list[AuditEvent]:
    """The newest events first."""
    with Session(engine) as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)))
