"""Monthly budgets on shared keys: exact limits, warnings, own keys, monthly reset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from callhelpers import log_call
from sqlmodel import Session, select

from byok_core import budgets, usage
from byok_core.errors import BudgetExceeded, PermissionDenied, ValidationError
from byok_core.identity import Actor, Owner
from byok_core.models import AuditEvent, KeySource, User
from byok_core.providers import Provider

NOW = datetime(2026, 12, 20, 12, tzinfo=UTC)
ADMIN = Actor.operator()


@pytest.fixture
def alice(rt) -> User:
    user = User(username="alice", password_hash="-")
    with Session(rt.engine, expire_on_commit=False) as session, session.begin():
        session.add_all([user, User(username="bob", password_hash="-")])
    return user


def spend(rt, user_id, usd, source=KeySource.TEAM, when=NOW) -> None:
    log_call(rt, user_id=user_id, provider=Provider.OPENAI, model="gpt-4o", key_source=source,
             input_tokens=1, output_tokens=1, latency_ms=1, cost_usd=usd)
    table = usage.UsageRecord.__table__
    with rt.engine.begin() as conn:  # backdate the row just logged (logging stamps the current time)
        conn.execute(table.update().where(table.c.id == sa.select(sa.func.max(table.c.id)).scalar_subquery())
                     .values(ts=when))
    budgets.reconcile(rt)  # the running figures, from the log


def test_no_budget_no_status(rt, alice):
    spend(rt, alice.id, 100.0)
    assert budgets.check(rt, alice.id, (KeySource.TEAM, None), now=NOW) is None


def test_refused_exactly_at_the_user_limit(rt, alice):
    budgets.set_budget(rt, ADMIN, Owner.user(alice.id), 1.0)
    spend(rt, alice.id, 0.5)
    status = budgets.check(rt, alice.id, (KeySource.TEAM, None), now=NOW)
    assert status is not None and status.warning is None
    spend(rt, alice.id, 0.25, KeySource.ENV)  # 75%: still quiet
    assert budgets.check(rt, alice.id, (KeySource.ENV, None), now=NOW).warning is None
    spend(rt, alice.id, 0.125)  # 87.5%
    warning = budgets.check(rt, alice.id, (KeySource.TEAM, None), now=NOW).warning
    assert warning.startswith("Your monthly budget for shared keys is 88% used ($0.88 of $1.00).")
    assert "own API keys" in warning
    spend(rt, alice.id, 0.125)  # exactly 100%
    with pytest.raises(BudgetExceeded) as exc:
        budgets.check(rt, alice.id, (KeySource.TEAM, None), now=NOW)
    message = str(exc.value)
    assert "used up ($1.00 of $1.00)" in message and "own API keys keep working" in message and "admin" in message


def test_own_key_calls_never_count_nor_are_refused(rt, alice):
    budgets.set_budget(rt, ADMIN, Owner.user(alice.id), 1.0)
    budgets.set_budget(rt, ADMIN, Owner.team(), 1.0)
    spend(rt, alice.id, 50.0, KeySource.USER)
    spend(rt, alice.id, None)  # unknown cost adds nothing
    status = budgets.check(rt, alice.id, (KeySource.TEAM, None), now=NOW)
    assert [line.spent_usd for line in status.lines] == [0.0, 0.0]
    spend(rt, alice.id, 5.0)
    assert budgets.check(rt, alice.id, (KeySource.USER, None), now=NOW) is None  # over budget, own key: fine
    with pytest.raises(BudgetExceeded):
        budgets.check(rt, alice.id, (KeySource.TEAM, None), now=NOW)


def test_team_budget_counts_everyone_on_shared_keys(rt, alice):
    bob_id = alice.id + 1
    budgets.set_budget(rt, ADMIN, Owner.team(), 2.0)
    spend(rt, bob_id, 1.0)
    spend(rt, None, 0.75, KeySource.ENV)  # the CLI without --user
    assert "The team's monthly budget" in budgets.check(rt, alice.id, (KeySource.TEAM, None), now=NOW).warning
    spend(rt, alice.id, 0.25)
    for user_id in (alice.id, bob_id, None):
        with pytest.raises(BudgetExceeded, match="The team's monthly budget"):
            budgets.check(rt, user_id, (KeySource.ENV, None), now=NOW)


def test_budgets_reset_each_calendar_month(rt, alice):
    budgets.set_budget(rt, ADMIN, Owner.user(alice.id), 1.0)
    spend(rt, alice.id, 1.0, when=datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))
    spend(rt, alice.id, 1.0, when=datetime(2027, 1, 1, 0, 0, tzinfo=UTC))
    assert budgets.check(rt, alice.id, (KeySource.TEAM, None), now=NOW).lines[0].spent_usd == 0.0
    with pytest.raises(BudgetExceeded):
        budgets.check(rt, alice.id, (KeySource.TEAM, None), now=datetime(2026, 11, 1, tzinfo=UTC))
    with pytest.raises(BudgetExceeded):
        budgets.check(rt, alice.id, (KeySource.TEAM, None), now=datetime(2027, 1, 31, 23, tzinfo=UTC))


def test_months_roll_over_the_year():
    assert budgets.month_of(NOW) == "2026-12"
    assert budgets.month_of(NOW + timedelta(days=12)) == "2027-01"
    assert budgets.month_of(datetime(2026, 12, 1, tzinfo=UTC) - timedelta(microseconds=1)) == "2026-11"


def test_zero_budget_refuses_every_shared_call(rt, alice):
    budgets.set_budget(rt, ADMIN, Owner.user(alice.id), 0)
    with pytest.raises(BudgetExceeded):
        budgets.check(rt, alice.id, (KeySource.TEAM, None), now=NOW)


def test_spend_report_set_clear_and_audit(rt, alice):
    budgets.set_budget(rt, ADMIN, Owner.team(), 10.0)
    budgets.set_budget(rt, ADMIN, Owner.user(alice.id), 3.0)
    budgets.set_budget(rt, ADMIN, Owner.user(alice.id), 4.0)  # replaces
    spend(rt, alice.id + 1, 2.5)
    spend(rt, alice.id, 1.0)
    spend(rt, alice.id, 9.0, KeySource.USER)
    report = [(line.name, line.budget_usd, line.spent_usd) for line in budgets.spend_report(rt, now=NOW)]
    assert report == [("team", 10.0, 3.5), ("alice", 4.0, 1.0), ("bob", None, 2.5)]
    assert budgets.clear_budget(rt, ADMIN, Owner.user(alice.id)) is True
    assert budgets.clear_budget(rt, ADMIN, Owner.user(alice.id)) is False
    assert [line.name for line in budgets.spend_report(rt, now=NOW + timedelta(days=30))] == ["team"]
    with Session(rt.engine) as session:
        actions = [e.action for e in session.exec(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions == ["budget.set"] * 3 + ["budget.clear"]


def test_only_admins_change_budgets(rt, alice):
    member = Actor("alice", alice.id, False)
    with pytest.raises(PermissionDenied):
        budgets.set_budget(rt, member, Owner.user(alice.id), 100.0)
    with pytest.raises(PermissionDenied):
        budgets.clear_budget(rt, member, Owner.team())
    with pytest.raises(ValidationError):
        budgets.set_budget(rt, ADMIN, Owner.team(), -1)


@pytest.mark.parametrize(("typed", "said"), [
    ("1e400", "That budget is too large: a monthly budget is at most $999,999,999.99."),
    ("inf", "That budget is too large"), ("1000000000", "That budget is too large"),
    ("nan", "an amount in USD, such as 25"), ("twenty", "an amount in USD, such as 25"),
    ("-5", "an amount in USD, 0 or more"), ("-inf", "an amount in USD, 0 or more")])
def test_a_budget_that_is_no_amount_or_too_large_says_which(rt, typed, said):
    with pytest.raises(ValidationError) as refused:
        budgets.set_budget(rt, ADMIN, Owner.team(), typed)
    assert said in str(refused.value) and budgets.budget_of(rt, Owner.team()) is None


def test_the_largest_budget_and_zero_are_kept(rt):
    budgets.set_budget(rt, ADMIN, Owner.team(), "999,999,999.99")
    assert budgets.budget_of(rt, Owner.team()) == 999_999_999.99
    budgets.set_budget(rt, ADMIN, Owner.team(), "-0")
    assert str(budgets.budget_of(rt, Owner.team())) == "0.0"
