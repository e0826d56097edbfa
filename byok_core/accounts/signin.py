"""Sign-in: checking a password, with growing delays after failed tries that hold under parallel guesses."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from byok_core import audit
from byok_core.accounts.passwords import hash_password, needs_rehash, verify, verify_dummy
from byok_core.accounts.users import account_named
from byok_core.audit import AuditAction
from byok_core.clock import utcnow
from byok_core.errors import AuthError
from byok_core.models import User, rowcount
from byok_core.runtime import Runtime

SIGN_IN_FAILED = ("Sign-in failed: wrong username or password (after several failed tries, wait a few seconds "
                  "before the next one).")
# Said only after the right password, so it tells nobody which accounts exist.
ACCOUNT_DISABLED = "Your account is disabled; ask an admin to enable it."
FREE_ATTEMPTS = 3  # failures before delays start
VERIFY_LEASE = timedelta(seconds=30)  # an attempt that starts the delays holds the lock while it is checked
MAX_DELAY = timedelta(minutes=15)


def _delay_after(failures: int) -> timedelta:
    """0 for the first FREE_ATTEMPTS failures, then 2, 4, 8, ... seconds, capped at MAX_DELAY."""
    if failures < FREE_ATTEMPTS:
        return timedelta(0)
    return min(timedelta(seconds=2 ** (failures - FREE_ATTEMPTS + 1)), MAX_DELAY)


def authenticate(rt: Runtime, username: str, password: str, now: datetime | None = None) -> User:
    """The user, or AuthError with one message for unknown user, wrong password or throttled; a
    disabled account is told so (ACCOUNT_DISABLED), but only after its right password.

    ``username`` in any capitals or width (``account_named``).

    Each attempt is counted as a failure *before* the password is checked, by one conditional
    UPDATE that succeeds only while the account is not locked (``_claim_attempt``); a success then
    resets the counter. So parallel guesses cannot outrun the throttle: with no time passing, at
    most FREE_ATTEMPTS passwords are verified, however many requests arrive together."""
    now = now or utcnow()
    user = _claim_attempt(rt, username, password, now)
    if user is None:
        raise AuthError(SIGN_IN_FAILED)
    if not verify(user.password_hash, password):
        if user.failed_logins >= FREE_ATTEMPTS:
            with Session(rt.engine) as session, session.begin():
                # the delay runs from now, when the check ended (unless a newer attempt was counted since)
                session.execute(sa.update(User).where(col(User.id) == user.id,
                                                      col(User.failed_logins) == user.failed_logins)
                                .values(locked_until=max(now, utcnow()) + _delay_after(user.failed_logins)))
                if user.failed_logins == FREE_ATTEMPTS:
                    audit.record(session, "system", AuditAction.USER_THROTTLED, audit.Target(username=user.username),
                                 detail=f"{user.failed_logins} failed tries")
        raise AuthError(SIGN_IN_FAILED)
    values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
    if needs_rehash(user.password_hash):
        values["password_hash"] = hash_password(password)
    with Session(rt.engine) as session, session.begin():
        # Only while the password just checked is still the stored one. The update comes first, so
        # the row is locked (SQLite: the database) and ``disabled`` read below cannot go stale.
        reset = rowcount(session.execute(sa.update(User).where(
            col(User.id) == user.id, col(User.password_hash) == user.password_hash).values(**values)))
        disabled = session.execute(select(User.disabled).where(col(User.id) == user.id)).scalar()
    if not reset:
        raise AuthError(SIGN_IN_FAILED)
    if disabled:  # the right password: telling its owner reveals nothing a guesser could use
        raise AuthError(ACCOUNT_DISABLED)
    user.failed_logins, user.locked_until = 0, None
    user.password_hash = values.get("password_hash", user.password_hash)
    return user


_CLAIM_TRIES = 8


def _claim_attempt(rt: Runtime, username: str, password: str, now: datetime) -> User | None:
    """Count one sign-in attempt as a failure unless the account is locked. Returns the user (with
    the new count) to verify the password against, or None: unknown user (after a dummy
    verification, so the timing matches a wrong password) or locked account.

    The count and the next lock are written by a compare-and-set UPDATE (``failed_logins`` still
    what was read, ``locked_until`` past) and committed before the slow Argon2 check, so of several
    concurrent attempts only one takes each free attempt, on SQLite and PostgreSQL alike; the
    attempt that starts the delays locks the account until its own check has ended (``authenticate``
    then sets the delay from that moment), however long the check takes. Each
    statement runs in its own short transaction: no lock is held while hashing, and SQLite never
    has to upgrade a read transaction to a write one."""
    for _ in range(_CLAIM_TRIES):
        with Session(rt.engine, expire_on_commit=False) as session:
            user = account_named(session, username)
        if user is None:
            verify_dummy(password)
            return None
        if user.locked_until is not None and user.locked_until > now:
            return None
        failures = user.failed_logins + 1
        # From the attempt that starts the delays on, the lock also covers its own check: on a busy
        # machine Argon2 can take longer than the delay, and later guesses must wait for its end.
        locked_until = now + _delay_after(failures) + (VERIFY_LEASE if failures >= FREE_ATTEMPTS else timedelta(0))
        with rt.engine.begin() as conn:
            claimed = conn.execute(sa.update(User).where(
                col(User.id) == user.id, col(User.failed_logins) == user.failed_logins,
                sa.or_(col(User.locked_until).is_(None), col(User.locked_until) <= now),
            ).values(failed_logins=failures, locked_until=locked_until)).rowcount
        if claimed:
            user.failed_logins, user.locked_until = failures, locked_until
            return user
        # Another attempt changed the row between our read and our update: read it again.
    return None  # the account is being hammered: treat this attempt as throttled
