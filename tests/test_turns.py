"""Page runs take turns on the CPU (byok_ui/turns.py): one holds the turn, the next waits for it
(at most WAIT), a wait gives it away, and however a run ends its turn is given."""

import threading

import pytest

from byok_ui import turns


@pytest.fixture(autouse=True)
def no_turn_left_over():
    yield
    assert not turns._turn.locked(), "a turn was left held"


class Run(threading.Thread):
    """Another page run: takes its turn (waiting up to ``wait``), says whether it got it, and keeps
    it until told to end."""

    def __init__(self, wait: float = 30.0):
        super().__init__(daemon=True)
        self.wait, self.got, self.taken, self.end = wait, None, threading.Event(), threading.Event()

    def run(self) -> None:
        self.got = turns.take(self.wait)
        self.taken.set()
        self.end.wait(30)
        turns.give()


def test_the_next_run_waits_for_the_turn_and_gets_it_when_it_is_given():
    assert turns.take()
    other = Run()
    other.start()
    assert not other.taken.wait(0.2)  # still waiting: this thread holds the turn
    turns.give()
    assert other.taken.wait(5) and other.got
    assert not turns.holding()  # the turn is the other run's now
    other.end.set()
    other.join(5)


def test_a_run_that_keeps_its_turn_too_long_delays_the_next_by_wait_at_most():
    holder = Run()
    holder.start()
    assert holder.taken.wait(5) and holder.got
    assert turns.take(wait=0.05) is False  # it runs anyway, without the turn
    turns.give()  # a no-op: it holds nothing, and must not free the holder's turn
    assert turns._turn.locked()
    holder.end.set()
    holder.join(5)


def test_a_wait_gives_the_turn_to_the_next_run_and_takes_it_back_after():
    assert turns.take()
    other = Run()
    with turns.waiting():
        other.start()
        assert other.taken.wait(5) and other.got  # it ran while this one waited
        other.end.set()
        other.join(5)
    assert turns.holding()
    turns.give()


def test_while_a_run_waits_for_its_turn_again_it_keeps_drawing():
    """The live reply's words keep coming while the page's run queues for its turn again."""
    assert turns.take()
    other, calls = Run(), []

    def meanwhile() -> None:
        calls.append(turns.holding())
        if len(calls) == 3:
            other.end.set()  # the other run ends: the turn is free

    with turns.waiting(meanwhile, every=0.01):
        other.start()
        assert other.taken.wait(5) and other.got
    assert turns.holding() and calls[:3] == [False, False, False]
    turns.give()
    other.join(5)


def test_a_wait_outside_a_turn_takes_none():
    with turns.waiting():
        assert not turns.holding()
    assert not turns.holding()


def test_taking_a_turn_already_held_keeps_it_once():
    assert turns.take()
    assert turns.take()
    turns.give()
    assert not turns.holding() and not turns._turn.locked()


def test_every_page_run_takes_a_turn_on_sqlite_and_gives_it(app, rt, environ, monkeypatch):
    """The shell takes a turn for each page run on SQLite (none on PostgreSQL, where a run also
    waits on the network); after a run that draws a page, one that sends a message and follows its
    reply, and one that ends early (Sign out reruns), none is held."""
    from apptest import make_user, page_as, send_message, use_environment
    from fakeproviders import FakeProvider

    from byok_core import keys
    from byok_core.identity import Actor, Owner
    from byok_core.providers import Provider

    taken = []
    take = turns.take
    monkeypatch.setattr(turns, "take", lambda *wait: taken.append(take(*wait)) or taken[-1])
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-ann-fake-key-1234")
    with FakeProvider(Provider.OPENAI, reply="Hello from the fake model") as fake:
        use_environment(monkeypatch, {**environ, **fake.env()})
        at = page_as(rt, ann)
        assert not turns._turn.locked()
        send_message(at, rt, "hello")
        assert not at.exception and "Hello from the fake model" in at.markdown[-1].value
        assert not turns._turn.locked()
        at.button(key="shell_sign_out").click().run()
        assert not turns._turn.locked()
    assert bool(taken) == (rt.engine.dialect.name == "sqlite") and all(taken)
