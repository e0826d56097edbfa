"""The key watch on a real database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set), driven by
a fake clock: the daily, spread-out schedule, one check at a time per provider, the lease across
two runtimes, the failing state with its banner and webhook, and expiry."""

from __future__ import annotations

import io
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
from callhelpers import dump_database, runtime_with, usage_rows
from fakeproviders import FakeProvider
from test_budget_ledger import Receiver, join_alerts

from byok_core import accounts, alerts, audit, clock, keys, keywatch, leases, words
from byok_core.cli import main
from byok_core.errors import CallStatus, NoKeyError, ValidationError
from byok_core.identity import Actor, KeySource, Owner, Role
from byok_core.providers import Provider

ALICE_KEY = "sk-fake.alice-watch-AAAAAAAAAAAAAAAAAAAAAA1111"
BOB_KEY = "sk-fake.bob-watch-BBBBBBBBBBBBBBBBBBBBBBBBB2222"
TEAM_KEY = "sk-fake.team-watch-TTTTTTTTTTTTTTTTTTTTTTT3333"
ANT_KEY = "sk-ant-fake.watch-CCCCCCCCCCCCCCCCCCCCCCCC4444"
ALL = (ALICE_KEY, BOB_KEY, TEAM_KEY, ANT_KEY)
START = datetime(2026, 12, 6, 0, 0, tzinfo=UTC)
OP = Actor.operator()
QUOTA = {"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                   "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}  # documented shape


@contextmanager
def watched(environ):
    """A fake clock at START, fake OpenAI and Anthropic servers, a runtime pointed at them, a webhook,
    and the people: (clock, rt, openai, anthropic, receiver, alice, bob, admin)."""
    receiver = Receiver()
    try:
        with clock.fake(START) as now, FakeProvider(Provider.OPENAI) as oai, FakeProvider(Provider.ANTHROPIC) as ant, \
                runtime_with(environ, **oai.env(), **ant.env(), BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as rt:
            alice = Actor.of(accounts.create_user(rt, OP, "alice", "alice-password"))
            bob = Actor.of(accounts.create_user(rt, OP, "bob", "bob-password"))
            admin = Actor.of(accounts.create_user(rt, OP, "root", "root-password", Role.ADMIN))
            alerts.set_webhook(rt, admin, receiver.url)
            yield now, rt, oai, ant, receiver, alice, bob, admin
    finally:
        receiver.close()


def mine(rt, actor: Actor | None, provider=Provider.OPENAI) -> keys.KeyInfo:
    """The key in use of ``actor`` (None: the team's)."""
    owner = Owner.team() if actor is None else Owner.user(actor.user_id)
    return next(i for i in keys.list_keys(rt, OP, owner) if i.active and i.provider is provider)


def texts(receiver) -> list[str]:
    join_alerts()
    return [b["text"] for b in receiver.bodies]


def test_each_key_is_checked_once_a_day_at_its_own_time(environ):
    with watched(environ) as (now, rt, oai, _, _, alice, _, _):
        info = keys.store(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, ALICE_KEY)
        at = START + keywatch.slot(info.id)
        assert keywatch.next_check(info.id, info.created_at, None) == at
        now.now = at - timedelta(seconds=1)
        assert keywatch.tick(rt, "one") == []
        assert oai.requests == []
        now.now = at
        [checked] = keywatch.tick(rt, "one")
        assert (checked.key_id, checked.status, checked.changed) == (info.id, CallStatus.OK, False)
        assert len(oai.requests) == 1 and oai.sent_keys() == [ALICE_KEY]
        assert usage_rows(rt) == []  # a key test, as the Test button's: stamped on the key, not a usage row
        assert (mine(rt, alice).checked_at, mine(rt, alice).last_used_at) == (at, None)  # a check is not a use
        for hours in (1, 12, 23):  # not again the same day
            now.now = at + timedelta(hours=hours)
            assert keywatch.tick(rt, "one") == []
        now.now = at + timedelta(days=1)
        assert [c.key_id for c in keywatch.tick(rt, "one")] == [info.id]
        assert len(oai.requests) == 2
        assert keywatch.status_line(mine(rt, alice)) == \
            f"Last checked Dec 7, {now.now:%H:%M} UTC: works"


def test_a_check_now_moves_the_next_check_at_least_half_a_day_on():
    key_id = "0" * 32
    at = START + keywatch.slot(key_id)
    assert keywatch.next_check(key_id, START, at - timedelta(hours=11)) == at + timedelta(days=1)
    assert keywatch.next_check(key_id, START, at - timedelta(hours=12)) == at


def test_the_checks_are_spread_over_the_day():
    hours = {keywatch.slot(f"{n:032x}") // timedelta(hours=1) for n in range(200)}
    assert len(hours) == 24  # 200 keys: some in every hour of the day, none all at midnight


def test_one_key_at_a_time_per_provider(environ):
    with watched(environ) as (now, rt, oai, ant, _, alice, bob, admin):
        for actor, owner, key in ((alice, Owner.user(alice.user_id), ALICE_KEY),
                                  (bob, Owner.user(bob.user_id), BOB_KEY), (admin, Owner.team(), TEAM_KEY)):
            keys.store(rt, actor, owner, Provider.OPENAI, key)
        keys.store(rt, alice, Owner.user(alice.user_id), Provider.ANTHROPIC, ANT_KEY)
        now.advance(days=1)  # all four due
        rounds = []
        while checked := keywatch.tick(rt, "one"):
            rounds.append(sorted(c.provider.value for c in checked))
        assert rounds == [["anthropic", "openai"], ["openai"], ["openai"]]
        assert sorted(oai.sent_keys()) == sorted([ALICE_KEY, BOB_KEY, TEAM_KEY]) and ant.sent_keys() == [ANT_KEY]


def test_one_runtime_at_a_time_holds_the_lease(environ):
    with watched(environ) as (now, rt, oai, _, _, alice, _, _):
        keys.store(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, ALICE_KEY)
        now.advance(days=1)
        with runtime_with(environ, **oai.env()) as other:
            assert len(keywatch.tick(rt, "replica-a")) == 1
            assert keywatch.tick(other, "replica-b") is None  # not while replica-a holds the lease
            now.advance(minutes=5)
            assert keywatch.tick(rt, "replica-a") == []  # which it keeps by taking it again
            now.advance(minutes=5)
            assert keywatch.tick(other, "replica-b") is None
            now.advance(seconds=keywatch.LEASE_TTL.total_seconds())  # replica-a stopped renewing it
            assert keywatch.tick(other, "replica-b") == []
            assert keywatch.tick(rt, "replica-a") is None
        assert len(oai.requests) == 1
        barrier = threading.Barrier(6)

        def take(n: int) -> bool:
            barrier.wait()
            return leases.acquire(rt, "race", f"holder-{n}", timedelta(minutes=1))

        with ThreadPoolExecutor(6) as pool:
            assert sorted(pool.map(take, range(6))) == [False] * 5 + [True]


def test_a_rejected_key_is_failing_with_one_banner_and_one_webhook_per_change(environ, caplog):
    with watched(environ) as (now, rt, oai, _, receiver, alice, _, admin):
        keys.store(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, ALICE_KEY)
        keys.store(rt, admin, Owner.team(), Provider.ANTHROPIC, ANT_KEY)
        with FakeProvider(Provider.ANTHROPIC, status=401) as rejecting, \
                runtime_with(environ, **oai.env(), **rejecting.env(), BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as rt2:
            now.advance(days=1)
            checked = keywatch.tick(rt2, "one")
            assert {(c.provider, c.status, c.changed) for c in checked} == {
                (Provider.OPENAI, CallStatus.OK, False), (Provider.ANTHROPIC, CallStatus.KEY_REJECTED, True)}
            mask = mine(rt, None, Provider.ANTHROPIC).mask
            alert = (f"BYOK Dashboard: the team's Anthropic key {mask} stopped working on Dec 7 (rejected); save a "
                     "new one under Admin → Team keys.")
            assert texts(receiver) == [alert]
            assert keywatch.problems(rt, alice) == []  # her key works; the team's is the admins' to hear of
            [problem] = keywatch.problems(rt, admin)
            assert problem.text == (f"The team's Anthropic key {mask} stopped working on Dec 7 (rejected): save a "
                                    "new one under Admin → Team keys.")
            assert keywatch.status_line(mine(rt, None, Provider.ANTHROPIC)).startswith(
                "Stopped working on Dec 7 (rejected) · last checked Dec 7, ")
            keywatch.dismiss(rt, admin, problem)
            assert keywatch.problems(rt, admin) == []
            now.advance(days=1)
            outcome = keywatch.check(rt2, admin, Owner.team(), Provider.ANTHROPIC)  # "Check now": still rejected
            assert outcome.status is CallStatus.KEY_REJECTED
            assert keywatch.problems(rt, admin) == [] and texts(receiver) == [alert]  # the same problem: once
            assert mine(rt, None, Provider.ANTHROPIC).failing_since.date() == (START + timedelta(days=1)).date()
        now.advance(days=1)
        assert keywatch.check(rt, admin, Owner.team(), Provider.ANTHROPIC).ok  # works again: not failing
        assert mine(rt, None, Provider.ANTHROPIC).failing_since is None
        with FakeProvider(Provider.ANTHROPIC, status=401) as rejecting, \
                runtime_with(environ, **rejecting.env(), BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as rt3:
            now.advance(days=1)
            keywatch.check(rt3, admin, Owner.team(), Provider.ANTHROPIC)
        assert len(texts(receiver)) == 2 and "stopped working on Dec 10" in texts(receiver)[1]
        [again] = keywatch.problems(rt, admin)  # a new problem: a new banner
        assert "stopped working on Dec 10 (rejected)" in again.text
        for text in (dump_database(rt), caplog.text, repr(again), *texts(receiver)):
            assert not any(k in text for k in ALL)


@pytest.mark.parametrize(("status", "body", "failing"), [
    (429, QUOTA, "out of quota"),  # no credit left: it stopped working
    (429, None, None),  # too many requests: nothing known about the key
    (503, None, None),  # the provider down: nothing known about the key
])
def test_only_a_rejected_or_exhausted_key_stops_working(environ, status, body, failing):
    with watched(environ) as (now, _, _, _, receiver, alice, _, _), \
            FakeProvider(Provider.OPENAI, status=status, error_body=body) as answer, \
            runtime_with(environ, **answer.env()) as rt:
        keys.store(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, ALICE_KEY)
        now.advance(days=1)
        [checked] = keywatch.tick(rt, "one")
        assert checked.changed is (failing is not None)
        info = mine(rt, alice)
        assert info.failing_reason == failing
        line = keywatch.status_line(info)
        assert line.startswith(f"Stopped working on Dec 7 ({failing})") if failing else \
            line.startswith("Last checked Dec 7, ") and ": could not tell (the provider " in line
        assert [p.text.split(":")[0] for p in keywatch.problems(rt, alice)] == (
            [f"Your OpenAI key {info.mask} stopped working on Dec 7 ({failing})"] if failing else [])
        assert texts(receiver) == []  # her own key: the team's webhook never hears of it


def test_an_expired_key_is_passed_over_and_its_owner_told_a_week_before(environ):
    with watched(environ) as (now, rt, _, _, receiver, alice, _, admin):
        last_day = START.date() + timedelta(days=10)  # Dec 16
        with pytest.raises(ValidationError, match="has passed"):
            keys.store(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, ALICE_KEY,
                       expires_on=START.date() - timedelta(days=1))
        own = keys.store(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, ALICE_KEY, expires_on=last_day)
        team = keys.store(rt, admin, Owner.team(), Provider.OPENAI, TEAM_KEY)
        keys.set_expiry(rt, admin, Owner.team(), team.id, last_day)
        assert keywatch.status_line(mine(rt, alice)).startswith("Expires on Dec 16 · ")
        assert keywatch.problems(rt, alice) == [] and keywatch.warn_expiring(rt) == 0  # ten days before
        now.advance(days=3)  # a week before
        assert [p.text for p in keywatch.problems(rt, alice)] == [
            f"Your OpenAI key {own.mask} expires on Dec 16: save a new one on the Keys page before then, or "
            "change its expiry date."]
        keywatch.tick(rt, "one")
        keywatch.tick(rt, "one")
        assert texts(receiver) == [
            f"BYOK Dashboard: the team's OpenAI key {team.mask} expires on Dec 16; save a new one under Admin → "
            "Team keys before then, or change its expiry date."]  # once
        assert keys.resolve(rt, alice.user_id, Provider.OPENAI).source is KeySource.USER  # used through Dec 16
        now.now = datetime(2026, 12, 16, 23, 59, tzinfo=UTC)
        assert keys.resolve(rt, alice.user_id, Provider.OPENAI).source is KeySource.USER
        now.advance(minutes=1)  # Dec 17: neither key is used, nor checked
        with pytest.raises(NoKeyError) as refused:
            keys.resolve(rt, alice.user_id, Provider.OPENAI)
        assert str(refused.value) == ("Your OpenAI key expired on Dec 16, and there is no other API key for OpenAI: "
                                      "add one on the Keys page (or ask an admin for a team key).")
        keys.set_expiry(rt, admin, Owner.team(), team.id, None)
        paid = keys.resolve(rt, alice.user_id, Provider.OPENAI)
        assert (paid.source, paid.note) == (KeySource.TEAM, "Your OpenAI key expired on Dec 16.")
        assert keys.sources(rt, alice.user_id)[Provider.OPENAI] is KeySource.TEAM
        assert [r.id for r in keywatch.due(rt)] == [team.id]
        assert keywatch.status_line(mine(rt, alice)).startswith("Expired on Dec 16: not used · ")
        assert [p.text for p in keywatch.problems(rt, alice)] == [
            f"Your OpenAI key {own.mask} expired on Dec 16 and is no longer used: save a new one on the Keys page."]
        names = {admin.user_id: "root"}
        assert [words.audit_sentence(e, names) for e in audit.recent(rt, limit=2)] == [
            f"root removed the expiry date of the team's OpenAI key {team.mask}",
            f"root set the team's OpenAI key {team.mask} to expire after 2026-12-16"]


def test_byok_keys_check_and_set_expires(environ, capsys):
    with watched(environ) as (now, rt, oai, _, _, _, _, _), pytest.MonkeyPatch.context() as mp:
        for name, value in {**environ, **oai.env()}.items():
            mp.setenv(name, value)
        mp.setattr(sys, "stdin", io.StringIO(TEAM_KEY + "\n"))
        assert main(["keys", "set", "--team", "--provider", "openai", "--expires", "2026-12-31"]) == 0
        info = mine(rt, None)
        assert info.expires_on == date(2026, 12, 31) and info.checked_at == START  # tested as it was saved
        assert main(["keys", "check"]) == 0
        assert capsys.readouterr().err.endswith("no key is due for its daily check\n")
        now.advance(days=2)  # its time of day has come at least once, whatever it is
        assert main(["keys", "check"]) == 0
        assert capsys.readouterr().out == f"openai key {info.id} (team): ok\n"
        with pytest.raises(SystemExit):
            main(["keys", "set", "--team", "--provider", "openai", "--expires", "31.12.2026"])
        assert "is not a day written YYYY-MM-DD" in capsys.readouterr().err
        assert keywatch.tick(rt, "another process") is None  # the command holds the lease for a while
        now.advance(seconds=keywatch.LEASE_TTL.total_seconds())
        assert keywatch.tick(rt, "another process") == []
        assert main(["keys", "check"]) == 1
        assert "another process is checking keys" in capsys.readouterr().err


def test_the_background_thread_runs_rounds_until_stopped(environ):
    with watched(environ) as (now, rt, oai, _, _, alice, _, _):
        info = keys.store(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, ALICE_KEY)
        now.advance(days=1)
        stop = threading.Event()
        thread = keywatch.run_in_background(rt, interval=0.01, stop=stop)
        assert thread.daemon and thread.name == "byok-keywatch"
        deadline = time.monotonic() + 10  # then the assertion below fails
        while mine(rt, alice).checked_at is None and time.monotonic() < deadline:
            stop.wait(0.01)
        stop.set()
        thread.join(10)
        assert not thread.is_alive()
        assert mine(rt, alice).checked_at == now.now and oai.sent_keys() == [ALICE_KEY]  # once: not due again
        assert keywatch.due(rt) == [] and info.active
