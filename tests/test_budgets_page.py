"""AppTest: the Budgets page (budgets in cents, rate limits, model lists, alert webhook, per-call
prices) and what is left of a budget, shown to members on Chat and Search."""

from __future__ import annotations

import pytest
from apptest import app_test, drawn, make_user, open_page, page_as, sign_in, text_of
from callhelpers import log_call

from byok_core import alerts, budgets, limits, pricing
from byok_core.identity import Actor, Owner, Role
from byok_core.models import KeySource
from byok_core.providers import Provider

OP = Actor.operator()


@pytest.fixture
def people(rt):
    ann, bob, root = make_user(rt, "ann"), make_user(rt, "bob"), make_user(rt, "root", admin=True)
    for user, cost in ((ann, 0.75), (bob, 2.0)):
        log_call(rt, user_id=user.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.TEAM,
                 input_tokens=100, output_tokens=10, latency_ms=5, cost_usd=cost)
    return ann, bob, root




def texts(at) -> str:
    return " ".join(text_of(str(e.value)) for kind in ("markdown", "caption", "error", "warning", "success", "info")
                    for e in getattr(at, kind))


def test_budgets_are_set_in_cents_and_the_chosen_budget_is_loaded(app, rt, people):
    ann, _, root = people
    budgets.set_budget(rt, OP, Owner.user(ann.id), 12.5)
    at = page_as(rt, root, "budgets")
    at.selectbox(key="budgets_target").set_value(Owner.user(ann.id)).run()
    assert at.text_input(key="budgets_amount").value == "12.50"  # her budget, loaded
    at.text_input(key="budgets_amount").set_value("0.005")
    at.button(key="budgets_set").click().run()
    assert "whole cents" in at.error[0].value and budgets.budget_of(rt, Owner.user(ann.id)) == 12.5
    at.text_input(key="budgets_amount").set_value("0.0002")  # $0.00 would refuse every call: not suggested
    at.button(key="budgets_set").click().run()
    assert "use $0.01 instead of $0.0002" in text_of(at.error[0].value)
    at.text_input(key="budgets_amount").set_value("$1,000.25")
    at.button(key="budgets_set").click().run()
    assert at.success and budgets.budget_of(rt, Owner.user(ann.id)) == 1000.25
    report = drawn(at.dataframe[0])
    assert list(report["Who"]) == ["The whole team", "ann", "bob"]
    assert list(report["Spent this month (USD)"]) == ["$2.75", "$0.75", "$2.00"]
    assert list(at.dataframe[0].value["Spent this month (USD)"]) == [2.75, 0.75, 2.0]  # numbers: it sorts by amount
    assert list(report["Monthly budget (USD)"]) == ["no budget", "$1,000.25", "no budget"]
    assert list(report["Used"]) == ["—", "0%", "—"] and list(report["Left (USD)"]) == ["—", "$999.50", "—"]
    at.button(key="budgets_clear").click().run()
    assert budgets.budget_of(rt, Owner.user(ann.id)) is None


def test_rate_limits_and_model_lists_are_saved_and_loaded(app, rt, people):
    ann, _, root = people
    at = page_as(rt, root, "budgets")
    at.number_input(key="limits_user").set_value(5)
    at.button(key="limits_save").click().run()
    assert limits.rate_limits(rt) == (5, None)
    at.text_area(key="models_patterns").set_value("gpt-4o-mini\nclaude-haiku-*")
    at.button(key="models_save").click().run()
    assert limits.allowlist(rt, Provider.OPENAI, role=Role.MEMBER) == ["claude-haiku-*", "gpt-4o-mini"]
    at.selectbox(key="models_subject").set_value(ann.id).run()
    assert at.text_area(key="models_patterns").value == ""  # no list of her own
    at.selectbox(key="models_subject").set_value(Role.MEMBER).run()
    assert at.text_area(key="models_patterns").value == "claude-haiku-*\ngpt-4o-mini"


def test_webhook_is_guarded_and_never_shown(app, rt, people):
    at = page_as(rt, people[2], "budgets")
    at.text_input(key="alerts_url").set_value("http://169.254.169.254/latest")
    at.button(key="alerts_save").click().run()
    assert at.error and alerts.webhook(rt) is None
    at.text_input(key="alerts_url").set_value("https://hooks.example.com/services/T0/B0/very-secret-token")
    at.button(key="alerts_save").click().run()
    assert alerts.webhook(rt) == "https://hooks.example.com/services/T0/B0/very-secret-token"
    assert "https://hooks.example.com/…" in texts(at) and "very-secret-token" not in texts(at)
    assert at.text_input(key="alerts_url").value == ""


def test_per_call_price_for_a_model_genai_prices_does_not_know(app, rt, people):
    at = page_as(rt, people[2], "budgets")
    at.text_input(key="prices_model").set_value("my-finetune")
    at.number_input(key="prices_usd").set_value(0.02)
    at.button(key="prices_set").click().run()
    assert pricing.model_prices(rt) == [(Provider.OPENAI, "my-finetune", 0.02)]


def test_members_see_what_is_left_and_admins_the_banner(app, rt, people):
    ann, bob, root = people
    budgets.set_budget(rt, OP, Owner.user(ann.id), 10)
    budgets.set_budget(rt, OP, Owner.user(bob.id), 2.2)  # 91%
    for name in ("chat", "search"):
        shown = texts(page_as(rt, ann, name))
        assert "Left this month on shared keys (you: $9.25 of $10.00)." in shown, name
    assert "91% used" in texts(page_as(rt, bob, "search"))
    assert "Budgets at 80% or more this month: bob." in texts(page_as(rt, root, "budgets"))


def test_members_cannot_open_budgets(app, rt, people):
    at = app_test()
    sign_in(at, rt, people[0])
    at.run()
    with pytest.raises(ValueError):
        open_page(at, "budgets")


def test_each_outcome_shows_in_the_tab_it_came_from(app, rt, people):
    """Drawn above the tabs, a message would move them and the browser would open the first tab
    again; drawn in its own tab, nothing above the tabs changes."""
    at = page_as(rt, people[2], "budgets")
    assert [t.label for t in at.tabs] == ["Budgets", "Rate limits and models", "Alerts", "Prices", "Currency"]
    at.number_input(key="limits_user").set_value(5)
    at.button(key="limits_save").click().run()
    assert [e.value for e in at.tabs[1].success] == ["Rate limits saved."] and not at.tabs[0].success
    at.text_input(key="alerts_url").set_value("http://169.254.169.254/latest")
    at.button(key="alerts_save").click().run()
    assert [text_of(e.value) for e in at.tabs[2].error] == [
        "That webhook URL points at a cloud metadata service, which is never allowed."]
    at.text_input(key="budgets_amount").set_value("1e400")
    at.button(key="budgets_set").click().run()
    assert [text_of(e.value) for e in at.tabs[0].error] == [
        "That budget is too large: a monthly budget is at most $999,999,999.99."]
    at.button(key="prices_remove").click().run()
    assert at.tabs[3].success or at.tabs[3].error
    assert not at.tabs[0].error and not at.tabs[2].error  # each shown once, then gone


def test_one_persons_rate_limit_is_set_loaded_and_cleared(app, rt, people):
    ann, bob, root = people
    limits.set_rate_limits(rt, OP, 2, None)
    at = page_as(rt, root, "budgets")
    at.selectbox(key="limits_person").set_value(ann.id).run()
    assert at.number_input(key="limits_person_rpm").value == 2  # the per-person figure, as she has none
    at.number_input(key="limits_person_rpm").set_value(0)
    at.button(key="limits_person_set").click().run()
    assert limits.person_limits(rt) == {ann.id: 0} and at.tabs[1].success
    table = next(d.value for d in at.dataframe if "Calls per minute" in d.value.columns)
    assert table.to_dict("list") == {"Who": ["ann"], "Calls per minute": ["no limit"]}
    at.selectbox(key="limits_person").set_value(bob.id).run()
    at.number_input(key="limits_person_rpm").set_value(7)
    at.button(key="limits_person_set").click().run()
    at.selectbox(key="limits_person").set_value(ann.id).run()
    assert at.number_input(key="limits_person_rpm").value == 0  # her own, loaded
    at.button(key="limits_person_clear").click().run()
    assert limits.person_limits(rt) == {bob.id: 7}
