"""Fallback to the team's key: only when an admin allowed it for the provider, only after the member's
own key was refused for quota or rate limit, admitted like any team-key call, both calls logged."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from callhelpers import dump_database, runtime_with, usage_rows
from fakeproviders import FakeProvider
from test_keywatch import QUOTA

from byok_core import accounts, audit, budgets, fallback, keys, limits, words
from byok_core.chat import ChatMessage, stream_chat
from byok_core.errors import CallStatus, PermissionDenied, RateLimited
from byok_core.identity import Actor, KeySource, Owner, Role
from byok_core.providers import Provider

OWN_KEY = "sk-fake.own-fallback-OOOOOOOOOOOOOOOOOOOOOO1111"
TEAM_KEY = "sk-fake.team-fallback-TTTTTTTTTTTTTTTTTTTTT2222"
P = Provider.OPENAI_COMPATIBLE
OP = Actor.operator()


@contextmanager
def member_and_team(environ, **own_answer):
    """A member whose own endpoint answers ``own_answer`` and a team endpoint that works:
    (rt, member, admin, own server, team server)."""
    with FakeProvider(P, **own_answer) as own, FakeProvider(P, reply="Paid by the team") as team, \
            runtime_with(environ, BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as rt:
        member = Actor.of(accounts.create_user(rt, OP, "mia", "mia-password"))
        admin = Actor.of(accounts.create_user(rt, OP, "boss", "boss-password", Role.ADMIN))
        keys.store(rt, member, Owner.user(member.user_id), P, OWN_KEY, base_url=own.base_url)
        keys.store(rt, admin, Owner.team(), P, TEAM_KEY, base_url=team.base_url)
        yield rt, member, admin, own, team


def chat(rt, member):
    stream = stream_chat(rt, user_id=member.user_id, provider=P, model="llama-3.1-8b",
                         messages=[ChatMessage("user", "hi")])
    text = "".join(stream)
    return text, stream.result


def logged(rt) -> list[tuple[KeySource, CallStatus]]:
    return [(r.key_source, r.status) for r in sorted(usage_rows(rt), key=lambda r: r.id)]


def test_an_exhausted_own_key_is_retried_once_on_the_team_key_when_allowed(environ):
    with member_and_team(environ, status=429, error_body=QUOTA) as (rt, member, admin, own, team):
        text, result = chat(rt, member)  # not allowed yet: the refusal stands
        assert (text, result.record.key_source, type(result.error)) == ("", KeySource.USER, RateLimited)
        assert team.requests == []
        with pytest.raises(PermissionDenied):
            fallback.set_allowed(rt, member, P, True)
        fallback.set_allowed(rt, admin, P, True)
        fallback.set_allowed(rt, admin, P, True)  # no change: audited once
        text, result = chat(rt, member)
        assert text == "Paid by the team" and result.error is None
        assert result.record.key_source is KeySource.TEAM and result.fell_back_from.status is CallStatus.RATE_LIMITED
        assert result.record.notice == "Your key was out of quota; the team's key paid."
        assert logged(rt) == [(KeySource.USER, CallStatus.RATE_LIMITED), (KeySource.USER, CallStatus.RATE_LIMITED),
                              (KeySource.TEAM, CallStatus.OK)]
        assert "no quota or credit left" in usage_rows(rt)[1].error
        assert own.sent_keys() == [OWN_KEY, OWN_KEY] and team.sent_keys() == [TEAM_KEY]  # never the other's
        fallback.set_opted_out(rt, member, True)  # she turns it off for herself
        text, result = chat(rt, member)
        assert (text, result.record.key_source) == ("", KeySource.USER) and len(team.requests) == 1
        fallback.set_opted_out(rt, member, False)
        assert chat(rt, member)[0] == "Paid by the team"
        fallback.set_allowed(rt, admin, P, False)
        assert chat(rt, member)[0] == "" and fallback.allowed_providers(rt) == set()
        names = {admin.user_id: "boss"}
        assert [words.audit_sentence(e, names) for e in audit.recent(rt, limit=2)] == [
            "boss stopped retrying members' OpenAI-compatible calls on the team's key",
            "boss let members' OpenAI-compatible calls that their own key could not pay for (no quota, rate limit) "
            "be retried once on the team's key"]
        assert OWN_KEY not in dump_database(rt) and TEAM_KEY not in dump_database(rt)


def test_a_rate_limited_own_key_says_so(environ):
    with member_and_team(environ, status=429) as (rt, member, admin, _, _):
        fallback.set_allowed(rt, admin, P, True)
        text, result = chat(rt, member)
        assert text == "Paid by the team"
        assert result.record.notice == "Your key was rate-limited; the team's key paid."


@pytest.mark.parametrize("status", [401, 503, 400])
def test_other_refusals_are_not_retried_on_the_team_key(environ, status):
    with member_and_team(environ, status=status) as (rt, member, admin, _, team):
        fallback.set_allowed(rt, admin, P, True)
        text, result = chat(rt, member)
        assert text == "" and result.error is not None and result.record.key_source is KeySource.USER
        assert team.requests == [] and len(usage_rows(rt)) == 1


def test_the_retry_is_admitted_like_any_team_key_call(environ):
    with member_and_team(environ, status=429, error_body=QUOTA) as (rt, member, admin, _, team):
        fallback.set_allowed(rt, admin, P, True)
        limits.set_allowlist(rt, admin, P, ["gpt-*"], role=Role.MEMBER)  # not this model on shared keys
        text, result = chat(rt, member)
        assert (text, type(result.error)) == ("", RateLimited) and team.requests == []
        limits.set_allowlist(rt, admin, P, [], role=Role.MEMBER)
        budgets.set_budget(rt, admin, Owner.team(), 1)  # a budget: a model of unknown price is refused on it
        text, result = chat(rt, member)
        assert (text, type(result.error)) == ("", RateLimited) and team.requests == []
        assert logged(rt) == [(KeySource.USER, CallStatus.RATE_LIMITED)] * 2  # no team call was made
