"""AppTest: the Usage page (members see their own calls, admins the team's); the Budgets page is in
test_budgets_page.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from apptest import drawn, make_user, page_as
from callhelpers import log_call
from sqlmodel import col

from byok_core import budgets, usage, usage_log
from byok_core.clock import utcnow
from byok_core.errors import CallStatus
from byok_core.identity import Actor, Owner
from byok_core.models import KeySource, UsageRecord
from byok_core.providers import Provider
from byok_core.record import CallRecord


@pytest.fixture
def people(rt):
    ann, bob, root = make_user(rt, "ann"), make_user(rt, "bob"), make_user(rt, "root", admin=True)
    for user, cost in ((ann, 0.75), (bob, 2.0), (bob, None)):
        log_call(rt, user_id=user.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.TEAM,
                 input_tokens=100, output_tokens=10, latency_ms=5, cost_usd=cost)
    return ann, bob, root




def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_member_sees_only_own_calls_and_budget_warning(app, rt, people):
    ann, _, _ = people
    budgets.set_budget(rt, Actor.operator(), Owner.user(ann.id), 0.9)
    at = page_as(rt, ann, "usage")
    assert metrics(at) == {"Calls": "1", "Input tokens": "100", "Output tokens": "10", "Cached input": "0%",
                           "Reasoning tokens": "0", "Estimated cost": "$0.7500", "On your own keys": "$0.00",
                           "On shared keys": "$0.7500"}
    assert list(at.dataframe[-1].value["User"]) == ["ann"]
    assert "83% used" in at.warning[0].value
    assert not [w for w in at.multiselect if w.label == "User"]  # members cannot pick other users


def test_admin_sees_the_team_with_unknown_cost_counted(app, rt, people):
    at = page_as(rt, people[2], "usage")
    assert metrics(at)["Calls"] == "3"
    assert metrics(at)["Estimated cost"] == "$2.7500 + 1 call of unknown cost"
    at.multiselect(key="usage_users").set_value([people[0].id]).run()
    assert metrics(at)["Calls"] == "1"


def test_cached_share_and_reasoning_tokens(app, rt, people):
    ann = people[0]
    log_call(rt, user_id=ann.id, provider=Provider.ANTHROPIC, model="claude-sonnet-4-5", key_source=KeySource.USER,
             input_tokens=300, output_tokens=40, cache_read_tokens=240, cache_write_tokens=0, reasoning_tokens=25,
             latency_ms=5, cost_usd=0.001)
    at = page_as(rt, ann, "usage")
    shown = metrics(at)
    assert (shown["Input tokens"], shown["Cached input"], shown["Reasoning tokens"]) == ("400", "60%", "25")
    per_model = next(d.value for d in at.dataframe if "Model" in d.value.columns and "Reasoning tokens" in d.value)
    assert dict(zip(per_model["Model"], per_model["Reasoning tokens"], strict=True)) == {
        "claude-sonnet-4-5": 25, "gpt-4o": 0}


def test_member_over_budget_is_told_plainly(app, rt, people):
    ann = people[0]
    budgets.set_budget(rt, Actor.operator(), Owner.user(ann.id), 0.5)
    at = page_as(rt, ann, "usage")
    assert "used up" in at.error[0].value and "own API keys keep working" in at.error[0].value


def test_days_that_are_over_are_kept_and_todays_calls_read_again(app, rt, people, monkeypatch):
    """An admin's view after a call is logged or finishes shows it without summing the days that are
    over again (nor does another admin's); pruning them does, once."""
    for _ in range(2):  # two searches three days ago
        log_call(rt, provider=Provider.BRAVE, key_source=KeySource.ENV, latency_ms=5, cost_usd=None)
    with rt.engine.begin() as conn:
        conn.execute(sa.update(UsageRecord).where(col(UsageRecord.provider) == Provider.BRAVE)
                     .values(ts=utcnow() - timedelta(days=3)))
    computed = []
    real = usage.settled_part
    monkeypatch.setattr(usage, "settled_part", lambda *a, **kw: computed.append(a[2]) or real(*a, **kw))
    at = page_as(rt, people[2], "usage")
    assert (metrics(at)["Calls"], len(computed)) == ("5", 1)
    page_as(rt, make_user(rt, "ada", admin=True), "usage")  # admins share the team's cached days
    assert len(computed) == 1

    log_call(rt, user_id=people[0].id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.USER,
             input_tokens=7, output_tokens=1, latency_ms=5, cost_usd=0.25)
    running = CallRecord(Provider.OPENAI, KeySource.USER, model="gpt-4o", user_id=people[0].id)
    with rt.engine.begin() as conn:  # a call under way: logged as not finished, cost unknown
        row_id = usage_log.start(conn, running)
    at.run()
    assert (metrics(at)["Calls"], metrics(at)["Estimated cost"]) == ("7", "$3.0000 + 4 calls of unknown cost")
    running.cost_usd = 0.5
    with rt.engine.begin() as conn:
        usage_log.complete(conn, row_id, running)
    at.run()
    assert metrics(at)["Estimated cost"] == "$3.5000 + 3 calls of unknown cost"
    at.multiselect(key="usage_providers").set_value(["brave"]).run()  # the same cube, narrowed
    assert metrics(at)["Calls"] == "2"
    assert len(computed) == 1

    usage.prune(rt, utcnow().date() - timedelta(days=1))
    at.multiselect(key="usage_providers").set_value([]).run()
    assert (metrics(at)["Calls"], len(computed)) == ("5", 2)


def dated(rt, when, **fields) -> None:
    """One finished call, logged at ``when``."""
    log_call(rt, **fields)
    with rt.engine.begin() as conn:
        last = conn.execute(sa.select(sa.func.max(col(UsageRecord.id)))).scalar_one()
        conn.execute(sa.update(UsageRecord).where(col(UsageRecord.id) == last).values(ts=when))


def cell_texts(at) -> list[str]:
    return [str(v) for d in map(drawn, at.dataframe) for column in d.columns for v in d[column]]


def test_opens_on_this_utc_month_with_presets(app, rt):
    """A call of the month before is not in the opening figures; "Last month" shows just it, and
    "Last 30 days" both when they are that recent."""
    ann = make_user(rt, "ann")
    first = utcnow().replace(day=1, hour=0, minute=0, second=1, microsecond=0)
    dated(rt, first, user_id=ann.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.USER,
          latency_ms=5, cost_usd=0.5)
    dated(rt, first - timedelta(seconds=2), user_id=ann.id, provider=Provider.OPENAI, model="gpt-4o",
          key_source=KeySource.USER, latency_ms=5, cost_usd=2.0)
    at = page_as(rt, ann, "usage")
    period = at.button_group(key="usage_period")
    assert period.value == usage.Period.THIS_MONTH
    assert (metrics(at)["Calls"], metrics(at)["Estimated cost"]) == ("1", "$0.5000")
    period.set_value(usage.Period.LAST_MONTH).run()
    assert (metrics(at)["Calls"], metrics(at)["Estimated cost"]) == ("1", "$2.0000")
    at.button_group(key="usage_period").set_value(usage.Period.LAST_30_DAYS).run()
    assert metrics(at)["Calls"] == ("2" if utcnow().day <= 29 else "1")
    at.button_group(key="usage_period").set_value("days").run()  # any days: the date picker
    assert at.date_input(key="usage_days").value


def test_headline_splits_own_keys_from_shared_keys(app, rt, people):
    ann = people[0]
    log_call(rt, user_id=ann.id, provider=Provider.ANTHROPIC, model="claude-sonnet-4-5", key_source=KeySource.USER,
             input_tokens=1, output_tokens=1, latency_ms=5, cost_usd=0.25)
    log_call(rt, user_id=ann.id, provider=Provider.BRAVE, key_source=KeySource.ENV, latency_ms=5, cost_usd=0.005)
    shown = metrics(page_as(rt, ann, "usage"))
    assert (shown["Estimated cost"], shown["On your own keys"], shown["On shared keys"]) == (
        "$1.0050", "$0.2500", "$0.7550")
    admin = metrics(page_as(rt, people[2], "usage"))
    assert (admin["On people's own keys"], admin["On shared keys"]) == ("$0.2500", "$2.7550 + 1 call of unknown cost")


def test_admins_see_shared_key_spend_by_person_first(app, rt, people):
    ann, _, root = people
    log_call(rt, user_id=ann.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.USER,
             latency_ms=5, cost_usd=50.0)  # her own key: not the team's money
    log_call(rt, user_id=root.id, provider=Provider.BRAVE, key_source=KeySource.ENV, latency_ms=5, cost_usd=1.0)
    at = page_as(rt, root, "usage")
    first = drawn(at.dataframe[0])
    assert list(first.columns) == ["User", "Calls", "Cost (USD)", "Calls of unknown cost"]
    assert list(zip(first["User"], first["Cost (USD)"], first["Calls"], strict=True)) == [
        ("bob", "$2.0000", "2"), ("root", "$1.0000", "1"), ("ann", "$0.7500", "1")]
    assert [m.value for m in at.markdown if "by person" in m.value] == ["**Shared-key spend by person**"]
    assert not [m.value for m in page_as(rt, ann, "usage").markdown if "by person" in m.value]  # admins only


def test_small_costs_keep_their_digits_and_every_table_rounds_alike(app, rt, people):
    ann = people[0]
    log_call(rt, user_id=ann.id, provider=Provider.GOOGLE, model="gemini-2.0-flash", key_source=KeySource.USER,
             input_tokens=10, output_tokens=2, latency_ms=5, cost_usd=0.000013)
    at = page_as(rt, ann, "usage")
    at.multiselect(key="usage_providers").set_value(["google"]).run()
    assert metrics(at)["Estimated cost"] == "$0.000013"
    costs = {drawn(d)["Cost (USD)"].iloc[0] for d in at.dataframe if "Cost (USD)" in d.value}
    assert costs == {"$0.000013"}  # per day, provider, model, payer, status and the call itself
    assert len([d for d in at.dataframe if "Cost (USD)" in d.value]) >= 6


def test_the_calls_table_puts_cost_beside_who_and_what(app, rt, people):
    at = page_as(rt, people[0], "usage")
    calls = at.dataframe[-1].value
    assert list(calls.columns)[:7] == ["Time (UTC)", "User", "Provider", "Model", "Paid by", "Status", "Cost (USD)"]


def test_a_connections_call_shows_by_its_name(app, rt, people):
    ann = people[0]
    log_call(rt, user_id=ann.id, provider=Provider.OPENAI_COMPATIBLE, model="llama-3.1-8b-instant",
             key_source=KeySource.USER, latency_ms=5, cost_usd=0.000002, connection="Groq")
    calls = page_as(rt, ann, "usage").dataframe[-1].value
    assert list(calls["Provider"]) == ["Groq", "OpenAI"]  # newest first


def test_a_stopped_call_reads_stopped(app, rt, people):
    ann = people[0]
    log_call(rt, user_id=ann.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.USER,
             latency_ms=5, cost_usd=0.001, status=CallStatus.STOPPED)
    at = page_as(rt, ann, "usage")
    assert "Stopped" in cell_texts(at) and "stopped" not in cell_texts(at)
    assert "Stopped" in at.multiselect(key="usage_statuses").options


def test_cost_columns_hold_numbers_so_they_sort_by_amount(app, rt, people):
    """A browser sorts a column by its values: costs written as text would sort "$10" before "$2".
    The Cost columns keep the amounts (an unknown one lowest) and show them as money."""
    ann = people[0]
    for cost in (10.0, None, 2.5):
        log_call(rt, user_id=ann.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.USER,
                 latency_ms=5, cost_usd=cost)
    at = page_as(rt, ann, "usage")
    calls = at.dataframe[-1]
    assert calls.value["Cost (USD)"].dtype == float
    assert sorted(zip(calls.value["Cost (USD)"], drawn(calls)["Cost (USD)"], strict=True)) == [
        (float("-inf"), "unknown"), (0.75, "$0.7500"), (2.5, "$2.5000"), (10.0, "$10.0000")]
    tables = [d for d in at.dataframe if "Cost (USD)" in d.value]
    assert len(tables) >= 7 and all(d.value["Cost (USD)"].dtype == float for d in tables)
