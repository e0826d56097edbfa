"""Local accounts: Argon2id passwords, throttled sign-in, server-side sessions, first-run setup."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from byok_core import audit
from byok_core.accounts.passwords import hash_password, needs_rehash, validate_password, verify, verify_dummy
from byok_core.accounts.sessions import (
    LOGIN_TICKET_TTL,
    SESSION_ENDED,
    SESSION_TTL,
    SessionEnd,
    create_session,
    delete_tickets,
    end_sessions,
    forget_sessions,
    hash_token,
    issue_login_ticket,
    redeem_login_ticket,
    revoke_session,
    session_bound_to,
    session_status,
)
from byok_core.accounts.sso import OidcRoles, apply_oidc_role
from byok_core.audit import AuditAction
from byok_core.clock import utcnow
from byok_core.errors import AuthError, NotFoundError, PermissionDenied, ValidationError
from byok_core.identity import Actor, Role
from byok_core.models import AppSetting, User, rowcount, saved_id
from byok_core.runtime import Runtime

__all__ = [  # what the callers use, whichever module of the package holds it
    "ACCOUNT_DISABLED", "FREE_ATTEMPTS", "LOGIN_TICKET_TTL", "MAX_DELAY", "SESSION_ENDED", "SESSION_TTL",
    "SIGN_IN_FAILED", "USERNAME_RULES", "NameClash", "OidcRoles", "SessionEnd", "apply_oidc_role", "authenticate",
    "change_own_password", "claim_first_admin", "create_session", "create_user", "find_user", "get_user",
    "has_users", "issue_login_ticket", "issue_setup_code", "list_users", "name_clashes", "redeem_login_ticket",
    "rename_user", "revoke_session", "session_bound_to", "session_status", "set_disabled", "set_password",
    "set_role",
]

SIGN_IN_FAILED = ("Sign-in failed: wrong username or password (after several failed tries, wait a few seconds "
                  "before the next one).")
# Said only after the right password, so it tells nobody which accounts exist.
ACCOUNT_DISABLED = "Your account is disabled; ask an admin to enable it."
USERNAME_RULES = ("Usernames are 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit; "
                  "capitals do not make a different name.")
FREE_ATTEMPTS = 3  # failures before delays start
VERIFY_LEASE = timedelta(seconds=30)  # an attempt that starts the delays holds the lock while it is checked
MAX_DELAY = timedelta(minutes=15)
SETUP_CODE_PREFIX = "setup_code."  # one row per code printed (each replica prints its own)
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def _typed(name: str | None) -> str:
    """A name as typed, the way it is stored: NFKC (full-width letters become plain ones), trimmed."""
    return unicodedata.normalize("NFKC", name or "").strip()


def username_key(name: str) -> str:
    """What tells usernames apart: ``bob``, ``BOB`` and full-width ``bob`` have one key (User.key_of)."""
    return User.key_of(_typed(name))


def validate_username(name: str) -> str:
    """The username to store (NFKC, trimmed; its capitals kept for display), or ValidationError."""
    name = _typed(name)
    if not _USERNAME.match(name):
        raise ValidationError(USERNAME_RULES)
    return name


def _find(session: Session, name: str | None) -> User | None:
    """The account a typed name means: the one spelled exactly so, else the one whose key it has.

    Without collisions from before migration 0007 both are the same account. With them, each
    colliding account keeps its exact spelling and any other spelling reaches the oldest (which
    holds the plain key). A later one's ``<key>#<id>`` is never matched by a typed name."""
    typed = _typed(name)
    key = User.key_of(typed)
    if not typed or "#" in key or any(unicodedata.category(c) == "Cc" for c in typed):
        return None  # no account has such a name; PostgreSQL cannot even be asked about a NUL
    rows = session.exec(select(User).where(sa.or_(col(User.username) == typed, col(User.username_key) == key))).all()
    return next((u for u in rows if u.username == typed), rows[0] if rows else None)


def _taken(name: str) -> ValidationError:
    return ValidationError(f"The username {name!r} is taken (capitals do not make a different name); "
                           "choose another.")


def create_user(rt: Runtime, actor: Actor, username: str, password: str, role: Role = Role.MEMBER) -> User:
    """A new account. Admins only (the CLI acts as ``Actor.operator()``)."""
    actor.check_admin("create accounts")
    username = validate_username(username)
    user = User(username=username, username_key=User.key_of(username),
                password_hash=hash_password(validate_password(password)), role=Role(role))
    try:
        with Session(rt.engine, expire_on_commit=False) as session, session.begin():
            session.add(user)
            session.flush()
            audit.record(session, actor.name, AuditAction.USER_CREATE,
                         audit.Target(username=username, role=user.role))
    except IntegrityError:  # the same name in other capitals or width, even from a parallel request
        raise _taken(username) from None
    return user


def list_users(rt: Runtime) -> list[User]:
    with Session(rt.engine) as session:
        return list(session.exec(select(User).order_by(col(User.username_key), col(User.id))))


def find_user(rt: Runtime, username: str | None) -> User | None:
    """The account ``username`` means in any capitals or width (see ``_find``), or None."""
    with Session(rt.engine) as session:
        return _find(session, username)


def get_user(rt: Runtime, username: str) -> User:
    user = find_user(rt, username)
    if user is None:
        raise NotFoundError(f"No user named {_typed(username)!r}; check the spelling (byok users list shows them).")
    return user


_Ends = Callable[[Session, int], None]  # the sign-ins a change ends, in its own transaction


def _update_user(rt: Runtime, actor: Actor, username: str, action: AuditAction, *,
                 ends: _Ends | None = None, not_self: str = "", **values: Any) -> None:
    """Change ``username``'s row and audit it; ``ends`` runs in the same transaction, so nothing
    issued before the change survives it. ``not_self``: what an admin may not do to themselves."""
    with Session(rt.engine) as session, session.begin():
        user = _find(session, username)
        if user is not None and not_self and user.id == actor.user_id:
            raise PermissionDenied(f"You cannot {not_self} yourself; ask another admin.")
        changed = user is not None and rowcount(session.execute(
            sa.update(User).where(col(User.id) == user.id).values(**values)))
        if user is None or not changed:
            raise NotFoundError(f"No user named {_typed(username)!r}; check the spelling.")
        if ends is not None:
            ends(session, saved_id(user.id))
        audit.record(session, actor.name, action, audit.Target(username=user.username, role=values.get("role")))


def rename_user(rt: Runtime, actor: Actor, username: str, new_name: str) -> User:
    """Give an account another name (its keys, conversations, usage and sessions stay with it). Admins only.

    A new name that differs from another account's only in capitals or width is refused. When
    the renamed account held a name that others from before migration 0007 collided with, the
    oldest of them takes the plain key: it is then reached by every spelling."""
    actor.check_admin("rename accounts")
    new_name = validate_username(new_name)
    try:
        with Session(rt.engine, expire_on_commit=False) as session, session.begin():
            user = _find(session, username)
            if user is None:
                raise NotFoundError(f"No user named {_typed(username)!r}; check the spelling.")
            old_name, old_key = user.username, user.username_key or ""
            if new_name == old_name:
                return user
            user.username, user.username_key = new_name, User.key_of(new_name)
            session.flush()  # IntegrityError here: the name is another account's
            if "#" not in old_key and old_key != user.username_key:
                _promote_oldest_clash(session, old_key)
            audit.record(session, actor.name, AuditAction.USER_RENAME, audit.Target(username=new_name),
                         detail=old_name)
    except IntegrityError:
        raise _taken(new_name) from None
    return user


def _promote_oldest_clash(session: Session, key: str) -> None:
    """``key`` was just freed: the oldest account parked at ``<key>#<id>`` gets it."""
    parked = session.exec(select(User).where(col(User.username_key).startswith(key + "#", autoescape=True))
                          .order_by(col(User.id))).all()
    heir = next((u for u in parked if User.key_of(u.username) == key), None)
    if heir is not None:
        heir.username_key = key
        session.flush()


@dataclass(frozen=True)
class NameClash:
    """Accounts from before usernames ignored capitals whose names are now one name, oldest first.
    Each signs in with its exact spelling; other spellings reach the first."""

    usernames: tuple[str, ...]

    def sentence(self, how: str = "") -> str:
        """One sentence for an admin; ``how`` says where to rename (" with `byok users rename`")."""
        names = [repr(n) for n in self.usernames]
        listed = ", ".join(names[:-1]) + " and " + names[-1]
        return (f"The usernames {listed} now count as one name, so rename all but one of them{how} (until then "
                f"each signs in with its exact spelling, and any other spelling signs in to {self.usernames[0]!r}).")


def name_clashes(rt: Runtime) -> list[NameClash]:
    """Accounts whose names collide (only possible for accounts made before migration 0007)."""
    with Session(rt.engine) as session:
        parked = session.exec(select(User).where(col(User.username_key).contains("#"))).all()
        if not parked:
            return []
        keys = {User.key_of(u.username) for u in parked}
        holders = session.exec(select(User).where(col(User.username_key).in_(keys))).all()
    groups: dict[str, list[User]] = {}
    for user in [*holders, *parked]:
        groups.setdefault(User.key_of(user.username), []).append(user)
    return [NameClash(tuple(u.username for u in sorted(users, key=lambda u: (u.username_key != key, u.id or 0))))
            for key, users in sorted(groups.items()) if len(users) > 1]


def set_disabled(rt: Runtime, actor: Actor, username: str, disabled: bool) -> None:
    """Disable or enable an account; admins only, and not their own. Disabling ends every session
    and sign-in ticket for good: enabling again deletes those sessions, it never revives them."""
    actor.check_admin("disable or enable accounts")
    action = AuditAction.USER_DISABLE if disabled else AuditAction.USER_ENABLE
    _update_user(rt, actor, username, action, ends=end_sessions if disabled else forget_sessions,
                 not_self="disable or enable", disabled=disabled)


def set_role(rt: Runtime, actor: Actor, username: str, role: Role) -> None:
    """Make an account an admin or a member; admins only, and not their own."""
    actor.check_admin("change roles")
    _update_user(rt, actor, username, AuditAction.USER_ROLE, not_self="change the role of", role=Role(role))


def set_password(rt: Runtime, actor: Actor, username: str, new_password: str) -> None:
    """An admin's reset of someone's password (``change_own_password`` is a member's own)."""
    actor.check_admin("reset passwords")
    _set_password(rt, actor, username, new_password)


def _set_password(rt: Runtime, actor: Actor, username: str, new_password: str) -> None:
    """Every session and outstanding sign-in ticket of the user ends."""
    digest = hash_password(validate_password(new_password))
    _update_user(rt, actor, username, AuditAction.USER_PASSWORD, password_hash=digest, password_changed_at=utcnow(),
                 failed_logins=0, locked_until=None, ends=delete_tickets)


def change_own_password(rt: Runtime, actor: Actor, old_password: str, new_password: str) -> None:
    """The signed-in ``actor`` changes their own password, given the current one."""
    with Session(rt.engine) as session:
        user = None if actor.user_id is None else session.get(User, actor.user_id)
    if user is None:
        raise PermissionDenied("Only a signed-in user can change their own password.")
    if not verify(user.password_hash, old_password):
        raise AuthError("The current password is wrong.")
    _set_password(rt, actor, user.username, new_password)


def _delay_after(failures: int) -> timedelta:
    """0 for the first FREE_ATTEMPTS failures, then 2, 4, 8, ... seconds, capped at MAX_DELAY."""
    if failures < FREE_ATTEMPTS:
        return timedelta(0)
    return min(timedelta(seconds=2 ** (failures - FREE_ATTEMPTS + 1)), MAX_DELAY)


def authenticate(rt: Runtime, username: str, password: str, now: datetime | None = None) -> User:
    """The user, or AuthError with one message for unknown user, wrong password or throttled; a
    disabled account is told so (ACCOUNT_DISABLED), but only after its right password.

    ``username`` in any capitals or width (``_find``).

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
            user = _find(session, username)
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


# --- first-run setup ----------------------------------------------------------------------


def has_users(rt: Runtime) -> bool:
    with Session(rt.engine) as session:
        return session.exec(select(User.id).limit(1)).first() is not None


def issue_setup_code(rt: Runtime) -> str | None:
    """With no users yet: a new one-time setup code (its hash stored) for the console; else None."""
    if has_users(rt):
        return None
    code = "-".join(secrets.token_hex(3) for _ in range(3))
    with Session(rt.engine) as session, session.begin():
        digest = hash_token(code)
        session.add(AppSetting(name=SETUP_CODE_PREFIX + digest[:32], value=digest))
    return code


def claim_first_admin(rt: Runtime, code: str, username: str, password: str) -> User:
    """Create the first admin if ``code`` matches the printed setup code and no user exists yet.

    The code is consumed in the same transaction, so two racing claims cannot both succeed."""
    username, password = validate_username(username), validate_password(password)
    user = User(username=username, username_key=User.key_of(username), password_hash=hash_password(password),
                role=Role.ADMIN)
    with Session(rt.engine, expire_on_commit=False) as session, session.begin():
        digest = hash_token((code or "").strip().lower())
        consumed = rowcount(session.execute(sa.delete(AppSetting).where(
            col(AppSetting.name) == SETUP_CODE_PREFIX + digest[:32], col(AppSetting.value) == digest,
        )))
        if not consumed or session.exec(select(User.id).limit(1)).first() is not None:
            raise AuthError("That setup code is not valid. Use the code printed in the server's console.")
        session.add(user)
        session.flush()
        session.execute(sa.delete(AppSetting).where(col(AppSetting.name).startswith(SETUP_CODE_PREFIX)))
        audit.record(session, "setup", AuditAction.USER_CREATE, audit.Target(username=username, role=Role.ADMIN),
                     detail="first-run setup")
    return user
