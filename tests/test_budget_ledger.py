"""Shared keys under control, through the real chat and search calls on both databases: budgets that
hold under concurrency (reserve, then settle), reservation expiry, unknown prices, model allowlists,
rate limits across processes, and alerts to a loopback webhook."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from callhelpers import dump_database, log_call, runtime_with, usage_rows
from fakeproviders import FakeProvider
from genai_prices import Usage

from byok_core import accounts, alerts, budgets, keys, limits, pricing
from byok_core.chat import ChatMessage, stream_chat
from byok_core.clock import utcnow
from byok_core.errors import BudgetExceeded, PermissionDenied, SharedKeyLimit, ValidationError
from byok_core.identity import Actor, KeySource, Owner, Role
from byok_core.models import BudgetMonth, Reservation, table
from byok_core.providers import Provider
from byok_core.record import CallRecord
from byok_core.runtime import Runtime
from byok_core.search import run_search

ADMIN = Actor.operator()
HI = [ChatMessage("user", "Say hello")]
ENV_KEY = "sk-fake.env-LEDGER-eeeeeeeeeeeeeeeeeeeeee4444"
OWN_KEY = "sk-fake.own-LEDGER-aaaaaaaaaaaaaaaaaaaaaa1111"
REPO = Path(__file__).resolve().parents[1]


def chat(rt, user_id, model="gpt-4o-mini", messages=HI):
    stream = stream_chat(rt, user_id=user_id, provider=Provider.OPENAI, model=model, messages=messages)
    text = "".join(stream)
    return stream.result, text


def spent(rt, owner: Owner) -> float:
    line = next(line for line in budgets.spend_report(rt) if line.owner == owner)
    return line.spent_usd


def open_reservations(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table(Reservation))).scalar_one()


def wait_until(condition, timeout=20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_concurrent_calls_never_overrun_the_budget(environ):
    with FakeProvider(Provider.OPENAI, hold_after=0) as server, \
            runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
        bound = pricing.chat_bound(rt, Provider.OPENAI, "gpt-4o-mini", ["Say hello"], 8192)
        budgets.set_budget(rt, ADMIN, Owner.user(alice.id), "0.02")  # room for 4 of these calls' worst case
        budget = budgets.budget_of(rt, Owner.user(alice.id))
        fits = int(budget // bound.usd)
        refused: list[Exception] = []

        def one_call():
            try:
                result, _ = chat(rt, alice.id)
            except BudgetExceeded as exc:  # refused before the stream started
                refused.append(exc)
                return None
            if result.error is not None:  # refused when admitted, under the lock
                refused.append(result.error)
            return result

        with ThreadPoolExecutor(20) as pool:
            futures = [pool.submit(one_call) for _ in range(20)]
            # every call is either refused or held by the provider, mid-reply, with its reservation open
            wait_until(lambda: len(refused) + len(server.requests) >= 20)
            assert len(server.requests) == fits and open_reservations(rt) == fits
            server.gate.set()
            results = [f.result() for f in futures]

        ok = [r for r in results if r is not None and r.error is None]
        assert len(ok) == fits >= 3 and all(isinstance(e, BudgetExceeded) for e in refused)
        assert open_reservations(rt) == 0
        total = spent(rt, Owner.user(alice.id))
        assert total == pytest.approx(sum(r.record.cost_usd for r in ok)) and total <= budget
        assert budgets.reconcile(rt, fix=False) == []  # the running figure is the log's


def test_more_searches_at_once_than_pooled_connections_are_all_admitted(environ):
    with FakeProvider(Provider.BRAVE) as brave, runtime_with(environ, **brave.env(), BRAVE_API_KEY=ENV_KEY) as rt:
        budgets.set_budget(rt, ADMIN, Owner.team(), 1)  # room for them all: each must wait its turn, none fail
        at_once = 40  # more than the engine's pool holds (15 on SQLite, 20 on PostgreSQL)
        with ThreadPoolExecutor(at_once) as pool:
            found = list(pool.map(lambda _: run_search(rt, user_id=None, provider=Provider.BRAVE, query="q"),
                                  range(at_once)))
        assert all(found) and len(brave.requests) == at_once and open_reservations(rt) == 0
        assert spent(rt, Owner.team()) == pytest.approx(at_once * pricing.search_price(rt, Provider.BRAVE))


def _cut_short(rt, provider: Provider, model: str, stop: str):
    stream = stream_chat(rt, user_id=None, provider=provider, model=model, messages=HI)
    if stop == "person stops":
        deltas = iter(stream)
        next(deltas)
        deltas.close()  # Stop: the generator is closed mid-reply
    else:
        list(stream)
    assert stream.result.record.status == ("stopped" if stop == "person stops" else "cut_off") and stream.result.text
    return stream.result


@pytest.mark.parametrize("stop", ["provider cuts", "person stops"])
def test_a_reply_cut_short_without_any_usage_counts_its_whole_worst_case(environ, stop):
    """OpenAI sends the usage only at the end: a reasoning model may have billed hidden reasoning up
    to the output cap before the first word, so the text received is no bound."""
    fake = {"cut_after": 2} if stop == "provider cuts" else {}
    with FakeProvider(Provider.OPENAI, chunks=["Hel", "lo ", "there"], **fake) as server, \
            runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        budgets.set_budget(rt, ADMIN, Owner.team(), 5)
        result = _cut_short(rt, Provider.OPENAI, "gpt-4o-mini", stop)
        assert result.record.cost_usd is None and result.record.billed is None  # the usage never arrived
        [row] = usage_rows(rt)
        bound = pricing.chat_bound(rt, Provider.OPENAI, "gpt-4o-mini", ["Say hello"], 8192)
        assert row.charged_usd == pytest.approx(bound.usd) and bound.usd > 0
        assert spent(rt, Owner.team()) == pytest.approx(bound.usd) and open_reservations(rt) == 0


@pytest.mark.parametrize("stop", ["provider cuts", "person stops"])
def test_a_reply_cut_short_with_some_usage_settles_to_a_bound_on_what_was_received(environ, stop):
    """Anthropic's message_start carries the usage so far: the prompt's bound plus the text received."""
    fake = {"cut_after": 2} if stop == "provider cuts" else {}
    with FakeProvider(Provider.ANTHROPIC, chunks=["Hel", "lo ", "there"], **fake) as server, \
            runtime_with(environ, **server.env(), ANTHROPIC_API_KEY=ENV_KEY) as rt:
        budgets.set_budget(rt, ADMIN, Owner.team(), 5)
        result = _cut_short(rt, Provider.ANTHROPIC, "claude-haiku-4-5", stop)
        assert result.record.billed is not None
        [row] = usage_rows(rt)
        bound = pricing.chat_bound(rt, Provider.ANTHROPIC, "claude-haiku-4-5", ["Say hello"], 8192)
        expected = pricing.usage_cost(Provider.ANTHROPIC, "claude-haiku-4-5", Usage(
            input_tokens=bound.input_tokens, output_tokens=len(result.text.encode())))
        assert row.charged_usd == pytest.approx(max(expected, result.record.cost_usd or 0))
        assert 0 < row.charged_usd < bound.usd
        assert spent(rt, Owner.team()) == pytest.approx(row.charged_usd) and open_reservations(rt) == 0


def test_a_crashed_calls_reservation_expires(rt):
    alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
    budgets.set_budget(rt, ADMIN, Owner.user(alice.id), 1)
    record = CallRecord(Provider.BRAVE, KeySource.TEAM, user_id=alice.id)
    worst = pricing.CostBound(0.75, per_call=True)
    crashed_at = utcnow() - budgets.RESERVATION_TTL - timedelta(seconds=1)
    with budgets.admitted(rt, record, worst, now=crashed_at):  # its process died: never settled
        pass
    just_before = crashed_at + budgets.RESERVATION_TTL - timedelta(seconds=1)
    with pytest.raises(BudgetExceeded, match=r"\$0.25 left of \$1.00"), \
            budgets.admitted(rt, record, worst, now=just_before):  # still held just before it expires
        pass
    now = utcnow()
    assert budgets.status(rt, alice.id, now).lines[0].reserved_usd == 0  # expired
    with budgets.admitted(rt, record, worst, now=now) as (_, admission):
        pass
    assert budgets.status(rt, alice.id, now).lines[0].reserved_usd == 0.75  # this one is held
    with rt.engine.begin() as conn:
        budgets.settle(conn, admission, record, 0.0, now=now)
    assert open_reservations(rt) == 0  # settling removed its own reservation, and the expired one


def test_unknown_price_is_refused_on_a_budgeted_shared_key_unless_priced_per_call(environ):
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        assert chat(rt, None, model="my-finetune")[0].error is None  # no budget: allowed, cost unknown
        budgets.set_budget(rt, ADMIN, Owner.team(), 10)
        with pytest.raises(BudgetExceeded, match="price is unknown"):
            chat(rt, None, model="my-finetune")
        assert len(server.requests) == 1
        pricing.set_model_price(rt, ADMIN, Provider.OPENAI, "my-finetune", 0.02)
        result, _ = chat(rt, None, model="my-finetune")
        assert result.error is None and result.record.cost_usd == 0.02 and usage_rows(rt)[-1].charged_usd == 0.02
        assert pricing.model_prices(rt) == [(Provider.OPENAI, "my-finetune", 0.02)]


def test_model_allowlist_is_enforced_by_the_server_on_shared_keys_only(environ):
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
        boss = accounts.create_user(rt, Actor.operator(), "boss", "boss-password", role=Role.ADMIN)
        limits.set_allowlist(rt, ADMIN, Provider.OPENAI, "gpt-4o-mini\n  gpt-4.1-*  ", role=Role.MEMBER)
        with pytest.raises(PermissionDenied, match="gpt-4o is not among the models"):
            chat(rt, alice.id, model="gpt-4o")
        assert server.requests == []
        assert chat(rt, alice.id, model="gpt-4o-mini")[0].error is None
        assert chat(rt, boss.id, model="gpt-4o")[0].error is None  # admins have no list
        assert limits.allowed_models(rt, alice.id, Provider.OPENAI, KeySource.ENV,
                                     ["gpt-4o", "gpt-4o-mini", "gpt-4.1-nano"]) == ["gpt-4o-mini", "gpt-4.1-nano"]
        limits.set_allowlist(rt, ADMIN, Provider.OPENAI, ["gpt-4o"], user_id=alice.id)  # replaces her role's
        assert chat(rt, alice.id, model="gpt-4o")[0].error is None
        with pytest.raises(PermissionDenied):
            chat(rt, alice.id, model="gpt-4o-mini")
        keys.store(rt, ADMIN, Owner.user(alice.id), Provider.OPENAI, OWN_KEY)  # own keys are never restricted
        assert chat(rt, alice.id, model="gpt-4o-mini")[0].record.key_source == KeySource.USER
        with pytest.raises(PermissionDenied):
            limits.set_allowlist(rt, Actor.of(alice), Provider.OPENAI, ["gpt-4o"], role=Role.MEMBER)


CALLER = """
import json, sys
from byok_core.chat import ChatMessage, stream_chat
from byok_core.providers import Provider
from byok_core.startup import open_runtime
rt = open_runtime(migrate=False)
outcomes = []
for _ in range(int(sys.argv[1])):
    stream = stream_chat(rt, user_id=int(sys.argv[2]), provider=Provider.OPENAI, model="gpt-4o-mini",
                         messages=[ChatMessage("user", "Say hello")])
    list(stream)
    error = stream.result.error
    outcomes.append("ok" if error is None else f"{type(error).__name__}: {error}")
print(json.dumps(outcomes))
"""


def test_rate_limit_holds_across_two_processes(environ):
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
        limits.set_rate_limits(rt, ADMIN, per_user=4, per_team=None)
        env = {**environ, **server.env(), "OPENAI_API_KEY": ENV_KEY, "PYTHONPATH": str(REPO)}
        procs = [subprocess.Popen([sys.executable, "-c", CALLER, "3", str(alice.id)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outcomes = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            outcomes += json.loads(out)
        assert outcomes.count("ok") == 4 == len(server.requests)
        assert all(o.startswith("SharedKeyLimit: Too many calls on shared keys: you are limited to 4 a minute. "
                                "Try again in ") for o in outcomes if o != "ok")
        # the team's limit counts everyone; own keys are never limited
        limits.set_rate_limits(rt, ADMIN, per_user=None, per_team=4)
        with pytest.raises(SharedKeyLimit) as caught:
            run_search_as(rt, environ, None)
        assert 1 <= caught.value.retry_after <= 60 and "the team's shared keys are limited" in str(caught.value)
        keys.store(rt, ADMIN, Owner.user(alice.id), Provider.OPENAI, OWN_KEY)
        assert chat(rt, alice.id)[0].error is None


def test_a_persons_own_rate_limit_replaces_the_per_person_one_across_processes(environ):
    """Everyone 2 a minute, alice 5 of her own, carl none at all: two processes calling at once for
    alice get 5 calls between them; bob keeps the per-person 2; carl is not limited; the team's
    limit still counts everyone."""
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        alice, bob, carl = (accounts.create_user(rt, ADMIN, name, f"{name}-password")
                            for name in ("alice", "bob", "carl"))
        limits.set_rate_limits(rt, ADMIN, per_user=2, per_team=None)
        limits.set_person_limit(rt, ADMIN, alice.id, 5)
        limits.set_person_limit(rt, ADMIN, carl.id, 0)
        assert limits.person_limits(rt) == {alice.id: 5, carl.id: 0}
        env = {**environ, **server.env(), "OPENAI_API_KEY": ENV_KEY, "PYTHONPATH": str(REPO)}
        procs = [subprocess.Popen([sys.executable, "-c", CALLER, "4", str(alice.id)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        with ThreadPoolExecutor(4) as pool:  # bob, meanwhile, from four threads of this process
            bobs = list(pool.map(lambda _: chat(rt, bob.id)[0].error, range(4)))
        outcomes = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            outcomes += json.loads(out)
        assert outcomes.count("ok") == 5 and all("you are limited to 5 a minute" in o for o in outcomes if o != "ok")
        assert bobs.count(None) == 2 and all("you are limited to 2 a minute" in str(e) for e in bobs if e is not None)
        assert [chat(rt, carl.id)[0].error for _ in range(3)] == [None] * 3
        limits.set_rate_limits(rt, ADMIN, per_user=2, per_team=10)  # 10 made: the team's limit is reached
        assert "the team's shared keys are limited to 10" in str(chat(rt, carl.id)[0].error)
        limits.set_person_limit(rt, ADMIN, alice.id, None)  # back to the per-person figure
        assert limits.person_limits(rt) == {carl.id: 0}


def test_only_admins_set_a_persons_rate_limit_and_it_is_audited(environ):
    from byok_core import audit, words

    with runtime_with(environ) as rt:
        boss = accounts.create_user(rt, ADMIN, "boss", "boss-password", Role.ADMIN)
        mia = accounts.create_user(rt, ADMIN, "mia", "mia-password")
        with pytest.raises(PermissionDenied):
            limits.set_person_limit(rt, Actor.of(mia), mia.id, 0)
        with pytest.raises(ValidationError, match="from 1 up to 100,000"):
            limits.set_person_limit(rt, Actor.of(boss), mia.id, 100_001)
        with pytest.raises(ValidationError, match="no such account"):
            limits.set_person_limit(rt, Actor.of(boss), 9999, 3)
        limits.set_person_limit(rt, Actor.of(boss), mia.id, 3)
        limits.set_person_limit(rt, Actor.of(boss), mia.id, None)
        names = {mia.id: "mia", boss.id: "boss"}
        assert [words.audit_sentence(e, names) for e in audit.recent(rt, limit=2)] == [
            "boss set mia's rate limit on shared keys to the per-person limit",
            "boss set mia's rate limit on shared keys to 3 a minute"]


def run_search_as(rt, environ, user_id):
    with FakeProvider(Provider.BRAVE) as brave, runtime_with(environ, **brave.env(), BRAVE_API_KEY=ENV_KEY) as srt:
        return run_search(srt, user_id=user_id, provider=Provider.BRAVE, query="limits")


class Receiver:
    """A loopback webhook that keeps what it is sent."""

    def __init__(self):
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(200)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000/secret-token-xyz"

    def close(self):
        self.server.shutdown()


def join_alerts() -> None:
    for thread in threading.enumerate():
        if thread.name == "byok-alert":
            thread.join(10)


@contextmanager
def alerting_searches(environ, price: float) -> Iterator[tuple[Runtime, Receiver]]:
    """A runtime whose searches on the server's Brave key cost ``price``, and the webhook its alerts go to."""
    receiver = Receiver()
    try:
        with FakeProvider(Provider.BRAVE) as server, runtime_with(
                environ, **server.env(), BRAVE_API_KEY=ENV_KEY, BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as rt:
            alerts.set_webhook(rt, ADMIN, receiver.url)
            pricing.set_search_price(rt, Actor.operator(), Provider.BRAVE, price)
            yield rt, receiver
    finally:
        receiver.close()


def test_alerts_go_to_the_webhook_once_per_threshold_and_month(environ):
    with alerting_searches(environ, 0.3) as (rt, receiver):
        budgets.set_budget(rt, ADMIN, Owner.team(), 1)
        for _ in range(3):  # 30%, 60%, 90%: the 80% alert
            run_search(rt, user_id=None, provider=Provider.BRAVE, query="alerts")
        join_alerts()
        assert [b["text"] for b in receiver.bodies] == [
            f"BYOK Dashboard: The whole team's monthly budget for shared keys has reached 80% ($0.90 of $1.00 "
            f"in {alerts.month_name(budgets.month_of(utcnow()))})."]
        assert [line.name for line in budgets.alerting(rt)] == ["team"]
        for _ in range(2):  # 0.90 + 0.30 > 1: refused, and admins hear it once
            with pytest.raises(BudgetExceeded):
                run_search(rt, user_id=None, provider=Provider.BRAVE, query="alerts")
        join_alerts()
        assert len(receiver.bodies) == 2
        assert "is nearly used up: shared-key calls are refused when they could cost more than is left ($0.90 of " \
               "$1.00" in receiver.bodies[1]["text"]
        assert alerts.describe(rt) == "http://127.0.0.1/…"
        assert "secret-token-xyz" not in dump_database(rt)  # stored encrypted


def test_a_users_budget_alert_names_the_user(environ):
    with alerting_searches(environ, 0.5) as (rt, receiver):
        mia = accounts.create_user(rt, ADMIN, "Mia", "mia password")
        budgets.set_budget(rt, ADMIN, Owner.user(mia.id), 1)
        for _ in range(2):  # 50%, then 100%: used up
            run_search(rt, user_id=mia.id, provider=Provider.BRAVE, query="alerts")
        join_alerts()
        assert [b["text"] for b in receiver.bodies] == [
            f"BYOK Dashboard: Mia's monthly budget for shared keys is used up: shared-key calls are refused "
            f"($1.00 of $1.00 in {alerts.month_name(budgets.month_of(utcnow()))})."]


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://[fd00:ec2::254]/hook",
                                 "http://metadata.google.internal./x"])
def test_the_guard_refuses_a_metadata_webhook(environ, url):
    with runtime_with(environ, BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as rt:
        with pytest.raises(ValidationError) as refused:
            alerts.set_webhook(rt, ADMIN, url)
        assert alerts.webhook(rt) is None
        assert str(refused.value) == "That webhook URL points at a cloud metadata service, which is never allowed."


@pytest.mark.parametrize(("url", "said"), [
    ("hooks.slack.com/services/T0", "The webhook URL must start with http:// or https:// and name a host, "
                                    "e.g. https://hooks.slack.com/services/…."),
    ("https://user:pw@hooks.example.com/x", "The webhook URL cannot contain a user name, password or '@'"),
    ("http://10.0.0.5/hook", "That webhook URL points at a local or private network address"),
    ("https://hooks example.com/x", "The webhook URL cannot contain spaces")])
def test_webhook_errors_say_webhook(environ, url, said):
    with runtime_with(environ) as rt, pytest.raises(ValidationError) as refused:
        alerts.set_webhook(rt, ADMIN, url)
    assert str(refused.value).startswith(said) and "base URL" not in str(refused.value)


def test_a_private_webhook_is_refused_unless_allowed_and_failures_are_not_fatal(environ, caplog):
    receiver = Receiver()
    try:
        with runtime_with(environ) as rt, pytest.raises(ValidationError):
            alerts.set_webhook(rt, ADMIN, receiver.url)
        with runtime_with(environ, BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as rt:
            alerts.set_webhook(rt, ADMIN, receiver.url)
        with runtime_with(environ) as rt:  # the operator tightened the guard since: nothing is sent
            alerts.notify(rt, "hello").join(10)
            assert receiver.bodies == [] and "budget alert not delivered" in caplog.text
            assert "secret-token-xyz" not in caplog.text
    finally:
        receiver.close()


def test_reconcile_rebuilds_the_running_figures_from_the_log(environ):
    with FakeProvider(Provider.BRAVE) as brave, runtime_with(environ, **brave.env(), BRAVE_API_KEY=ENV_KEY) as rt:
        alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
        run_search(rt, user_id=alice.id, provider=Provider.BRAVE, query="reconcile")
        price = pricing.search_price(rt, Provider.BRAVE)
        with rt.engine.begin() as conn:
            conn.execute(sa.update(table(BudgetMonth)).values(spent_usd=7.0))  # drifted
        drifts = budgets.reconcile(rt)
        assert {(d.owner, d.recorded_usd, d.logged_usd) for d in drifts} == {
            (Owner.team(), 7.0, price), (Owner.user(alice.id), 7.0, price)}
        assert budgets.reconcile(rt) == [] and spent(rt, Owner.user(alice.id)) == price > 0


def test_the_line_under_a_reply_cut_short_says_what_it_counted(environ):
    from byok_ui.chat_view import caption

    with FakeProvider(Provider.OPENAI, chunks=["Hel", "lo ", "there"], cut_after=2) as server, \
            runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        budgets.set_budget(rt, ADMIN, Owner.team(), 5)
        record = _cut_short(rt, Provider.OPENAI, "gpt-4o-mini", "provider cuts").record
        [row] = usage_rows(rt)
        assert record.charged_usd == row.charged_usd > 0
        stored = type(record).from_json(record.to_json())  # as kept with the reply
        assert "cost unknown" in caption(stored) and "counted against the budget (a bound" in caption(stored)


def test_the_first_refusal_tells_the_admins_once_whichever_check_refuses(environ):
    """A budget at 85% ($0.034 of $0.04): the next chat is refused by the quick check before it starts
    (``budgets.check``), a search under the ledger's lock (``admitted``); the webhook hears once
    that calls are being refused, and the refusal shows the digits that make it true."""
    receiver = Receiver()
    try:
        with FakeProvider(Provider.OPENAI) as openai, FakeProvider(Provider.BRAVE) as brave, runtime_with(
                environ, **openai.env(), **brave.env(), OPENAI_API_KEY=ENV_KEY, BRAVE_API_KEY=ENV_KEY,
                BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as rt:
            mia = accounts.create_user(rt, ADMIN, "Mia", "mia password")
            alerts.set_webhook(rt, ADMIN, receiver.url)
            budgets.set_budget(rt, ADMIN, Owner.user(mia.id), "0.04")
            pricing.set_search_price(rt, ADMIN, Provider.BRAVE, 0.01)
            log_call(rt, user_id=mia.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.ENV,
                     input_tokens=1, output_tokens=1, latency_ms=1, cost_usd=0.0338)
            for _ in range(2):
                with pytest.raises(BudgetExceeded) as refused:
                    chat(rt, mia.id, model="gpt-4o")
                join_alerts()
            shown = re.search(r"has \$([\d.]+) left of \$0\.04, and this call could cost up to \$([\d.]+);",
                              str(refused.value))
            assert shown is not None and float(shown[1]) < float(shown[2])
            with pytest.raises(BudgetExceeded):
                run_search(rt, user_id=mia.id, provider=Provider.BRAVE, query="alerts")
            join_alerts()
            assert openai.requests == [] and brave.requests == []
            month = budgets.month_of(utcnow())
            assert [b["text"] for b in receiver.bodies] == [
                "BYOK Dashboard: Mia's monthly budget for shared keys is nearly used up: shared-key calls are "
                f"refused when they could cost more than is left ($0.034 of $0.04 in {alerts.month_name(month)})."]
            with rt.engine.connect() as conn:
                assert conn.execute(sa.select(table(BudgetMonth).c.alerted).where(
                    table(BudgetMonth).c.owner_id == mia.id)).scalar_one() == 100
    finally:
        receiver.close()


@pytest.mark.parametrize(("smaller", "larger", "shown"), [
    (0.0062, 0.0071, ("$0.0062", "$0.0071")), (0.01, 0.02, ("$0.01", "$0.02")),
    (1234.5, 1234.56, ("$1,234.50", "$1,234.56")),
    (0.0, 1e-9, ("$0.000000", "$0.000001")), (0.0049, 0.0051, ("$0.0049", "$0.0051"))])
def test_refusals_show_amounts_with_the_digits_that_tell_them_apart(smaller, larger, shown):
    assert budgets.lines.apart(smaller, larger) == shown


def test_alerts_name_the_month_as_people_say_it():
    assert alerts.month_name("2026-12") == "December 2026" and alerts.month_name("2027-01") == "January 2027"
    assert alerts.budget_reached(None, 80, 0.9, 1, "2026-12").endswith("($0.90 of $1.00 in December 2026).")
