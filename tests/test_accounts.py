"""Accounts: Argon2id hashes, throttled sign-in, server-side sessions, first-run setup."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import extract_parameters

from byok_core import accounts
from byok_core.clock import utcnow
from byok_core.errors import AuthError, ValidationError
from byok_core.identity import Actor
from byok_core.models import Role

PASSWORD = "correct horse battery"


def wide(text: str) -> str:
    """``text`` in full-width letters (U+FF01 to U+FF5E), which NFKC turns back into plain ones."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)

pytestmark = pytest.mark.real_password_hashing  # the product's Argon2 parameters and timing


@pytest.fixture
def alice(rt):
    return accounts.create_user(rt, Actor.operator(), "alice", PASSWORD)


def test_argon2id_parameters_meet_owasp_minimum(alice):
    params = extract_parameters(alice.password_hash)
    assert params.type.name == "ID"
    assert params.memory_cost >= 19 * 1024 and params.time_cost >= 2 and params.parallelism >= 1
    assert PASSWORD not in alice.password_hash and PASSWORD not in repr(alice)


def test_sign_in_and_generic_failure(rt, alice):
    assert accounts.authenticate(rt, "alice", PASSWORD).id == alice.id
    with pytest.raises(AuthError) as wrong:
        accounts.authenticate(rt, "alice", "nope-nope")
    with pytest.raises(AuthError) as unknown:
        accounts.authenticate(rt, "mallory", "nope-nope")
    assert str(wrong.value) == str(unknown.value) == accounts.SIGN_IN_FAILED


def test_throttling_grows_and_blocks_even_the_right_password(rt, alice):
    t0 = utcnow()
    for _i in range(accounts.FREE_ATTEMPTS):
        with pytest.raises(AuthError):
            accounts.authenticate(rt, "alice", "wrong-password", now=t0)
    # Locked now: the correct password is refused with the same message, without revealing why.
    with pytest.raises(AuthError, match="Sign-in failed"):
        accounts.authenticate(rt, "alice", PASSWORD, now=t0 + timedelta(seconds=1))
    first_delay = accounts.get_user(rt, "alice").locked_until - t0
    # One more failure after the delay: the next delay is longer.
    t1 = t0 + first_delay + timedelta(seconds=1)
    with pytest.raises(AuthError):
        accounts.authenticate(rt, "alice", "wrong-password", now=t1)
    second_delay = accounts.get_user(rt, "alice").locked_until - t1
    assert timedelta(0) < first_delay < second_delay <= accounts.MAX_DELAY
    # After the delay the right password works and resets the counter.
    t2 = t1 + second_delay + timedelta(seconds=1)
    assert accounts.authenticate(rt, "alice", PASSWORD, now=t2).id == alice.id
    assert accounts.get_user(rt, "alice").failed_logins == 0


def test_disabled_user_cannot_sign_in_or_use_a_session(rt, alice):
    token = accounts.create_session(rt, alice)
    accounts.set_disabled(rt, Actor.operator(), "alice", True)
    with pytest.raises(AuthError):
        accounts.authenticate(rt, "alice", PASSWORD)
    assert accounts.session_status(rt, token)[0] is None
    accounts.set_disabled(rt, Actor.operator(), "alice", False)
    assert accounts.session_status(rt, token)[0] is None  # ended, not paused: enabling does not revive it
    assert accounts.session_status(rt, token) == (None, None)  # nothing to tell a tab from before
    assert accounts.session_status(rt, accounts.create_session(rt, alice))[0].id == alice.id


def test_sessions_expire_revoke_and_end_on_password_change(rt, alice):
    token = accounts.create_session(rt, alice)
    assert accounts.session_status(rt, token)[0].username == "alice"
    assert accounts.session_status(rt, "forged-token")[0] is None
    assert accounts.session_status(rt, token, now=utcnow() + accounts.SESSION_TTL + timedelta(1))[0] is None
    accounts.revoke_session(rt, token)
    assert accounts.session_status(rt, token)[0] is None
    other = accounts.create_session(rt, alice)
    accounts.change_own_password(rt, Actor.of(alice), PASSWORD, "a brand new password")
    assert accounts.session_status(rt, other)[0] is None
    with pytest.raises(AuthError):
        accounts.authenticate(rt, "alice", PASSWORD)
    assert accounts.authenticate(rt, "alice", "a brand new password").id == alice.id
    with pytest.raises(AuthError, match="current password"):
        accounts.change_own_password(rt, Actor.of(alice), "wrong", "another new password")


def test_session_tokens_are_stored_hashed(rt, alice):
    token = accounts.create_session(rt, alice)
    with rt.engine.connect() as conn:
        stored = [r[0] for r in conn.exec_driver_sql("SELECT token_hash FROM auth_sessions")]
    assert token not in stored and len(stored) == 1 and len(stored[0]) == 64


@pytest.mark.parametrize("name, password, message", [
    ("", PASSWORD, "Usernames"), ("bad name", PASSWORD, "Usernames"), ("x" * 65, PASSWORD, "Usernames"),
    ("carol", "short", "at least 8"),
])
def test_account_validation(rt, name, password, message):
    with pytest.raises(ValidationError, match=message):
        accounts.create_user(rt, Actor.operator(), name, password)


def test_duplicate_username_is_refused(rt, alice):
    with pytest.raises(ValidationError, match="taken"):
        accounts.create_user(rt, Actor.operator(), "alice", "another password")


def test_first_run_setup_code_is_one_time(rt):
    other_replica_code = accounts.issue_setup_code(rt)
    code = accounts.issue_setup_code(rt)
    with pytest.raises(AuthError, match="setup code"):
        accounts.claim_first_admin(rt, "000-000-000", "admin", PASSWORD)
    admin = accounts.claim_first_admin(rt, f"  {code.upper()} ", "admin", PASSWORD)
    assert admin.role == Role.ADMIN
    with pytest.raises(AuthError):
        accounts.claim_first_admin(rt, code, "second", PASSWORD)
    with pytest.raises(AuthError):  # every printed code is used up once an admin exists
        accounts.claim_first_admin(rt, other_replica_code, "third", PASSWORD)
    assert accounts.issue_setup_code(rt) is None  # users exist: no more codes


# --- usernames in any capitals or width, renames, why a session ended ---------------------------


@pytest.mark.parametrize("typed", ["alice", "ALICE", "Alice", " alice ", wide("alice"), wide("ALICE")])
def test_a_username_in_any_capitals_or_width_is_one_account(rt, alice, typed):
    assert accounts.authenticate(rt, typed, PASSWORD).id == alice.id
    assert accounts.get_user(rt, typed).id == alice.id
    with pytest.raises(ValidationError, match="taken"):
        accounts.create_user(rt, Actor.operator(), typed, PASSWORD)


def test_a_name_is_stored_as_typed_in_plain_letters(rt):
    made = accounts.create_user(rt, Actor.operator(), wide("Carol.K"), PASSWORD)  # full width in, plain letters stored
    assert (made.username, made.username_key) == ("Carol.K", "carol.k")
    assert [u.username for u in accounts.list_users(rt)] == ["Carol.K"]
    accounts.set_disabled(rt, Actor.operator(), "CAROL.K", True)  # every lookup by name ignores capitals
    assert accounts.get_user(rt, "carol.k").disabled


def test_a_rename_keeps_the_account_and_frees_the_old_name(rt, alice):
    token = accounts.create_session(rt, alice)
    renamed = accounts.rename_user(rt, Actor.operator(), "ALICE", "Alicia")
    assert (renamed.id, renamed.username) == (alice.id, "Alicia")
    assert accounts.session_status(rt, token)[0].username == "Alicia"  # still signed in
    assert accounts.authenticate(rt, "alicia", PASSWORD).id == alice.id
    assert accounts.find_user(rt, "alice") is None
    accounts.create_user(rt, Actor.operator(), "alice", "another password")  # the old name is free again
    with pytest.raises(ValidationError, match="taken"):
        accounts.rename_user(rt, Actor.operator(), "Alicia", "ALICE")
    with pytest.raises(ValidationError, match="Usernames are"):
        accounts.rename_user(rt, Actor.operator(), "Alicia", "not valid")
    accounts.rename_user(rt, Actor.operator(), "alicia", "ALICIA")  # only the capitals change: its own name
    assert accounts.get_user(rt, "alicia").username == "ALICIA"


def test_a_session_that_ended_says_why(rt, alice):
    live = accounts.create_session(rt, alice)
    assert accounts.session_status(rt, live)[0].id == alice.id
    assert accounts.session_status(rt, "never-issued") == (None, None)
    assert accounts.session_status(rt, live, now=utcnow() + accounts.SESSION_TTL + timedelta(1)) == (
        None, accounts.SessionEnd.EXPIRED)
    accounts.revoke_session(rt, live)
    assert accounts.session_status(rt, live) == (None, accounts.SessionEnd.SIGNED_OUT)
    changed = accounts.create_session(rt, alice)
    accounts.set_password(rt, Actor.operator(), "alice", "a brand new password")
    assert accounts.session_status(rt, changed) == (None, accounts.SessionEnd.PASSWORD_CHANGED)
    current = accounts.create_session(rt, accounts.get_user(rt, "alice"))
    accounts.set_disabled(rt, Actor.operator(), "alice", True)
    assert accounts.session_status(rt, current) == (None, accounts.SessionEnd.DISABLED)
    assert all(text.count(";") == 1 and text.endswith(".") for text in accounts.SESSION_ENDED.values())
