"""Time in one place: naive UTC datetimes everywhere (SQLite keeps no time zone)."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
