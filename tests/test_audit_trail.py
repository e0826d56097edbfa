"""Every admin action (users, roles, prices, budgets, limits, models, webhook, team keys) leaves an
audit row that names who did it, from the pages (AppTest, signed in as an admin) and from the
command line (``byok_core.cli.main``, which acts as the operator) alike."""

from __future__ import annotations

import io
import re
import sys

import pytest
from apptest import make_user, page_as, use_environment
from fakeproviders import FakeProvider

from byok_core import audit
from byok_core.audit import AuditAction as A
from byok_core.audit import Target
from byok_core.cli import main
from byok_core.identity import Owner, Role
from byok_core.providers import Provider
from byok_core.runtime import Runtime

TEAM_KEY = "tvly-team-PLAINTEXT-0123456789"


def audited_since(rt: Runtime, last_id: int) -> list[tuple[str, str, Target]]:
    """(actor, action, target) of the events after ``last_id``, oldest first."""
    return [(e.actor, e.action, Target.of(e)) for e in reversed(audit.recent(rt)) if e.id > last_id]


def everything_logged(rt: Runtime) -> str:
    """Every field of every event but its action (``user.password`` is one)."""
    return repr([e.model_dump(exclude={"action"}) for e in audit.recent(rt)])


def last_id(rt: Runtime) -> int:
    newest = audit.recent(rt, limit=1)
    return newest[0].id if newest else 0


@pytest.fixture
def cli(environ, monkeypatch, capsys):
    """Run `byok ARGS` in-process with ``stdin`` text; returns (exit code, stdout), stderr empty."""
    for name, value in environ.items():
        monkeypatch.setenv(name, value)

    def run(*args: str, stdin: str = "") -> tuple[int, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(args))
        out, err = capsys.readouterr()
        assert err == "", err
        return code, out

    return run


def test_the_command_line_audits_every_admin_action_as_the_operator(rt, cli):
    steps = [
        (("users", "create", "ann"), "ann password 1\n"),
        (("users", "set-role", "ann", "admin"), ""),
        (("users", "disable", "ann"), ""),
        (("users", "enable", "ann"), ""),
        (("users", "set-password", "ann"), "ann password 2\n"),
        (("users", "rename", "ann", "anna"), ""),
        (("usage", "prices", "--set", "brave", "0.004"), ""),
        (("usage", "budget", "set", "--team", "25"), ""),
        (("usage", "budget", "clear", "--team"), ""),
        (("keys", "set", "--team", "--provider", "tavily", "--no-test"), TEAM_KEY + "\n"),
    ]
    outputs = [cli(*args, stdin=stdin) for args, stdin in steps]
    assert [code for code, _ in outputs] == [0] * len(steps)
    key_id = re.search(r"\(id (\w+)\)", outputs[-1][1]).group(1)
    assert cli("keys", "delete", key_id, "--team")[0] == 0
    trail = audited_since(rt, 0)
    assert {actor for actor, _, _ in trail} == {"operator"}
    ann = Target(username="ann")
    team_key = Target(owner=Owner.team(), provider=Provider.TAVILY, key_row_id=key_id, mask="tvl…6789")
    assert [(action, target) for _, action, target in trail] == [
        (A.USER_CREATE, Target(username="ann", role=Role.MEMBER)),
        (A.USER_ROLE, Target(username="ann", role=Role.ADMIN)), (A.USER_DISABLE, ann), (A.USER_ENABLE, ann),
        (A.USER_PASSWORD, ann), (A.USER_RENAME, Target(username="anna")),
        (A.PRICE_SET, Target(provider=Provider.BRAVE)), (A.BUDGET_SET, Target(owner=Owner.team())),
        (A.BUDGET_CLEAR, Target(owner=Owner.team())), (A.KEY_STORE, team_key), (A.KEY_DELETE, team_key)]
    logged = everything_logged(rt)
    assert "password" not in logged and TEAM_KEY not in logged and TEAM_KEY[-8:] not in logged


def admin_on(rt: Runtime, page: str):
    return page_as(rt, make_user(rt, "boss", admin=True), page)


def test_the_admin_page_audits_users_roles_prices_and_team_keys(app, rt, environ, monkeypatch):
    make_user(rt, "bob")
    with FakeProvider(Provider.TAVILY, expect_key=TEAM_KEY) as fake:
        use_environment(monkeypatch, {**environ, **fake.env()})
        at = admin_on(rt, "admin")
        start = last_id(rt)
        at.text_input(key="admin_new_name").set_value("newbie")
        at.text_input(key="admin_new_pw").set_value("newbie password")
        at.button(key="FormSubmitter:admin_create-Create user").click().run()
        at.selectbox(key="admin_pick").select("bob").run()
        at.button(key="admin_role").click().run()
        at.button(key="admin_disable").click().run()
        at.button(key="admin_enable").click().run()
        at.text_input(key="admin_reset_pw").set_value("bob's new password")
        at.button(key="FormSubmitter:admin_reset-Reset password").click().run()
        at.text_input(key="admin_rename_to").set_value("robert")
        at.button(key="FormSubmitter:admin_rename-Rename").click().run()
        at.number_input(key="admin_price_brave").set_value(0.0075).run()
        at.text_input(key="teamkeys_tavily_key").set_value(TEAM_KEY)
        at.button(key="FormSubmitter:teamkeys_tavily-Save key").click().run()
        at.button(key="teamkeys_tavily_del").click().run()
        at.button(key="teamkeys_tavily_yes").click().run()
    assert not at.exception and not at.error
    trail = audited_since(rt, start)
    assert {actor for actor, _, _ in trail} == {"boss"}
    assert [action for _, action, _ in trail] == [
        A.USER_CREATE, A.USER_ROLE, A.USER_DISABLE, A.USER_ENABLE, A.USER_PASSWORD, A.USER_RENAME, A.PRICE_SET,
        A.KEY_STORE, A.KEY_DELETE]
    shown = list(next(d.value for d in at.dataframe if "What happened" in d.value.columns)["What happened"])
    assert shown[2:4] == ["boss set the price of a Brave Search request to $0.0075",
                          "boss renamed bob to robert"]


def test_the_budgets_page_audits_budgets_limits_models_webhook_and_prices(app, rt):
    at = admin_on(rt, "budgets")
    start = last_id(rt)
    at.text_input(key="budgets_amount").set_value("30")
    at.button(key="budgets_set").click().run()
    at.button(key="budgets_clear").click().run()
    at.number_input(key="limits_user").set_value(5)
    at.button(key="limits_save").click().run()
    at.text_area(key="models_patterns").set_value("gpt-4o-mini")
    at.button(key="models_save").click().run()
    at.text_input(key="alerts_url").set_value("https://hooks.example.com/services/T0/B0/secret-token")
    at.button(key="alerts_save").click().run()
    at.button(key="alerts_remove").click().run()
    at.text_input(key="prices_model").set_value("my-finetune")
    at.number_input(key="prices_usd").set_value(0.02)
    at.button(key="prices_set").click().run()
    at.button(key="prices_remove").click().run()
    assert not at.exception and not at.error
    finetune = Target(provider=Provider.OPENAI, model="my-finetune")
    assert audited_since(rt, start) == [
        ("boss", A.BUDGET_SET, Target(owner=Owner.team())), ("boss", A.BUDGET_CLEAR, Target(owner=Owner.team())),
        ("boss", A.LIMITS_SET, Target()), ("boss", A.MODELS_SET, Target(role=Role.MEMBER, provider=Provider.OPENAI)),
        ("boss", A.ALERTS_SET, Target()), ("boss", A.ALERTS_SET, Target()),
        ("boss", A.PRICE_SET, finetune), ("boss", A.PRICE_SET, finetune)]
    assert "secret-token" not in everything_logged(rt)
