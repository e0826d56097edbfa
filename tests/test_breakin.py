"""Attacks found by a break-in test of the app, each reproduced against real loopback servers and a
real database, and each now failing to succeed."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
import sqlalchemy as sa
from callhelpers import log_call, runtime_with, sealed_by_version_1, usage_rows
from fakeproviders import FakeProvider
from genai_prices import Usage

from byok_core import accounts, budgets, first_format, keys, keytest, pricing, usage, usage_log, vault
from byok_core.chat import ChatMessage, list_models, stream_chat
from byok_core.errors import BudgetExceeded, KeyUnreadableError, ValidationError
from byok_core.identity import Actor, KeySource, Owner, OwnerKind
from byok_core.models import ApiKey, AppSetting
from byok_core.providers import Provider
from byok_core.secret import mask

TEAM_KEY = "AIza-fake.team-BREAKIN-0123456789abcdef"
OPENAI_TEAM_KEY = "sk-fake.team-BREAKIN-tttttttttttttttt3333"
USER_KEY = "sk-fake.user-BREAKIN-uuuuuuuuuuuuuuuu1111"
HI = [ChatMessage("user", "Say hello")]
OP = Actor.operator()


def chat(rt, provider, model, user_id=None):
    stream = stream_chat(rt, user_id=user_id, provider=provider, model=model, messages=HI)
    deltas = list(stream)
    assert stream.result is not None
    return deltas, stream.result


# --- 1. model names: one canonical string, sent, priced, budgeted and logged ------------------------


def test_models_prefix_is_the_same_model_for_price_and_budget(environ):
    with FakeProvider(Provider.GOOGLE) as server, runtime_with(environ, **server.env(),
                                                               GOOGLE_GENERATIVE_AI_API_KEY=TEAM_KEY) as rt:
        _, plain = chat(rt, Provider.GOOGLE, "gemini-2.5-pro")
        _, prefixed = chat(rt, Provider.GOOGLE, "models/gemini-2.5-pro")
        assert [r.path.split("?")[0] for r in server.requests] == [
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent"] * 2
        assert prefixed.record.model == plain.record.model == "gemini-2.5-pro"
        assert prefixed.record.cost_usd == plain.record.cost_usd is not None
        assert [r.model for r in usage_rows(rt)] == ["gemini-2.5-pro", "gemini-2.5-pro"]
        budgets.set_budget(rt, OP, Owner.team(), "0.01")  # less than the next call's worst case at a known price
        with pytest.raises(BudgetExceeded, match="could cost up to"):
            stream_chat(rt, user_id=None, provider=Provider.GOOGLE, model="models/gemini-2.5-pro", messages=HI)


@pytest.mark.parametrize("model", ["x/../gemini-2.5-pro", "../gemini", "gemini-2.5-pro/../../v1/files",
                                   "a" * 121, "gemini 2.5", "gemini%2F..", "gemini\nx", "models/", "/abs"])
def test_bad_model_names_are_refused_before_any_request(environ, model):
    with FakeProvider(Provider.GOOGLE) as server, runtime_with(environ, **server.env(),
                                                               GOOGLE_GENERATIVE_AI_API_KEY=TEAM_KEY) as rt:
        with pytest.raises(ValidationError, match="model"):
            stream_chat(rt, user_id=None, provider=Provider.GOOGLE, model=model, messages=HI)
        assert server.requests == [] and usage_rows(rt) == []


def test_model_names_that_providers_use_are_accepted(environ):
    with FakeProvider(Provider.OPENAI_COMPATIBLE, models=["meta-llama/llama-3.1-8b-instruct:free"]) as server, \
            runtime_with(environ, BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as rt:
        keys.store(rt, OP, Owner.team(), Provider.OPENAI_COMPATIBLE, USER_KEY, base_url=server.base_url)
        _, result = chat(rt, Provider.OPENAI_COMPATIBLE, "meta-llama/llama-3.1-8b-instruct:free")
        assert result.record.status == "ok"
        assert server.requests[0].body["model"] == "meta-llama/llama-3.1-8b-instruct:free"


def test_a_call_that_reached_the_provider_is_logged_even_if_the_last_write_fails(environ, monkeypatch):
    """The usage row is written before the call and completed after: a failing completion leaves the
    call logged (as not finished), never unlogged."""
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env(),
                                                               OPENAI_API_KEY=OPENAI_TEAM_KEY) as rt:
        def broken(*args, **kwargs):
            raise sa.exc.OperationalError("UPDATE usage_records", {}, Exception("disk full"))

        monkeypatch.setattr(usage_log, "complete", broken)
        chat(rt, Provider.OPENAI, "gpt-4o-mini")
        assert len(server.requests) == 1
        [row] = usage_rows(rt)
        assert (row.provider, row.model, row.key_source, row.status) == ("openai", "gpt-4o-mini", "env", "pending")


# --- 4. write access to the database alone must not send a stored key elsewhere --------------------


def test_a_base_url_planted_on_a_team_openai_row_is_never_used(environ):
    with FakeProvider(Provider.OPENAI) as legit, FakeProvider(Provider.OPENAI) as attacker, \
            runtime_with(environ, **legit.env()) as rt:
        info = keys.store(rt, OP, Owner.team(), Provider.OPENAI, OPENAI_TEAM_KEY)
        with rt.engine.begin() as conn:
            conn.execute(sa.update(ApiKey).where(ApiKey.id == info.id).values(base_url=attacker.base_url))
        with pytest.raises(KeyUnreadableError):  # the base URL is bound to the value: tampering shows
            stream_chat(rt, user_id=None, provider=Provider.OPENAI, model="gpt-4o-mini", messages=HI)
        assert attacker.requests == [] and legit.requests == []


def test_a_changed_base_url_on_an_openai_compatible_row_fails_to_decrypt(environ):
    with FakeProvider(Provider.OPENAI_COMPATIBLE) as attacker, \
            runtime_with(environ, BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as rt:
        info = keys.store(rt, OP, Owner.team(), Provider.OPENAI_COMPATIBLE, USER_KEY,
                          base_url="http://127.0.0.1:9/v1")
        with rt.engine.begin() as conn:
            conn.execute(sa.update(ApiKey).where(ApiKey.id == info.id).values(base_url=attacker.base_url))
        with pytest.raises(KeyUnreadableError):
            stream_chat(rt, user_id=None, provider=Provider.OPENAI_COMPATIBLE, model="llama", messages=HI)
        assert attacker.requests == []
        assert [row_id for row_id, _, _ in vault.scan(rt).unreadable] == [info.id]


@pytest.mark.parametrize("marker", ["pending", "v2:0123456789ab:bm90IGEgbWFuaWZlc3Q", "{}"])
def test_a_first_format_value_planted_after_the_upgrade_is_refused(environ, rt, marker):
    """First-format values are re-sealed once, in the upgrade that crosses migration 0003
    (test_upgrade_first_release.py); one planted later with a base URL of the attacker's choosing, even
    with a marker or manifest of the attacker's making, is refused at every start."""
    planted = uuid.uuid4().hex
    with rt.engine.begin() as conn:
        conn.execute(sa.insert(ApiKey).values(
            id=planted, owner_kind=OwnerKind.TEAM, owner_id=0, provider=Provider.OPENAI_COMPATIBLE, label="",
            ciphertext=sealed_by_version_1(rt.keyring, USER_KEY, f"team:0|openai-compatible|{planted}"),
            key_id=rt.keyring.primary.key_id, mask=mask(USER_KEY), base_url="https://attacker.example/v1"))
        conn.execute(sa.delete(AppSetting).where(AppSetting.name == first_format.PENDING))
        conn.execute(sa.insert(AppSetting).values(name=first_format.PENDING, value=marker))
    with runtime_with(environ) as again:
        first_format.reseal_pending(again)  # what every start does
        with pytest.raises(KeyUnreadableError):
            keys.resolve(again, None, Provider.OPENAI_COMPATIBLE)
        assert [row_id for row_id, _, _ in vault.scan(again).unreadable] == [planted]


# --- 5. keys with characters no API key has --------------------------------------------------------


@pytest.mark.parametrize("raw, says", [("sk-…a1b2", "mask"), ("sk-proj-abc…xyz9", "mask"),
                                       ("sk-abcdé123456789", "ASCII"), ("sk-abc\u200b123456789", "control characters")])
def test_non_ascii_keys_are_refused_with_a_reason(rt, raw, says):
    with pytest.raises(ValidationError, match=says):
        keys.store(rt, OP, Owner.team(), Provider.OPENAI, raw)


def test_every_call_survives_a_stored_key_no_provider_would_accept(environ, monkeypatch):
    """A key stored before this check (or planted) with a non-ASCII character: plain words, no crash."""
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env()) as rt:
        monkeypatch.setattr(keys, "validate_key", lambda raw: raw)  # as an older version accepted it
        keys.store(rt, OP, Owner.team(), Provider.OPENAI, "sk-fake.team-…-0123456789")
        monkeypatch.undo()
        _, result = chat(rt, Provider.OPENAI, "gpt-4o-mini")
        assert result.record.status == "key_rejected" and "save it again" in str(result.error)
        assert "save it again" in keytest.check(rt, OP, Owner.team(), Provider.OPENAI).message
        assert "gpt-4o-mini" in list_models(rt, user_id=None, provider=Provider.OPENAI)  # the static list
        assert server.requests == []


# --- 6. CSV formula injection --------------------------------------------------------------------


@pytest.mark.parametrize("model", ["=HYPERLINK(\"http://evil.example\",\"x\")", "+cmd", "-2+3", "@SUM(A1)",
                                   "\tTAB", "\rCR"])
def test_csv_cells_cannot_start_a_formula(rt, model):
    alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
    with rt.engine.begin() as conn:  # a model name the provider accepted, as logged before validation
        conn.execute(sa.insert(usage.UsageRecord).values(
            user_id=alice.id, kind="chat", provider="openai", model=model, key_source="user", latency_ms=1,
            status="ok"))
    out = io.StringIO()
    usage.write_csv(rt, OP, usage.UsageFilter(), out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["model"] == "'" + model
    assert row["user"] == "alice" and row["input_tokens"] == ""


def test_csv_numbers_are_left_alone(rt):
    log_call(rt, provider=Provider.OPENAI, key_source=KeySource.ENV, model="gpt-4o", input_tokens=5,
             output_tokens=2, latency_ms=3,
             cost_usd=pricing.usage_cost(Provider.OPENAI, "gpt-4o", Usage(input_tokens=5, output_tokens=2)))
    out = io.StringIO()
    usage.write_csv(rt, OP, usage.UsageFilter(), out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert (row["input_tokens"], row["output_tokens"], row["latency_ms"]) == ("5", "2", "3")
    assert not row["cost_usd"].startswith("'")
