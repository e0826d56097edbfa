"""Who may do what is decided in the core, once.

Every public ``byok_core`` function that commits a change to the database (found by reading its
byte code and what it calls: a transaction's ``begin`` or ``commit``) either takes an ``Actor`` and
refuses a member, which is tried here function by function, or is listed in ``EXEMPT`` with the
reason it is not an admin action. A new function that writes and is neither makes the first test
fail. The command line (``byok_core.cli``) is not walked: it acts as ``Actor.operator()``."""

from __future__ import annotations

import dis
import importlib
import inspect
import pkgutil
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import SQLModel

import byok_core
from byok_core import (
    accounts,
    alerts,
    audit,
    budgets,
    connections,
    currency,
    fallback,
    keys,
    keytest,
    keywatch,
    limits,
    presets,
    pricing,
    reconcile,
)
from byok_core.audit import AuditAction
from byok_core.errors import AuthError, PermissionDenied
from byok_core.identity import Actor, Owner, Role
from byok_core.providers import Provider
from byok_core.runtime import Runtime

_TRANSACTION = {"begin", "commit", "begin_nested"}

# Functions that commit changes without an Actor, each reviewed: none of them is an admin action.
_OWN = "a person's own calls, conversations or replies, scoped by their user id (someone else's ids look absent)"
_OPERATOR = "operator maintenance run by `byok` or at start-up, never from a page (no person to check)"
EXEMPT: dict[str, str] = {
    "accounts.signin.authenticate": "sign-in: the password is the proof; counts failures for the throttle",
    "accounts.sessions.create_session":
        "sign-in: called only after authenticate or single sign-on vouched for the user",
    "accounts.sessions.issue_login_ticket":
        "sign-in: the ticket a browser swaps for its cookie, for who just signed in",
    "accounts.sessions.redeem_login_ticket": "sign-in: the one-time ticket is the proof",
    "accounts.sessions.revoke_session": "sign-out: the session's own token is the proof",
    "accounts.setup.issue_setup_code": "first-run setup: only while no account exists",
    "accounts.setup.claim_first_admin": "first-run setup: the code printed on the server's console is the proof",
    "accounts.sso.apply_oidc_role": "single sign-on: the identity provider's groups decide the role",
    "calls.prepare": _OWN,
    "chat.stream_chat": _OWN,
    "chat.list_models": _OWN,
    "search.search": _OWN,
    "search.run_search": _OWN,
    "search.search_with": _OWN,
    "keys.resolve": _OWN + "; records a key it cannot decrypt",
    "budgets.ledger.admitted": _OWN + "; reserves a call's worst case against budgets",
    "budgets.caps.admitted": _OWN + "; reserves a call's worst case against the cap on its own key",
    "budgets.ledger.check": _OWN + "; a refusal marks that the month's 100% alert was sent",
    "calls.metered": _OWN + "; the one way to run a call: logs its usage row and settles budgets",
    "db.serialized": "a transaction for its callers, which are walked themselves",
    "conversations.create": _OWN,
    "conversations.rename": _OWN,
    "conversations.delete": _OWN,
    "conversations.add_message": _OWN,
    "conversations.set_settings": _OWN,
    "conversations.show_version": _OWN,
    "conversations.create_from_preset": _OWN + "; the preset is the team's or their own (any other looks absent)",
    "replies.opened": _OWN,
    "replies.send": _OWN,
    "replies.retry": _OWN,
    "replies.regenerate": _OWN,
    "replies.edit": _OWN,
    "replies.stop": _OWN,
    "replies.mark_interrupted": "a chore of every chat page run: marks replies whose worker died",
    "onboarding.dismiss_checklist": "a person's own display preference (the first-run checklist), by their user id",
    "keys.purge_replaced": "a chore of saving and listing keys (and start-up): replaced keys past 30 days",
    "usage_log.close_abandoned": "a chore of start-up and the reply heartbeat: usage rows of calls whose process died",
    "alerts.reseal": _OPERATOR,
    "reconcile.reseal": _OPERATOR,
    "vault.rotate": _OPERATOR,
    "vault.scan": _OPERATOR,
    "vault.forget_unreadable": _OPERATOR,
    "first_format.reseal_pending": _OPERATOR,
    "first_format.reseal_manifest": _OPERATOR,
    "first_format.forget_manifest": _OPERATOR,
    "first_format.reseal_trusting_the_database": _OPERATOR,
    "usage.prune": _OPERATOR,
    "budgets.ledger.reconcile": _OPERATOR,
    "db.upgrade": _OPERATOR,
    "startup.open_runtime": _OPERATOR,
    "keywatch.tick": "the key watch's round: the background thread of each process and `byok keys check`",
    "keywatch.run_in_background": "the key watch: started once per process at server start",
    "keywatch.warn_expiring": "a chore of the key watch's round: marks the expiry warning sent",
    "keywatch.record": "keeps what a check of a stored key found; its callers checked the actor (Check now) "
                       "or are the key watch's round",
    "leases.acquire": "the key watch's round: which process runs it (no person to check)",
    "reconcile.run": "the bill check: `byok usage reconcile`, and the daily round",
    "reconcile.run_one": "the bill check of one provider: its callers checked the actor (Check now) or are the "
                         "daily round and `byok usage reconcile`",
    "reconcile.run_openrouter": "OpenRouter keys' own count: its callers checked the actor (Check now) or are the "
                                "daily round and `byok usage reconcile`",
    "reconcile.tick": "the bill check's daily round: the key watch's background thread",
}


def _modules() -> Iterator[types.ModuleType]:
    for info in pkgutil.walk_packages(byok_core.__path__, "byok_core."):
        if not any(part in info.name.split(".") for part in ("migrations", "cli", "__main__")):
            yield importlib.import_module(info.name)


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _ours(obj: Any) -> Callable[..., Any] | None:
    obj = inspect.unwrap(obj) if callable(obj) else obj
    return obj if inspect.isfunction(obj) and obj.__module__.startswith("byok_core.") else None


def _local_imports(code: types.CodeType) -> dict[str, Any]:
    """What ``from byok_core[.x] import y`` inside a function binds (byok_core defers some imports)."""
    bound: dict[str, Any] = {}
    module, imported = None, None
    for ins in dis.get_instructions(code):
        if ins.opname == "IMPORT_NAME":
            module = importlib.import_module(ins.argval) if ins.argval.startswith("byok_core") else None
        elif ins.opname == "IMPORT_FROM" and module is not None:
            imported = getattr(module, ins.argval, None)
        elif ins.opname in ("STORE_FAST", "STORE_DEREF") and imported is not None:
            bound[ins.argval], imported = imported, None
    return bound


def _commits(fn: Callable[..., Any], seen: set[Any]) -> bool:
    """Whether ``fn``, or a byok_core function it names (``f(...)``, ``module.f(...)``, also after
    an import inside the function), opens or commits a transaction."""
    if fn in seen:
        return False
    seen.add(fn)
    for code in _code_objects(fn.__code__):  # type: ignore[attr-defined]
        local = _local_imports(code)
        module = None
        for ins in dis.get_instructions(code):
            if ins.opname in ("LOAD_ATTR", "LOAD_METHOD"):
                if ins.argval in _TRANSACTION:
                    return True
                named = getattr(module, ins.argval, None) if module is not None else None
            else:
                named = (fn.__globals__.get(ins.argval) if ins.opname == "LOAD_GLOBAL"  # type: ignore[attr-defined]
                         else local.get(ins.argval) if ins.opname in ("LOAD_FAST", "LOAD_DEREF") else None)
            callee = _ours(named)
            if callee is not None and _commits(callee, seen):
                return True
            module = named if inspect.ismodule(named) else None
    return False


def committing_functions() -> dict[str, Callable[..., Any]]:
    """Every public function of byok_core that commits a change, as "module.name"."""
    found = {}
    for module in _modules():
        for name, fn in vars(module).items():
            if not name.startswith("_") and inspect.isfunction(fn) and fn.__module__ == module.__name__ \
                    and _commits(inspect.unwrap(fn), set()):
                found[f"{module.__name__.removeprefix('byok_core.')}.{name}"] = fn
    return found


def _takes_actor(fn: Callable[..., Any]) -> bool:
    return any(p.annotation in (Actor, "Actor") for p in inspect.signature(fn).parameters.values())


# --- what a member is refused, and what an admin's same call leaves in the audit log -------------


@dataclass
class World:
    alice: Actor  # a member
    boss: Actor  # an admin
    active_team_key: str
    replaced_team_key: str
    team_preset: int
    team_connection: str


@dataclass(frozen=True)
class Case:
    function: str
    call: Callable[[Runtime, Actor, World], object]
    audited: AuditAction | None  # what the admin's call records; None: not tried as admin (calls a provider)


CASES = [
    Case("accounts.users.create_user", lambda rt, a, w: accounts.create_user(rt, a, "carol", "carol password"),
         AuditAction.USER_CREATE),
    Case("accounts.users.rename_user", lambda rt, a, w: accounts.rename_user(rt, a, "bob", "robert"),
         AuditAction.USER_RENAME),
    Case("accounts.users.set_disabled", lambda rt, a, w: accounts.set_disabled(rt, a, "bob", True),
         AuditAction.USER_DISABLE),
    Case("accounts.users.set_role", lambda rt, a, w: accounts.set_role(rt, a, "bob", Role.ADMIN),
         AuditAction.USER_ROLE),
    Case("accounts.users.set_password", lambda rt, a, w: accounts.set_password(rt, a, "bob", "bob's new password"),
         AuditAction.USER_PASSWORD),
    Case("pricing.set_search_price", lambda rt, a, w: pricing.set_search_price(rt, a, Provider.BRAVE, 0.01),
         AuditAction.PRICE_SET),
    Case("pricing.set_model_price", lambda rt, a, w: pricing.set_model_price(rt, a, Provider.OPENAI, "tuned", 0.02),
         AuditAction.PRICE_SET),
    Case("budgets.admin.set_budget", lambda rt, a, w: budgets.set_budget(rt, a, Owner.team(), 10),
         AuditAction.BUDGET_SET),
    Case("budgets.admin.clear_budget", lambda rt, a, w: budgets.clear_budget(rt, a, Owner.team()),
         AuditAction.BUDGET_CLEAR),
    Case("currency.set_display", lambda rt, a, w: currency.set_display(rt, a, "EUR", "0.92"),
         AuditAction.CURRENCY_SET),
    Case("limits.set_rate_limits", lambda rt, a, w: limits.set_rate_limits(rt, a, 5, 50), AuditAction.LIMITS_SET),
    Case("limits.set_person_limit", lambda rt, a, w: limits.set_person_limit(rt, a, a.user_id or w.boss.user_id, 0),
         AuditAction.LIMITS_SET),
    Case("limits.set_allowlist", lambda rt, a, w: limits.set_allowlist(rt, a, Provider.OPENAI, ["gpt-4o-mini"],
                                                                       role=Role.MEMBER), AuditAction.MODELS_SET),
    Case("alerts.set_webhook", lambda rt, a, w: alerts.set_webhook(rt, a, "https://hooks.example.com/T0/B0"),
         AuditAction.ALERTS_SET),
    Case("keys.store", lambda rt, a, w: keys.store(rt, a, Owner.team(), Provider.TAVILY, "tvly-team-key-0123456789"),
         AuditAction.KEY_STORE),
    Case("keys.restore", lambda rt, a, w: keys.restore(rt, a, Owner.team(), w.replaced_team_key),
         AuditAction.KEY_REPLACE),
    Case("keys.delete", lambda rt, a, w: keys.delete(rt, a, Owner.team(), w.active_team_key), AuditAction.KEY_DELETE),
    Case("keytest.save", lambda rt, a, w: keytest.save(rt, a, Owner.team(), Provider.TAVILY,
                                                       "tvly-team-key-0123456789", test=False), AuditAction.KEY_STORE),
    Case("presets.create", lambda rt, a, w: presets.create(rt, a, Owner.team(), "Review", Provider.OPENAI, "gpt-4o"),
         AuditAction.PRESET_SET),
    Case("presets.update", lambda rt, a, w: presets.update(rt, a, w.team_preset, "Renamed", Provider.OPENAI, "gpt-4o"),
         AuditAction.PRESET_SET),
    Case("presets.delete", lambda rt, a, w: presets.delete(rt, a, w.team_preset), AuditAction.PRESET_DELETE),
    Case("connections.create", lambda rt, a, w: connections.create(rt, a, Owner.team(), "Mistral",
                                                                   "https://api.mistral.ai/v1", "mistral"),
         AuditAction.CONNECTION_SET),
    Case("connections.rename", lambda rt, a, w: connections.rename(rt, a, Owner.team(), w.team_connection, "Fast"),
         AuditAction.CONNECTION_SET),
    Case("connections.delete", lambda rt, a, w: connections.delete(rt, a, Owner.team(), w.team_connection),
         AuditAction.CONNECTION_DELETE),
    Case("keys.connection_for", lambda rt, a, w: keys.connection_for(rt, a, Owner.team(), Provider.OPENAI_COMPATIBLE,
                                                                     "https://api.deepseek.com/v1", None),
         AuditAction.CONNECTION_SET),
    Case("keys.list_keys", lambda rt, a, w: keys.list_keys(rt, a, Owner.team()), None),
    Case("keytest.check", lambda rt, a, w: keytest.check(rt, a, Owner.team(), Provider.BRAVE), None),
    Case("keywatch.check", lambda rt, a, w: keywatch.check(rt, a, Owner.team(), Provider.BRAVE), None),
    Case("keywatch.dismiss", lambda rt, a, w: keywatch.dismiss(
        rt, a, keywatch.Problem(w.active_team_key, Owner.team(), "failing:x", "")), None),
    Case("keys.set_expiry", lambda rt, a, w: keys.set_expiry(rt, a, Owner.team(), w.active_team_key, None),
         AuditAction.KEY_EXPIRY),
    # the billing key is tried with the provider before it is saved: the admin's side is tests/test_reconcile.py's
    Case("reconcile.save_key", lambda rt, a, w: reconcile.save_key(rt, a, Provider.OPENAI, "sk-admin-0123456789abcd"),
         None),
    Case("reconcile.delete_key", lambda rt, a, w: reconcile.delete_key(rt, a, Provider.OPENAI), None),
    Case("reconcile.check_now", lambda rt, a, w: reconcile.check_now(rt, a, Provider.OPENAI), None),
    Case("fallback.set_allowed", lambda rt, a, w: fallback.set_allowed(rt, a, Provider.OPENAI, True),
         AuditAction.FALLBACK_SET),
]
# each takes an Actor and changes only that actor's own account, caps or settings (tests/test_own_key_caps.py)
SELF_SERVICE = {"accounts.users.change_own_password", "budgets.caps.set_cap", "budgets.caps.clear_cap",
                "fallback.set_opted_out"}


def test_every_function_that_commits_a_change_checks_an_actor_or_is_exempt_for_a_reason():
    found = committing_functions()
    assert "accounts.users.create_user" in found and "keys.store" in found and "usage.summary" not in found  # sanity
    unguarded = sorted(name for name, fn in found.items() if not _takes_actor(fn) and name not in EXEMPT)
    assert not unguarded, (f"{unguarded} commit changes without taking an Actor: take one and check it "
                           "(actor.check_admin / check_may_manage), or add them to EXEMPT with the reason")
    guarded = {name for name, fn in found.items() if _takes_actor(fn)}
    assert guarded == {c.function for c in CASES} | SELF_SERVICE, "give each function that takes an Actor a Case"
    assert set(EXEMPT) <= set(found) - guarded, "an exemption names a function that no longer writes (or checks)"


def snapshot(rt: Runtime) -> dict[str, list[str]]:
    """Every row of every table, to show that a refused call changed nothing."""
    with rt.engine.connect() as conn:
        return {t.name: sorted(map(repr, conn.execute(t.select()))) for t in SQLModel.metadata.sorted_tables}


@pytest.fixture
def world(rt) -> World:
    op = Actor.operator()
    alice = accounts.create_user(rt, op, "alice", "alice password")
    accounts.create_user(rt, op, "bob", "bob password")
    boss = accounts.create_user(rt, op, "boss", "boss password", Role.ADMIN)
    replaced = keys.store(rt, op, Owner.team(), Provider.BRAVE, "brave-team-key-old-0123456789")
    active = keys.store(rt, op, Owner.team(), Provider.BRAVE, "brave-team-key-new-0123456789")
    budgets.set_budget(rt, op, Owner.team(), 20)
    preset = presets.create(rt, op, Owner.team(), "Team preset", Provider.OPENAI, "gpt-4o-mini")
    connection = connections.create(rt, op, Owner.team(), "Team Groq", "https://api.groq.com/openai/v1", "groq")
    return World(Actor.of(alice), Actor.of(boss), active.id, replaced.id, preset.id, connection.id)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.function)
def test_a_member_is_refused_and_nothing_changes(rt, world, case):
    before = snapshot(rt)
    with pytest.raises(PermissionDenied, match=r"^Only admins can "):
        case.call(rt, world.alice, world)
    assert snapshot(rt) == before


@pytest.mark.parametrize("case", [c for c in CASES if c.audited], ids=lambda c: c.function)
def test_an_admin_may_and_the_audit_log_says_who(rt, world, case):
    newest = audit.recent(rt, limit=1)[0].id
    case.call(rt, world.boss, world)
    assert [(e.actor, e.action) for e in audit.recent(rt) if e.id > newest][-1:] == [("boss", case.audited)]


def test_a_member_changes_only_their_own_password(rt, world):
    accounts.change_own_password(rt, world.alice, "alice password", "alice's new password")
    assert accounts.authenticate(rt, "alice", "alice's new password").username == "alice"
    assert accounts.authenticate(rt, "bob", "bob password").username == "bob"  # there is no way to name another
    assert (audit.recent(rt, limit=1)[0].actor, audit.recent(rt, limit=1)[0].username) == ("alice", "alice")
    with pytest.raises(AuthError, match="current password is wrong"):
        accounts.change_own_password(rt, world.alice, "alice password", "a third password")
    with pytest.raises(PermissionDenied, match="signed-in user"):  # the operator has no account of its own
        accounts.change_own_password(rt, Actor.operator(), "", "a password for nobody")


@pytest.mark.parametrize("change", [
    lambda rt, me: accounts.set_disabled(rt, me, "boss", True),
    lambda rt, me: accounts.set_role(rt, me, "BOSS", Role.MEMBER),
], ids=["disable", "role"])
def test_an_admin_cannot_lock_themselves_out(rt, world, change):
    before = snapshot(rt)
    with pytest.raises(PermissionDenied, match="yourself; ask another admin"):
        change(rt, world.boss)
    assert snapshot(rt) == before
