"""The team's display currency: amounts written per currency, conversion both ways at the edge,
budgets typed in it and kept in USD, rates kept append-only and audited, admins only."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from apptest import make_user
from callhelpers import log_call
from sqlmodel import Session, col, select

from byok_core import audit, budgets, currency, usage, words
from byok_core.audit import AuditAction
from byok_core.currency import USD, Currency, money
from byok_core.errors import PermissionDenied, ValidationError
from byok_core.identity import Actor, Owner
from byok_core.models import AuditEvent, Budget, DisplayCurrency, KeySource, UsageRecord
from byok_core.providers import Provider

OP = Actor.operator()
EUR, JPY, CHF, GBP = Currency("EUR", 0.92), Currency("JPY", 150.0), Currency("CHF", 0.8), Currency("GBP", 0.78)


@pytest.mark.parametrize(("cur", "usd", "shown"), [
    (USD, 1.23, "$1.2300"), (USD, 0.0000131, "$0.0000131"), (USD, 0.0, "$0.00"), (USD, None, "unknown"),
    (EUR, 1.0, "€0.9200"), (EUR, 1250.0, "€1,150.0000"), (EUR, 0.00001, "€0.0000092"), (EUR, 0.0, "€0.00"),
    (EUR, -0.5, "-€0.4600"), (GBP, 2.0, "£1.5600"),
    (JPY, 1.2267, "¥184"), (JPY, 1000.0, "¥150,000"), (JPY, 0.004, "¥0.6"), (JPY, 0.0000123, "¥0.00185"),
    (JPY, 0.0, "¥0"),
    (CHF, 1.5, "CHF 1.2000"), (CHF, 0.00002, "CHF 0.000016"),
])
def test_each_currency_writes_amounts_with_its_sign_and_keeps_small_amounts_digits(cur, usd, shown):
    assert money(usd, currency=cur) == shown


@pytest.mark.parametrize(("cur", "usd", "shown"), [
    (USD, 12.5, "$12.50"), (EUR, 20 / 0.92, "€20.00"), (JPY, 2500 / 150, "¥2,500"), (CHF, 1.5, "CHF 1.20"),
    (EUR, 0.001, "€0.00092"),  # below a cent: still its significant digits, never "€0.00"
])
def test_budgets_are_written_in_whole_minor_units(cur, usd, shown):
    assert money(usd, whole=True, currency=cur) == shown


def test_amounts_convert_both_ways_and_a_page_run_shows_its_currency():
    assert EUR.from_usd(10.0) == pytest.approx(9.2) and EUR.to_usd(9.2) == pytest.approx(10.0)
    assert JPY.to_usd(JPY.from_usd(0.37)) == pytest.approx(0.37)
    assert currency.shown() == USD and money(1.0) == "$1.0000"
    with currency.showing(JPY):
        assert money(1.0) == "¥150" and usage.cost_label(None, 0) == "¥0"
        assert budgets.lines.apart(0.0062, 0.0071, currency.shown()) == ("¥0.93", "¥1.07")
        assert budgets.lines.apart(0.0062, 0.0071) == ("$0.0062", "$0.0071")  # alerts' and caps' dollars
    assert money(1.0) == "$1.0000"  # back to dollars after the run


def test_prices_in_the_audit_log_stay_in_dollars():
    event = audit.event("root", AuditAction.PRICE_SET, audit.Target(provider=Provider.BRAVE), usd=0.005)
    with currency.showing(EUR):
        assert words.audit_sentence(event) == "root set the price of a Brave Search request to $0.005"


def test_a_budget_typed_in_euros_is_kept_in_dollars_and_reads_back_as_typed(rt):
    eur = currency.set_display(rt, OP, "eur", "0.92")
    assert (eur.code, eur.per_usd, currency.current(rt)) == ("EUR", 0.92, eur)
    budgets.set_budget(rt, OP, Owner.team(), "€20.00", eur)
    kept = budgets.budget_of(rt, Owner.team())
    assert kept == pytest.approx(20 / 0.92) and eur.amount_text(kept) == "20.00"
    with currency.showing(eur):
        assert budgets.spend_report(rt)[0].budget_usd == kept
        assert money(kept, whole=True) == "€20.00"
    jpy = currency.set_display(rt, OP, "JPY", "151.37")
    budgets.set_budget(rt, OP, Owner.team(), "2,500", jpy)
    assert jpy.amount_text(budgets.budget_of(rt, Owner.team())) == "2500"
    with pytest.raises(ValidationError, match=r"Budgets are in whole JPY: use ¥2,501 instead of ¥2500.5"):
        budgets.set_budget(rt, OP, Owner.team(), "2500.5", jpy)
    with pytest.raises(ValidationError, match="an amount in EUR, such as 25"):
        budgets.set_budget(rt, OP, Owner.team(), "twenty", eur)
    with pytest.raises(ValidationError, match=r"at most €919,999,999.99"):
        budgets.set_budget(rt, OP, Owner.team(), "920000000", eur)
    with Session(rt.engine) as session:
        event = session.exec(select(AuditEvent).where(col(AuditEvent.action) == AuditAction.BUDGET_SET)
                             .order_by(col(AuditEvent.id))).first()
    assert event is not None and words.audit_sentence(event) == (
        "An operator (command line) set the team's budget on shared keys to $21.74 a month "
        "(€20.00 at 1 USD = 0.92 EUR)")


def test_a_new_rate_rewrites_nothing_already_kept(rt):
    ann = make_user(rt, "ann")
    first = currency.set_display(rt, OP, "EUR", 0.92)
    budgets.set_budget(rt, OP, Owner.team(), "20", first)
    log_call(rt, user_id=ann.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.TEAM,
             input_tokens=10, output_tokens=5, latency_ms=3, cost_usd=0.5)
    second = currency.set_display(rt, OP, "EUR", "0.95")
    assert currency.current(rt) == second
    assert [(c.code, c.per_usd, c.set_by) for c in currency.history(rt)] == [("EUR", 0.95, "operator"),
                                                                            ("EUR", 0.92, "operator")]
    assert currency.history(rt)[1].set_at == first.set_at  # the first rate, as it was set
    with rt.engine.connect() as conn:
        assert conn.execute(sa.select(col(UsageRecord.cost_usd))).scalar_one() == 0.5
        assert conn.execute(sa.select(col(Budget.monthly_usd))).scalar_one() == pytest.approx(20 / 0.92)
    # the budget stays the dollar cap it was set as, shown at the new rate
    assert money(budgets.budget_of(rt, Owner.team()), whole=True, currency=second) == "€20.65"


def test_members_cannot_set_it_and_bad_values_say_what_to_do(rt):
    ann = make_user(rt, "ann")
    with pytest.raises(PermissionDenied, match="Only admins can change the display currency"):
        currency.set_display(rt, Actor.of(ann), "EUR", 0.92)
    for code, rate, said in [
        ("XYZ", 1, "XYZ is not a currency the app knows; pick one of AUD, BRL, CAD, CHF"),
        ("", 1, "That is not a currency the app knows"),
        ("EUR", "0", "a number above 0, such as 0.92"), ("EUR", "-1", "a number above 0"),
        ("EUR", "abc", "how many EUR one US dollar buys"), ("EUR", "inf", "a number above 0"),
        ("JPY", "0.0066", "One US dollar buys about 150 JPY, not 0.0066: enter how many JPY one US dollar buys"),
        ("EUR", "92", "One US dollar buys about 0.92 EUR"),
    ]:
        with pytest.raises(ValidationError, match=said):
            currency.set_display(rt, OP, code, rate)
    assert currency.history(rt) == [] and currency.current(rt) == USD
    with rt.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(DisplayCurrency)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(AuditEvent)
                            .where(col(AuditEvent.action) == AuditAction.CURRENCY_SET)).scalar_one() == 0
    assert currency.set_display(rt, OP, "usd", "ignored").per_usd == 1.0  # back to dollars: no rate needed


def test_setting_it_is_audited(rt):
    currency.set_display(rt, Actor("root", None, True), "CHF", "0.8")
    [event] = audit.recent(rt)
    assert (event.action, event.detail) == (AuditAction.CURRENCY_SET, "CHF at 1 USD = 0.8 CHF")
    assert words.audit_sentence(event) == "root set the display currency to CHF at 1 USD = 0.8 CHF"


def test_a_page_run_reads_it_from_the_runtime_without_a_statement(rt, environ):
    from callhelpers import runtime_with

    statements: list[str] = []
    sa.event.listen(rt.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert currency.current(rt) == USD and len(statements) == 1
    assert currency.current(rt) == USD and len(statements) == 1  # cached on the runtime
    with runtime_with(environ) as other:  # another replica sets it: seen here once the cache is old
        currency.set_display(other, OP, "EUR", 0.92)
    assert currency.current(rt) == USD
    rt.memo["currency"] = (rt.memo["currency"][0] - currency.CACHE_SECONDS, USD)
    assert currency.current(rt).code == "EUR" and len(statements) == 2
    currency.set_display(rt, OP, "GBP", 0.78)  # set here: seen here at once
    assert currency.current(rt).code == "GBP"
