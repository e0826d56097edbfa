"""Page runs take turns on the CPU: one at a time in this process (a lock, not a queue: whichever
waiting run gets it next; a strict first-come queue was tried and was slower, see the README).

Streamlit runs each page run in a thread of its own, and Python runs one thread's code at a time
(the GIL), switching every few milliseconds. When twenty people send a message at once, twenty
page runs of 20 ms each then all end after about 400 ms: each person waits for everyone. Run one
at a time, they end after 20, 40, ... 400 ms, the same work in the same time, and half of them
wait half as long or less; each reply's call to the provider goes out sooner, so it also ends
sooner. (Measured with ``bench/load.py``; the README has the figures.)

A run gives its turn away while it waits for something else (``waiting``: a reply's next words,
a provider's answer), never holding others up meanwhile, and waits at most ``WAIT`` seconds for
its turn: a run that holds its turn longer (blocked where nobody said it waits) delays the others
by that much at most and can never deadlock them. Reply workers and the fragment runs that draw a
live reply do not take turns: they are short and mostly wait.

The shell takes the turn on the embedded SQLite database only, whose statements are this
process's own CPU time. On PostgreSQL a page run also waits on the network for each of its
statements, and holding the turn meanwhile would hold the others up; there, runs interleave as
Streamlit runs them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

WAIT = 0.5  # seconds a run waits for its turn before it runs anyway, alongside the one that holds it

_turn = threading.Lock()
_held = threading.local()


def holding() -> bool:
    """Whether this thread holds the turn."""
    return bool(getattr(_held, "turn", False))


def take(wait: float = WAIT) -> bool:
    """Wait for the turn (at most ``wait`` seconds); whether this thread now holds it. Taking a
    turn already held is a no-op."""
    if not holding():
        _held.turn = _turn.acquire(timeout=wait)
    return holding()


def give() -> None:
    """Give the turn to the next run (a no-op when this thread does not hold it)."""
    if holding():
        _held.turn = False
        _turn.release()


@contextmanager
def waiting(meanwhile: Callable[[], object] | None = None, every: float = 0.1) -> Iterator[None]:
    """Around a wait (the network, another thread): the turn goes to the next run meanwhile, and
    is taken again afterwards if it was held; while the run waits for it again, ``meanwhile`` is
    called every ``every`` seconds (the live reply draws the words that came)."""
    held = holding()
    give()
    try:
        yield
    finally:
        if held:
            deadline = time.monotonic() + WAIT
            while not take(min(every, max(0.0, deadline - time.monotonic()))) and time.monotonic() < deadline:
                if meanwhile is not None:
                    meanwhile()
