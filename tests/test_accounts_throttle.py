"""Sign-in throttling holds under parallel guesses, and password change / disable revoke
outstanding sign-in tickets. Run on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from byok_core import accounts
from byok_core.accounts import passwords, sessions
from byok_core.clock import utcnow
from byok_core.errors import AuthError
from byok_core.identity import Actor
from byok_core.models import LoginTicket

PASSWORD = "correct horse battery"
PARALLEL = 24

pytestmark = pytest.mark.real_password_hashing  # the product's Argon2 parameters and timing


@pytest.fixture
def alice(rt):
    return accounts.create_user(rt, Actor.operator(), "alice", PASSWORD)


@pytest.fixture
def verified(monkeypatch):
    """Counts the real Argon2 verifications per stored hash (the real check still decides)."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    real_verify = PasswordHasher.verify

    def counting_verify(self, digest, password):
        with lock:
            counts[digest] += 1
        return real_verify(self, digest, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    return counts


def _guess_in_parallel(rt, username: str, passwords: list[str], now) -> list[BaseException | None]:
    """Every password tried at once from its own thread (a barrier releases them together)."""
    barrier = threading.Barrier(len(passwords))

    def attempt(password: str) -> BaseException | None:
        barrier.wait()
        try:
            accounts.authenticate(rt, username, password, now=now)
        except Exception as exc:
            return exc
        return None

    with ThreadPoolExecutor(len(passwords)) as pool:
        return list(pool.map(attempt, passwords))


def test_parallel_wrong_passwords_verify_at_most_the_free_attempts(rt, alice, verified):
    t0 = utcnow()  # one instant for every attempt: no delay can have passed between them
    outcomes = _guess_in_parallel(rt, "alice", [f"wrong guess {i}" for i in range(PARALLEL)], t0)

    assert all(isinstance(o, AuthError) and str(o) == accounts.SIGN_IN_FAILED for o in outcomes), outcomes
    # One at a time, FREE_ATTEMPTS guesses are checked before the first delay; in parallel no more.
    assert verified[alice.password_hash] <= accounts.FREE_ATTEMPTS
    assert verified[alice.password_hash] >= 1
    stored = accounts.get_user(rt, "alice")
    assert stored.failed_logins == verified[alice.password_hash]
    assert stored.locked_until > t0

    # Locked: the right password is refused too, without verifying anything.
    before = verified[alice.password_hash]
    with pytest.raises(AuthError, match="Sign-in failed"):
        accounts.authenticate(rt, "alice", PASSWORD, now=t0 + timedelta(seconds=1))
    assert verified[alice.password_hash] == before

    # After the delay the right password works and resets the counter; it keeps working.
    later = stored.locked_until + timedelta(seconds=1)
    assert accounts.authenticate(rt, "alice", PASSWORD, now=later).id == alice.id
    assert accounts.get_user(rt, "alice").failed_logins == 0
    assert accounts.get_user(rt, "alice").locked_until is None
    assert accounts.authenticate(rt, "alice", PASSWORD, now=later).id == alice.id


def test_parallel_right_and_wrong_passwords_never_exceed_the_free_attempts(rt, alice, verified):
    # A correct password among the guesses may succeed (it resets the counter), but it gives the
    # guesses no extra verifications beyond one more round of free attempts.
    t0 = utcnow()
    passwords = [PASSWORD] + [f"wrong guess {i}" for i in range(PARALLEL - 1)]
    outcomes = _guess_in_parallel(rt, "alice", passwords, t0)
    assert all(o is None or (isinstance(o, AuthError) and str(o) == accounts.SIGN_IN_FAILED) for o in outcomes)
    assert verified[alice.password_hash] <= 2 * accounts.FREE_ATTEMPTS


def test_unknown_user_gets_the_same_answer_and_a_dummy_verification(rt, alice, verified):
    with pytest.raises(AuthError) as unknown:
        accounts.authenticate(rt, "mallory", "some password")
    assert str(unknown.value) == accounts.SIGN_IN_FAILED
    assert verified[passwords.DUMMY_HASH] == 1 and verified[alice.password_hash] == 0


def test_a_disabled_account_is_told_so_only_after_its_right_password(rt, alice, verified):
    accounts.set_disabled(rt, Actor.operator(), "alice", True)
    with pytest.raises(AuthError) as wrong:  # a guesser learns nothing: the usual answer, counted
        accounts.authenticate(rt, "alice", "wrong password")
    assert str(wrong.value) == accounts.SIGN_IN_FAILED
    assert accounts.get_user(rt, "alice").failed_logins == 1
    with pytest.raises(AuthError) as right:  # its owner is told what to do
        accounts.authenticate(rt, "ALICE", PASSWORD)
    assert str(right.value) == accounts.ACCOUNT_DISABLED
    assert accounts.get_user(rt, "alice").failed_logins == 0  # the right password resets the count
    assert verified[alice.password_hash] == 2


def test_a_disabled_and_locked_account_says_nothing_even_to_the_right_password(rt, alice, verified):
    t0 = utcnow()
    for _ in range(accounts.FREE_ATTEMPTS):
        with pytest.raises(AuthError):
            accounts.authenticate(rt, "alice", "wrong password", now=t0)
    accounts.set_disabled(rt, Actor.operator(), "alice", True)
    before = verified[alice.password_hash]
    with pytest.raises(AuthError) as locked:
        accounts.authenticate(rt, "alice", PASSWORD, now=t0)
    assert str(locked.value) == accounts.SIGN_IN_FAILED and verified[alice.password_hash] == before


def test_delays_keep_the_documented_schedule(rt, alice):
    # After FREE_ATTEMPTS failures each attempt waits 2, 4, 8, ... seconds, up to MAX_DELAY.
    now = utcnow()
    delays = []
    for _ in range(accounts.FREE_ATTEMPTS + 12):
        with pytest.raises(AuthError):
            accounts.authenticate(rt, "alice", "wrong-password", now=now)
        locked_until = accounts.get_user(rt, "alice").locked_until
        delays.append((locked_until - now).total_seconds())
        now = max(now, locked_until)
    assert delays[:accounts.FREE_ATTEMPTS - 1] == [0] * (accounts.FREE_ATTEMPTS - 1)
    # from the end of each check (which itself takes well under a second)
    schedule = delays[accounts.FREE_ATTEMPTS - 1:accounts.FREE_ATTEMPTS + 3]
    assert [int(d) for d in schedule] == [2, 4, 8, 16] and all(d - int(d) < 1 for d in schedule)
    assert int(delays[-1]) == accounts.MAX_DELAY.total_seconds()


# --- sign-in tickets and password change / disable --------------------------------------------


@pytest.mark.parametrize("change", ["set_password", "change_own_password", "set_disabled"])
def test_password_change_or_disable_revokes_outstanding_tickets(rt, alice, change):
    ticket = accounts.issue_login_ticket(rt, alice)
    if change == "set_password":
        accounts.set_password(rt, Actor.operator(), "alice", "a brand new password")
    elif change == "change_own_password":
        accounts.change_own_password(rt, Actor.of(alice), PASSWORD, "a brand new password")
    else:
        accounts.set_disabled(rt, Actor.operator(), "alice", True)
        accounts.set_disabled(rt, Actor.operator(), "alice", False)  # even re-enabled, the old ticket is gone
    with rt.engine.connect() as conn:  # deleted in the change's own transaction
        assert conn.exec_driver_sql("SELECT count(*) FROM login_tickets").scalar() == 0
    assert accounts.redeem_login_ticket(rt, ticket, "b" * 43) is None
    # A ticket issued after the change (to the current user) works.
    fresh = accounts.issue_login_ticket(rt, accounts.get_user(rt, "alice"))
    assert accounts.session_status(rt, accounts.redeem_login_ticket(rt, fresh, "b" * 43))[0].id == alice.id


def test_ticket_issued_before_a_password_change_is_refused_even_if_not_deleted(rt, alice):
    # Second line: a ticket row issued 5 s before the change is still there (as if a replica's
    # insert had raced the change's delete); it is live, but it predates password_changed_at.
    t_issue = utcnow() - timedelta(seconds=5)
    accounts.set_password(rt, Actor.operator(), "alice", "a brand new password")
    ticket = "t" * 43
    with rt.engine.begin() as conn:
        conn.execute(LoginTicket.__table__.insert().values(
            ticket_hash=sessions.hash_token(ticket), user_id=alice.id,
            expires_at=t_issue + accounts.LOGIN_TICKET_TTL))
    assert accounts.redeem_login_ticket(rt, ticket, "b" * 43) is None


def test_ticket_for_a_sign_in_that_a_password_change_overtook_does_not_redeem(rt, alice):
    # Signed in with the old password; the password changes before the ticket is issued.
    signed_in = accounts.authenticate(rt, "alice", PASSWORD)
    accounts.set_password(rt, Actor.operator(), "alice", "a brand new password")
    assert accounts.redeem_login_ticket(rt, accounts.issue_login_ticket(rt, signed_in), "b" * 43) is None


def test_guesses_that_arrive_while_earlier_ones_are_still_checked_wait_for_them(rt, alice, monkeypatch):
    """A busy machine: the first guesses' Argon2 checks take longer than the first delay, and more
    guesses keep arriving meanwhile (later clocks). None of them is checked before the delay has run
    from the end of the check that started it."""
    checks: list[str] = []
    in_flight = threading.Semaphore(0)
    release = threading.Event()
    real_verify = PasswordHasher.verify

    def slow_verify(self, digest, password):
        checks.append(password)
        if len(checks) <= accounts.FREE_ATTEMPTS:  # the first guesses: still being checked
            in_flight.release()
            release.wait(30)
        return real_verify(self, digest, password)

    monkeypatch.setattr(PasswordHasher, "verify", slow_verify)
    t0 = utcnow()
    with ThreadPoolExecutor(accounts.FREE_ATTEMPTS) as pool:
        first = [pool.submit(accounts.authenticate, rt, "alice", f"first guess {i}", t0)
                 for i in range(accounts.FREE_ATTEMPTS)]
        for _ in first:
            assert in_flight.acquire(timeout=30)
        for i in range(1, PARALLEL):  # each arriving later than the first delay (2 s) would have ended
            with pytest.raises(AuthError, match="Sign-in failed"):
                accounts.authenticate(rt, "alice", f"later guess {i}", now=t0 + timedelta(seconds=2 + i))
        release.set()
        for future in first:
            with pytest.raises(AuthError):
                future.result()
    assert len(checks) == accounts.FREE_ATTEMPTS and not any(c.startswith("later") for c in checks)
    stored = accounts.get_user(rt, "alice")
    assert stored.failed_logins == accounts.FREE_ATTEMPTS and stored.locked_until > utcnow()


@pytest.mark.parametrize("typed", ["alice\x00", "\x00", "al\x00ice", "al ice"])
def test_a_name_no_account_can_have_fails_like_an_unknown_one(rt, alice, verified, typed):
    """A NUL in the name made PostgreSQL fail the lookup ("Something went wrong on the server")."""
    with pytest.raises(AuthError) as refused:
        accounts.authenticate(rt, typed, PASSWORD)
    assert str(refused.value) == accounts.SIGN_IN_FAILED and verified[passwords.DUMMY_HASH] == 1
    assert accounts.find_user(rt, typed) is None
