"""Spend checked against the provider's own bill, on a real database (SQLite, and PostgreSQL when
TEST_DATABASE_URL is set), with fake OpenAI and Anthropic billing APIs on loopback HTTP answering in
their documented shapes (tests/recordings/MANIFEST.json "billing"): a match, a price bug, a count
bug, calls made outside the app, days with no calls, paging, and a revoked billing key; and that each
call logs the stored key that paid."""

from __future__ import annotations

import io
import logging
import sys
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from callhelpers import dump_database, log_call, runtime_with, usage_rows
from fakebilling import Cost, FakeBilling, Usage
from fakeproviders import FakeProvider
from sqlmodel import Session, select
from test_budget_ledger import Receiver, join_alerts

from byok_core import accounts, alerts, audit, billcheck, clock, keys, reconcile, words
from byok_core.adapters.billing import Bill, BilledCost, BilledUsage, ProviderKey
from byok_core.audit import AuditAction
from byok_core.billcheck import Logged, OurKey, Verdict
from byok_core.chat import ChatMessage, stream_chat
from byok_core.cli import main
from byok_core.crypto import gen_key
from byok_core.errors import PermissionDenied, ValidationError
from byok_core.identity import Actor, KeySource, Owner, Role
from byok_core.models import BillCheck, BillingKey
from byok_core.providers import Provider

ADMIN_KEY = "sk-admin-fake.billing-PLAINTEXT-AAAAAAAAAAAAAAAAAAA9876"
ANT_ADMIN_KEY = "sk-ant-admin01-fake.billing-BBBBBBBBBBBBBBBBBBBBBBBB5432"
TEAM_KEY = "sk-fake.team-bill-TTTTTTTTTTTTTTTTTTTTTTTT3333"
ALICE_KEY = "sk-fake.alice-bill-AAAAAAAAAAAAAAAAAAAAAAA1111"
ANT_TEAM_KEY = "sk-ant-api03-fake.team-bill-CCCCCCCCCCCCCCCC7777"
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
DEC = {n: date(2026, 12, n) for n in range(1, 7)}
OP = Actor.operator()
MINI = "gpt-4o-mini-2024-07-18"


@contextmanager
def billed(environ, provider=Provider.OPENAI, admin_key=ADMIN_KEY, page_size=31):
    """A fake billing API, a runtime pointed at it with a webhook, the team's and alice's keys stored,
    and the billing key saved: (rt, bill, receiver, admin, team key row id, alice's key row id)."""
    receiver = Receiver()
    try:
        with clock.fake(NOW), FakeBilling(provider, admin_key, page_size) as bill, \
                runtime_with(environ, **bill.env()) as rt:
            admin = Actor.of(accounts.create_user(rt, OP, "root", "root-password", Role.ADMIN))
            alice = accounts.create_user(rt, OP, "alice", "alice-password")
            alerts.set_webhook(rt, admin, receiver.url)
            team_key, alice_key = (TEAM_KEY, ALICE_KEY) if provider is Provider.OPENAI else (ANT_TEAM_KEY, None)
            team = keys.store(rt, OP, Owner.team(), provider, team_key)
            mine = keys.store(rt, OP, Owner.user(alice.id), provider, alice_key) if alice_key else None
            hint = (lambda k: f"sk-...{k[-4:]}") if provider is Provider.OPENAI else (lambda k: f"{k[:15]}...{k[-4:]}")
            bill.keys += [("key_team", hint(team_key)), ("key_other", "sk-...0000")]
            if mine is not None:
                bill.keys.append(("key_alice", hint(ALICE_KEY)))
            reconcile.save_key(rt, admin, provider, admin_key)
            yield rt, bill, receiver, admin, team.id, mine.id if mine else None
    finally:
        receiver.close()


def call(rt, when: datetime, key_row_id: str, n_in: int, n_out: int, usd: float, model: str = "gpt-4o-mini",
         provider=Provider.OPENAI) -> None:
    with clock.fake(when):
        log_call(rt, provider=provider, key_source=KeySource.TEAM, model=model, input_tokens=n_in,
                 output_tokens=n_out, cost_usd=usd, key_row_id=key_row_id)


def at(n: int, hour: int = 10) -> datetime:
    return datetime(2026, 12, n, hour, tzinfo=UTC)


def verdicts(result) -> list[tuple[date, Verdict]]:
    return [(line.day, line.verdict) for line in result.lines]


def test_a_match_says_so_for_the_days_and_the_other_days_had_no_calls(environ):
    with billed(environ) as (rt, bill, receiver, admin, team, _):
        call(rt, at(3), team, 1000, 200, 0.00027)
        call(rt, at(3, 15), team, 1000, 200, 0.00027)
        bill.usage.append(Usage(DEC[3], "key_team", MINI, 2000, 400, 0, 2))
        bill.costs += [Cost(DEC[3], MINI, 0.0003, "input"), Cost(DEC[3], MINI, 0.00024, "output")]
        result = reconcile.check_now(rt, admin, Provider.OPENAI, since=DEC[1])
        assert result.headline == "Checked against OpenAI's bill: matches within 0.5% for Dec 1\u20135."
        assert verdicts(result) == [(DEC[1], Verdict.NO_CALLS), (DEC[2], Verdict.NO_CALLS), (DEC[3], Verdict.MATCH),
                                    (DEC[3], Verdict.MATCH), (DEC[4], Verdict.NO_CALLS), (DEC[5], Verdict.NO_CALLS)]
        assert result.lines[0].reason == "Dec 1: no calls, and OpenAI billed none."
        stored = reconcile.lines(rt, admin, Provider.OPENAI)
        assert [(r.day, r.verdict) for r in stored][:2] == [(DEC[5], "no_calls"), (DEC[4], "no_calls")]
        [info] = reconcile.billing_keys(rt, admin)
        assert (info.checked_from, info.checked_to, info.problem) == (DEC[1], DEC[5], None)
        assert all(a == ADMIN_KEY for a in bill.auth) and texts(receiver) == []


def test_a_price_bug_on_cached_tokens_is_told_loudly(environ):
    with billed(environ) as (rt, bill, _, admin, team, _):
        call(rt, at(2), team, 10_000, 500, 0.0018)  # priced as if the 8,000 cached tokens were not cached
        bill.usage.append(Usage(DEC[2], "key_team", MINI, 10_000, 500, 8_000, 1))
        bill.costs += [Cost(DEC[2], MINI, 0.0009, "input"), Cost(DEC[2], MINI, 0.0003, "output")]
        result = reconcile.check_now(rt, admin, Provider.OPENAI, since=DEC[2])
        [token_line, price_line] = [ln for ln in result.lines if ln.day == DEC[2]]
        assert token_line.verdict is Verdict.MATCH and price_line.verdict is Verdict.OUR_PRICE
        assert price_line.reason.startswith("Dec 2: our price is wrong for gpt-4o-mini: the tokens match, but OpenAI "
                                            "charged $0.0012 where this app priced $0.0018.")
        assert result.headline.endswith("1 difference needs a look.")


def test_other_tokens_for_the_same_calls_mean_our_count_is_wrong(environ):
    with billed(environ) as (rt, bill, _, admin, team, _):
        call(rt, at(2), team, 1000, 100, 0.0002)
        bill.usage.append(Usage(DEC[2], "key_team", MINI, 1500, 100, 0, 1))
        [line] = [ln for ln in reconcile.check_now(rt, admin, Provider.OPENAI, since=DEC[2]).lines if ln.day == DEC[2]]
        assert line.verdict is Verdict.OUR_COUNT
        assert "our count is wrong: for the same 1 calls on the team key" in line.reason


def test_calls_made_outside_the_app_are_told_once_to_the_webhook_with_the_way_to_replace_the_key(environ):
    with billed(environ) as (rt, bill, receiver, admin, _team, alice_key):
        call(rt, at(4), alice_key, 500, 50, 0.0001)
        bill.usage += [Usage(DEC[3], "key_team", MINI, 40_000, 1_200, 0, 9),  # we logged nothing on Dec 3
                       Usage(DEC[4], "key_alice", MINI, 5_500, 150, 0, 4),  # 3 calls more than we made
                       Usage(DEC[4], "key_other", MINI, 99_000, 1, 0, 1)]  # a key not stored here: not ours
        result = reconcile.check_now(rt, admin, Provider.OPENAI, since=DEC[1])
        outside = [ln for ln in result.lines if ln.verdict is Verdict.OUTSIDE]
        assert [ln.reason for ln in outside] == [
            "Dec 3: OpenAI billed 41,200 tokens on the team key (sk-…3333, gpt-4o-mini) that this app did not send. "
            "Someone may have a copy of this key: replace it under Admin → Team keys.",
            "Dec 4: OpenAI billed 4 calls (5,650 tokens) on alice's key (sk-…1111, gpt-4o-mini); this app made 1 (550 "
            "tokens). 3 calls were made outside this app: someone may have a copy of this key: replace it on the "
            "Keys page."]
        told = sorted(texts(receiver))
        assert len(told) == 2 and told[0].startswith("BYOK Dashboard: Dec 3: OpenAI billed 41,200 tokens")
        reconcile.check_now(rt, admin, Provider.OPENAI, since=DEC[1])  # again: the webhook heard of them already
        assert len(texts(receiver)) == 2
        assert sum(r.verdict == "outside" for r in reconcile.lines(rt, admin, Provider.OPENAI)) == 2


def test_calls_the_report_does_not_show_yet_are_not_blamed_on_anyone(environ):
    with billed(environ) as (rt, _bill, receiver, admin, team, _):
        call(rt, at(5), team, 100, 10, 0.00002)
        [line] = [ln for ln in reconcile.check_now(rt, admin, Provider.OPENAI, since=DEC[5]).lines]
        assert line.verdict is Verdict.NOT_BILLED and not line.verdict.loud
        assert texts(receiver) == []


def test_the_providers_pages_are_all_read(environ):
    with billed(environ, page_size=2) as (rt, bill, _, admin, team, _alice_key):
        for n in (1, 3, 5):
            call(rt, at(n), team, 100, 10, 0.00002)
            bill.usage.append(Usage(DEC[n], "key_team", MINI, 100, 10, 0, 1))
        bill.usage.append(Usage(DEC[5], "key_alice", MINI, 700, 70, 0, 1))  # on the third key, the list's 2nd page
        result = reconcile.check_now(rt, admin, Provider.OPENAI, since=DEC[1])
        assert [ln.day for ln in result.lines if ln.verdict is Verdict.MATCH] == [DEC[1], DEC[3], DEC[5]]
        assert [ln.day for ln in result.lines if ln.verdict is Verdict.OUTSIDE] == [DEC[5]]
        usage_pages = [p for p in bill.paths if p.startswith("/v1/organization/usage/completions")]
        assert len(usage_pages) == 3 and "page=2" in usage_pages[1] and "page=4" in usage_pages[2]
        assert any("after=key_other" in p for p in bill.paths)


def test_a_revoked_billing_key_is_said_plainly_and_nothing_is_deleted(environ, caplog):
    caplog.set_level(logging.DEBUG)
    with billed(environ) as (rt, bill, _, admin, team, _):
        call(rt, at(3), team, 1000, 200, 0.00027)
        bill.usage.append(Usage(DEC[3], "key_team", MINI, 1000, 200, 0, 1))
        reconcile.check_now(rt, admin, Provider.OPENAI, since=DEC[1])
        before = [(r.day, r.verdict) for r in reconcile.lines(rt, admin, Provider.OPENAI)]
        bill.revoked = True
        result = reconcile.check_now(rt, admin, Provider.OPENAI, since=DEC[1])
        assert result.headline == ("OpenAI refused the billing key sk-…9876: it may have been revoked. Save a new "
                                   "Admin key (from platform.openai.com → Settings → Organization → Admin keys); the "
                                   "last check's results are kept.")
        assert [(r.day, r.verdict) for r in reconcile.lines(rt, admin, Provider.OPENAI)] == before
        [info] = reconcile.billing_keys(rt, admin)
        assert info.mask == "sk-…9876" and info.problem == result.problem
        everything = dump_database(rt) + caplog.text + repr(info) + repr(result)
        assert ADMIN_KEY not in everything and ADMIN_KEY[8:-4] not in everything


def test_a_billing_key_is_tried_before_it_is_saved_and_never_shown(environ, caplog):
    caplog.set_level(logging.DEBUG)
    with billed(environ) as (rt, _bill, _, admin, _, _):
        with pytest.raises(ValidationError, match=r"OpenAI refused the key sk-…0000: it needs an Admin key, from "
                                                  r"platform\.openai\.com .* Nothing was saved\."):
            reconcile.save_key(rt, admin, Provider.OPENAI, "sk-not-an-admin-key-0000000000")
        with Session(rt.engine) as session:
            [row] = session.exec(select(BillingKey)).all()
        assert row.mask == "sk-…9876" and ADMIN_KEY not in repr(row)
        [event] = [e for e in audit.recent(rt) if e.action == AuditAction.BILLING_KEY_SET]
        assert words.audit_sentence(event) == "root saved the OpenAI billing key sk-…9876"
        with pytest.raises(ValidationError, match="only OpenAI's and Anthropic's"):
            reconcile.save_key(rt, admin, Provider.GOOGLE, "AIza-whatever-0000000000")
        with pytest.raises(PermissionDenied):
            reconcile.check_now(rt, Actor.of(accounts.get_user(rt, "alice")), Provider.OPENAI)
        assert ADMIN_KEY not in dump_database(rt) + caplog.text
        reconcile.delete_key(rt, admin, Provider.OPENAI)
        assert reconcile.billing_keys(rt, admin) == []
        assert reconcile.run(rt) == []


def test_anthropic_bills_are_read_with_cache_tokens_and_cents(environ):
    with billed(environ, Provider.ANTHROPIC, ANT_ADMIN_KEY) as (rt, bill, _, admin, team, _):
        call(rt, at(2), team, 3000, 100, 0.0032, model="claude-haiku-4-5-20251001", provider=Provider.ANTHROPIC)
        bill.usage.append(Usage(DEC[2], "key_team", "claude-haiku-4-5-20251001", 3000, 100, 2000))
        bill.costs.append(Cost(DEC[2], "claude-haiku-4-5-20251001", 0.0032))
        result = reconcile.check_now(rt, admin, Provider.ANTHROPIC, since=DEC[2])
        assert result.headline == "Checked against Anthropic's bill: matches within 0.5% for Dec 2\u20135."
        assert [ln.verdict for ln in result.lines if ln.day == DEC[2]] == [Verdict.MATCH, Verdict.MATCH]
        assert all(a == ANT_ADMIN_KEY for a in bill.auth)


def test_the_check_runs_once_a_day_under_the_lease_and_from_the_command_line(environ, capsys, monkeypatch):
    with billed(environ) as (rt, bill, _, _admin, team, _):
        call(rt, at(3), team, 1000, 200, 0.00027)
        bill.usage.append(Usage(DEC[3], "key_team", MINI, 1000, 200, 0, 1))
        assert reconcile.tick(rt, "other:1") is not None and reconcile.tick(rt, "me:1") is None  # the lease
        asked = len(bill.paths)
        assert reconcile.tick(rt, "other:1") == [] and len(bill.paths) == asked  # checked already today
        with clock.fake(NOW + timedelta(hours=21)):
            [again] = reconcile.tick(rt, "other:1") or []
        assert again.headline.startswith("Checked against OpenAI's bill: matches")
        for name, value in {**environ, **bill.env()}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "stdin", io.StringIO(ADMIN_KEY + "\n"))
        assert main(["usage", "billing-key", "openai"]) == 0
        assert capsys.readouterr().out == "saved the OpenAI billing key sk-…9876: it worked\n"
        assert main(["usage", "reconcile", "--since", "2026-12-03"]) == 0
        assert capsys.readouterr().out.startswith("Checked against OpenAI's bill: matches within 0.5% for Dec 3\u20135")


def texts(receiver) -> list[str]:
    join_alerts()
    return [b["text"] for b in receiver.bodies]


# --- the comparison alone ---------------------------------------------------------------------------

def test_keys_are_matched_by_their_hint_only_when_one_fits():
    ours = [OurKey("a", "sk-…1111", "the team key"), OurKey("b", "sk-…2222", "bob's key"),
            OurKey("c", "sk-…2222", "carol's key")]
    theirs = [ProviderKey("k1", "sk-...1111"), ProviderKey("k2", "sk-...2222"), ProviderKey("k3", "sk-...3333")]
    assert billcheck.match_keys(theirs, ours) == {"k1": ours[0]}
    assert billcheck.match_keys([*theirs, ProviderKey("k4", "sk-abc...1111")], ours) == {}
    assert billcheck.model_family("gpt-4o-mini-2024-07-18") == "gpt-4o-mini"
    assert billcheck.model_family("claude-haiku-4-5-20251001") == "claude-haiku-4-5"


def test_a_price_is_not_compared_when_other_keys_of_the_organization_used_the_model():
    key = OurKey("a", "sk-…1111", "the team key")
    bill = Bill([BilledUsage(DEC[1], "k1", MINI, 100, 10, 0, 1), BilledUsage(DEC[1], "k9", MINI, 900, 90, 0, 3)],
                [BilledCost(DEC[1], "gpt-4o-mini", 0.5)], [ProviderKey("k1", "sk-...1111")])
    lines = billcheck.compare(Provider.OPENAI, DEC[1], DEC[1], [Logged(DEC[1], "a", "gpt-4o-mini", 1, 100, 10, 0.01)],
                              bill, [key])
    assert [ln.verdict for ln in lines] == [Verdict.MATCH]


def test_the_bill_check_table_is_replaced_for_the_days_checked(environ):
    with billed(environ) as (rt, _bill, _, admin, _team, _):
        reconcile.check_now(rt, admin, Provider.OPENAI, since=DEC[1])
        reconcile.check_now(rt, admin, Provider.OPENAI, since=DEC[4])
        with rt.engine.connect() as conn:
            days = sorted(conn.execute(sa.select(BillCheck.day)).scalars())
        assert days == [DEC[1], DEC[2], DEC[3], DEC[4], DEC[5]]


def test_a_call_logs_the_stored_key_that_paid_and_a_server_key_none(environ):
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env()) as rt:
        alice = accounts.create_user(rt, OP, "alice", "alice-password")
        team = keys.store(rt, OP, Owner.team(), Provider.OPENAI, TEAM_KEY)
        mine = keys.store(rt, OP, Owner.user(alice.id), Provider.OPENAI, ALICE_KEY)
        for user_id in (None, alice.id):
            list(stream_chat(rt, user_id=user_id, provider=Provider.OPENAI, model="gpt-4o-mini",
                             messages=[ChatMessage("user", "hi")]))
        assert [(r.key_source, r.key_row_id) for r in usage_rows(rt)] == [(KeySource.TEAM, team.id),
                                                                         (KeySource.USER, mine.id)]
    with FakeProvider(Provider.OPENAI) as server, \
            runtime_with(environ, **server.env(), OPENAI_API_KEY="sk-env-server-key-0123456789") as rt:
        keys.delete(rt, OP, Owner.team(), team.id)
        list(stream_chat(rt, user_id=None, provider=Provider.OPENAI, model="gpt-4o-mini",
                         messages=[ChatMessage("user", "hi")]))
        assert (usage_rows(rt)[-1].key_source, usage_rows(rt)[-1].key_row_id) == (KeySource.ENV, None)


def test_rotating_the_master_key_reseals_the_billing_key(environ, capsys, monkeypatch):
    with billed(environ) as (_, bill, _, admin, _, _):
        new = {**environ, **bill.env(), "ENCRYPTION_KEY": gen_key(),
               "ENCRYPTION_KEY_FALLBACKS": environ["ENCRYPTION_KEY"]}
        for name, value in new.items():
            monkeypatch.setenv(name, value)
        assert main(["rotate-master-key"]) == 0
        assert "OpenAI billing key: re-encrypted" in capsys.readouterr().out
        monkeypatch.setenv("ENCRYPTION_KEY_FALLBACKS", "")
        with runtime_with(environ, **bill.env(), ENCRYPTION_KEY=new["ENCRYPTION_KEY"]) as fresh:
            assert reconcile.reseal(fresh) == {Provider.OPENAI: "current"}
            assert reconcile.check_now(fresh, admin, Provider.OPENAI).problem is None  # it opens with the new key


def test_fewer_calls_billed_than_made_is_our_count_too():
    key = OurKey("a", "sk-…1111", "the team key")
    bill = Bill([BilledUsage(DEC[1], "k1", MINI, 100, 10, 0, 1)], [], [ProviderKey("k1", "sk-...1111")])
    [line] = billcheck.compare(Provider.OPENAI, DEC[1], DEC[1],
                               [Logged(DEC[1], "a", "gpt-4o-mini", 3, 300, 30, None)], bill, [key])
    assert line.verdict is Verdict.OUR_COUNT and "for 3 calls (OpenAI billed 1) on the team key" in line.reason


def test_a_billing_key_no_master_key_opens_is_forgotten_with_the_keys(environ, capsys, monkeypatch):
    with billed(environ) as (_, bill, _, _, _, _):
        for name, value in {**environ, **bill.env(), "ENCRYPTION_KEY": gen_key()}.items():
            monkeypatch.setenv(name, value)
        assert main(["forget-unreadable-keys"]) == 0
        assert "would forget: the OpenAI billing key (save it again on the Usage page)" in capsys.readouterr().out
        assert main(["forget-unreadable-keys", "--yes"]) == 0
        assert "forgot: the OpenAI billing key" in capsys.readouterr().out
        with runtime_with(environ, **bill.env(), ENCRYPTION_KEY=environ["ENCRYPTION_KEY"]) as rt:
            assert reconcile.billing_keys(rt, Actor.operator()) == []


# --- OpenRouter: each key's own count of the month (no billing key) --------------------------------

ROUTER_KEY = "sk-or-v1-fake.team-router-RRRRRRRRRRRRRRRRRRRR4444"


@contextmanager
def routed(environ, month_usd: float):
    """A team OpenRouter connection at a fake ``/api/v1/key`` that counts ``month_usd`` spent, with
    $0.50 logged on its key this month: (rt, fake, receiver, admin, key row id)."""
    from fakebilling import FakeOpenRouterKey

    from byok_core import connections

    receiver = Receiver()
    try:
        with clock.fake(NOW), FakeOpenRouterKey(ROUTER_KEY, month_usd) as fake, \
                runtime_with({**environ, "BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"}) as rt:
            admin = Actor.of(accounts.create_user(rt, OP, "root", "root-password", Role.ADMIN))
            alerts.set_webhook(rt, admin, receiver.url)
            router = connections.create(rt, admin, Owner.team(), "OpenRouter", fake.url, "openrouter")
            key = keys.store(rt, admin, Owner.team(), Provider.OPENAI_COMPATIBLE, ROUTER_KEY, connection=router.id)
            for n, usd in ((1, 0.20), (5, 0.30)):
                call(rt, at(n), key.id, 100, 50, usd, model="openai/gpt-4o-mini", provider=Provider.OPENAI_COMPATIBLE)
            call(rt, datetime(2026, 11, 30, 23, tzinfo=UTC), key.id, 100, 50, 9.0, model="openai/gpt-4o-mini",
                 provider=Provider.OPENAI_COMPATIBLE)  # last month's: not counted
            yield rt, fake, receiver, admin, key.id
    finally:
        receiver.close()


def test_openrouter_keys_count_matches_what_this_app_logged_this_month(environ):
    with routed(environ, month_usd=0.50) as (rt, fake, _receiver, admin, key_id):
        result = reconcile.check_now(rt, admin, reconcile.OPENROUTER)
        [line] = result.lines
        assert (line.verdict, line.key_row_id, line.our_usd, line.billed_usd) == (Verdict.MATCH, key_id,
                                                                                  pytest.approx(0.5), 0.5)
        assert result.headline == ("Checked against OpenRouter's own count on Dec 6: this month's spend matches on "
                                   "every key.")
        assert reconcile.report(rt, admin, reconcile.OPENROUTER).headline == result.headline
        assert fake.requests == ["/api/v1/key"] and ROUTER_KEY not in dump_database(rt)


def test_openrouter_spend_this_app_did_not_make_is_told_once_with_the_way_to_replace_the_key(environ):
    with routed(environ, month_usd=2.00) as (rt, _fake, receiver, admin, _key_id):
        for _ in range(2):
            [line] = reconcile.check_now(rt, admin, reconcile.OPENROUTER).lines
        join_alerts()
        assert line.verdict is Verdict.OUTSIDE
        assert line.reason == ("Dec 6: OpenRouter counts $2.0000 spent in December on the team key (sk-…4444); this "
                               "app logged $0.5000: $1.5000 was spent on it outside this app. Someone may have a copy "
                               "of this key: replace it under Admin → Team keys.")
        assert [b["text"] for b in receiver.bodies] == [f"BYOK Dashboard: {line.reason}"]  # once a day and key
        shown = reconcile.report(rt, admin, reconcile.OPENROUTER)
        assert [r.reason for r in shown.loud] == [line.reason] and "1 key needs a look" in (shown.headline or "")
        with pytest.raises(PermissionDenied):
            reconcile.report(rt, Actor.of(accounts.create_user(rt, OP, "bob", "bob-password")), reconcile.OPENROUTER)


def test_openrouters_count_lagging_behind_is_quiet_and_a_revoked_key_is_said_with_nothing_lost(environ):
    with routed(environ, month_usd=0.40) as (rt, fake, _receiver, admin, _key_id):
        [line] = reconcile.check_now(rt, admin, reconcile.OPENROUTER).lines
        assert line.verdict is Verdict.NOT_BILLED and not line.verdict.loud
        fake.revoked = True
        refused = reconcile.check_now(rt, admin, reconcile.OPENROUTER)
        assert refused.lines == () and "the team key (sk-…4444) could not be read" in refused.headline
        assert "rejected the key" in refused.headline and ROUTER_KEY not in refused.headline
        assert [r.verdict for r in reconcile.lines(rt, admin, reconcile.OPENROUTER)] == ["not_billed"]  # kept
        assert keys.list_keys(rt, admin, Owner.team())[0].active  # the key stays


def test_the_daily_round_and_a_run_for_cron_check_openrouter_too(environ):
    with routed(environ, month_usd=0.50) as (rt, fake, _receiver, _admin, _key_id):
        assert [r.provider for r in reconcile.tick(rt, "replica-a") or []] == [reconcile.OPENROUTER]
        assert reconcile.tick(rt, "replica-a") == []  # once a day
        assert [r.provider for r in reconcile.run(rt)] == [reconcile.OPENROUTER]
        assert len(fake.requests) == 2
