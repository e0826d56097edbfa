"""Time in one place: timezone-aware UTC (SQLModel's UTCDateTime columns require it).

``fake`` replaces the clock for everything that reads it (the key watch, expiry, key stamps), so
tests move time on without sleeping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_source: Callable[[], datetime] | None = None


def utcnow() -> datetime:
    return _source() if _source is not None else datetime.now(UTC)


class FakeClock:
    """A clock that stands still until told to move (``advance``)."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@contextmanager
def fake(start: datetime) -> Iterator[FakeClock]:
    """Every ``utcnow()`` answers the fake clock's time until the block ends."""
    global _source
    clock, before = FakeClock(start), _source
    _source = clock
    try:
        yield clock
    finally:
        _source = before
