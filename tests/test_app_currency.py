"""AppTest: an admin sets the display currency on the Budgets page (in its own tab), budgets are
typed and shown in it, and the Usage page, the line under a reply and a search show money in it."""

from __future__ import annotations

import io

import pytest
from apptest import drawn, make_user, page_as, send_message, text_of, use_environment
from callhelpers import log_call
from fakeproviders import FakeProvider

from byok_core import budgets, currency, keys, usage
from byok_core.budgets import caps
from byok_core.identity import Actor, KeySource, Owner
from byok_core.pricing import CostBound
from byok_core.providers import Provider
from byok_core.record import CallRecord
from byok_ui import chat_view

OP = Actor.operator()


@pytest.fixture
def people(rt):
    ann, root = make_user(rt, "ann"), make_user(rt, "root", admin=True)
    log_call(rt, user_id=ann.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.TEAM,
             input_tokens=100, output_tokens=10, latency_ms=5, cost_usd=1.25)
    log_call(rt, user_id=ann.id, provider=Provider.GOOGLE, model="gemini-2.0-flash", key_source=KeySource.USER,
             input_tokens=10, output_tokens=2, latency_ms=5, cost_usd=0.000013)
    return ann, root


def test_an_admin_sets_the_currency_in_its_tab_and_budgets_are_typed_and_shown_in_it(app, rt, people):
    _, root = people
    at = page_as(rt, root, "budgets")
    assert at.text_input(key="budgets_amount").label == "USD per month"
    assert at.text_input(key="currency_rate").value == "1"
    at.selectbox(key="currency_code").set_value("JPY").run()
    assert at.text_input(key="currency_rate").value == ""  # another currency: its rate is to be typed
    at.text_input(key="currency_rate").set_value("0.0067")  # the other way round: USD per yen
    at.button(key="currency_set").click().run()
    assert [text_of(e.value) for e in at.tabs[4].error] == [
        "One US dollar buys about 150 JPY, not 0.0067: enter how many JPY one US dollar buys (not the other "
        "way round)."]
    assert currency.current(rt) == currency.USD and at.text_input(key="currency_rate").value == "0.0067"  # kept
    at.selectbox(key="currency_code").set_value("EUR").run()
    at.text_input(key="currency_rate").set_value("0.92")
    at.button(key="currency_set").click().run()
    assert [e.value for e in at.tabs[4].success] == ["Currency set."] and not at.tabs[0].success
    assert list(at.tabs[4].dataframe[0].value["Rate"]) == ["1 USD = 0.92 EUR"]
    assert at.text_input(key="budgets_amount").label == "EUR per month"
    at.text_input(key="budgets_amount").set_value("20")
    at.button(key="budgets_set").click().run()
    assert budgets.budget_of(rt, Owner.team()) == pytest.approx(20 / 0.92)
    assert page_as(rt, root, "budgets").text_input(key="budgets_amount").value == "20.00"  # read back as typed
    report = drawn(at.tabs[0].dataframe[0])
    assert (report["Monthly budget (EUR)"].iloc[0], report["Spent this month (EUR)"].iloc[0]) == ("€20.00", "€1.15")
    assert not [cell for column in report for cell in report[column] if "$" in str(cell)]
    # prices that providers set stay in dollars, and say so
    assert list(at.tabs[3].dataframe[-1].value.columns) == ["Provider", "USD per request", "Default (USD)"]
    assert at.tabs[3].number_input(key="prices_usd").label == "USD per call"


def test_the_usage_page_shows_costs_in_euros_and_the_csv_stays_in_dollars(app, rt, people):
    ann, root = people
    currency.set_display(rt, OP, "EUR", "0.92")
    at = page_as(rt, root, "usage")
    shown = {m.label: m.value for m in at.metric}
    assert (shown["Estimated cost"], shown["On shared keys"], shown["On people's own keys"]) == (
        "€1.1500", "€1.1500", "€0.000012")
    tables = [d.value for d in at.dataframe if "Cost (EUR)" in d.value]
    assert len(tables) >= 7 and not [d.value for d in at.dataframe if "Cost (USD)" in d.value]
    calls = drawn(at.dataframe[-1])  # every call
    assert list(calls["Cost (EUR)"]) == ["€0.000012", "€1.1500"]
    assert any(m.value == "**Known cost per day (EUR), by provider**" for m in at.markdown)
    assert not [m.value for m in at.metric if "$" in m.value]
    out = io.StringIO()
    usage.write_csv(rt, OP, usage.UsageFilter(), out)
    header, *rows = out.getvalue().splitlines()
    assert header.split(",")[9] == "cost_usd" and sorted(r.split(",")[9] for r in rows) == ["0.000013", "1.25"]
    member = page_as(rt, ann, "usage")
    assert {m.label: m.value for m in member.metric}["Estimated cost"] == "€1.1500"


def test_the_line_under_a_reply_says_the_currency():
    record = CallRecord(provider=Provider.OPENAI, key_source=KeySource.TEAM, model="gpt-4o", input_tokens=10,
                        output_tokens=5, cost_usd=0.0021, charged_usd=0.01, latency_ms=1200)
    with currency.showing(currency.Currency("JPY", 150.0)):
        line = chat_view.caption(record)
    assert "¥0.315 · ¥2 counted against the budget" in line and "$" not in line
    assert "$0.0021 · $0.0100 counted" in chat_view.caption(record)


def test_the_budget_warning_under_a_reply_is_in_the_currency(app, rt, environ, monkeypatch):
    """The reply's worker writes its budget words in the currency of the page run that sent it."""
    ann = make_user(rt, "ann")
    eur = currency.set_display(rt, OP, "EUR", "0.92")
    budgets.set_budget(rt, OP, Owner.user(ann.id), "1.00", eur)
    log_call(rt, user_id=ann.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.ENV,
             input_tokens=1, output_tokens=1, latency_ms=1, cost_usd=0.9 / 0.92)  # €0.90 of €1.00
    with FakeProvider(Provider.OPENAI, reply="Hello") as fake:
        use_environment(monkeypatch, {**environ, **fake.env(), "OPENAI_API_KEY": "sk-fake.env-CURRENCY-0123456789"})
        at = page_as(rt, ann)
        send_message(at, rt, "Say hello")
    [reply] = [m for m in at.chat_message if m.name == "assistant"]
    [warning] = [text_of(w.value) for w in reply.info]
    assert "Your monthly budget for shared keys is 9" in warning and "of €1.00)" in warning, warning
    assert "$" not in warning and "€" in reply.caption[-1].value and "$" not in reply.caption[-1].value


def test_a_search_says_its_cost_in_the_currency(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.BRAVE, "brave-ann-key-1234")
    currency.set_display(rt, OP, "GBP", "0.78")
    with FakeProvider(Provider.BRAVE) as brave:
        use_environment(monkeypatch, {**environ, **brave.env()})
        at = page_as(rt, ann, "search")
        at.text_input(key="search_query").set_value("example")
        at.session_state["search_providers"] = [Provider.BRAVE]
        at.button(key="FormSubmitter:search_form-Search").click().run()
    assert [c.value for c in at.caption if "paid by" in c.value] == ["3 results · paid by your key · £0.0039"]


def test_a_cap_on_your_own_key_is_typed_and_shown_in_the_currency(app, rt, people):
    ann, _ = people
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-ann-own-CAPS-EUR-0123456789")
    currency.set_display(rt, OP, "EUR", "0.92")
    at = page_as(rt, ann, "keys")
    assert at.text_input(key="caps_amount").label == "Monthly cap in EUR"
    at.text_input(key="caps_amount").set_value("10")
    at.button(key="FormSubmitter:caps_form-Save cap").click().run()
    assert caps.caps_of(rt, ann.id)[Provider.OPENAI].monthly_usd == pytest.approx(10 / 0.92)
    said = [text_of(s.value) for s in at.success] + [m.value for m in at.markdown if "this month" in m.value]
    assert any("capped at €10.00 a month" in s for s in said), said
    assert any("€0.00 of €10.00 this month" in s for s in said), said
    assert not [s for s in said if "$" in s] and "sk-ann-own-CAPS-EUR" not in str(at)
    refused = caps.Cap(1, Provider.OPENAI, 10 / 0.92, True, spent_usd=11.0)
    with currency.showing(currency.current(rt)):
        assert "(€10.12 of €10.00 this month)" in (refused.why_refused(CostBound(0.01)) or "")
