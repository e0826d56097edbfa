"""Sessions: the cookie's server-side session (bound to the browser that signed in), the one-time
ticket a browser swaps for it, why a session ended, and ending an account's sessions."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, col, select

from byok_core.clock import utcnow
from byok_core.models import AuthSession, LoginTicket, User, rowcount, saved_id
from byok_core.runtime import Runtime

SESSION_TTL = timedelta(days=14)
LOGIN_TICKET_TTL = timedelta(seconds=60)
_BINDING = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 random bytes, base64url, as the page makes it
# Built once (every page run asks, by the token's hash): a session's browser, and its account.
_BINDING_OF = select(AuthSession.binding_hash).where(col(AuthSession.token_hash) == sa.bindparam("token_hash"))
_SIGNED_IN = select(User, AuthSession).join(AuthSession, col(AuthSession.user_id) == col(User.id)).where(
    col(AuthSession.token_hash) == sa.bindparam("token_hash"))


def hash_token(token: str) -> str:
    """What is stored of a token or code: its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def _add_session(session: Session, user_id: int, expires_at: datetime, binding: str | None = None) -> str:
    token = secrets.token_urlsafe(32)
    session.add(AuthSession(token_hash=hash_token(token), user_id=user_id, expires_at=expires_at,
                            binding_hash=None if binding is None else hash_token(binding)))
    return token


def valid_binding(binding: object) -> bool:
    """A browser's binding secret as its page makes it (random, URL-safe base64, 43 characters)."""
    return isinstance(binding, str) and bool(_BINDING.fullmatch(binding))


def create_session(rt: Runtime, user: User, ttl: timedelta = SESSION_TTL, *, binding: str | None = None) -> str:
    """A new random session token; only its SHA-256 is stored. ``binding``: the secret of the
    browser that will carry it as a cookie (``session_bound_to``); None for a tab's own session."""
    with Session(rt.engine) as session, session.begin():
        return _add_session(session, saved_id(user.id), utcnow() + ttl, binding)


def session_bound_to(rt: Runtime, token: str, binding: object) -> bool:
    """Whether the cookie session ``token`` was started by the browser whose page holds ``binding``
    (kept in that origin's localStorage, which a page on another port cannot read or write). A
    cookie planted from elsewhere carries a session bound to another browser, or to none."""
    if not valid_binding(binding):
        return False
    with Session(rt.engine) as session:
        stored = session.execute(_BINDING_OF, {"token_hash": hash_token(token)}).scalar()
    return stored is not None and hmac.compare_digest(stored, hash_token(str(binding)))


def issue_login_ticket(rt: Runtime, user: User) -> str:
    """A one-time ticket, valid LOGIN_TICKET_TTL, that the browser exchanges for its cookie
    (``redeem_login_ticket``). Stored hashed in the database, so any replica can redeem it.

    Stored only while ``user`` still has the password it signed in with and is enabled: a password
    change or disable that lands between the sign-in and this call leaves a ticket that redeems
    to nothing (the browser then shows the sign-in page again)."""
    ticket, now = secrets.token_urlsafe(32), utcnow()
    with Session(rt.engine) as session, session.begin():
        # The write comes first, so on SQLite this transaction holds the write lock from here on
        # and the check below cannot go stale; on PostgreSQL the row lock does the same.
        session.execute(sa.delete(LoginTicket).where(col(LoginTicket.expires_at) <= now))
        current = session.execute(
            select(User.password_hash, User.disabled).where(col(User.id) == user.id).with_for_update()
        ).first()
        if current is not None and current.password_hash == user.password_hash and not current.disabled:
            session.add(LoginTicket(ticket_hash=hash_token(ticket), user_id=saved_id(user.id),
                                    expires_at=now + LOGIN_TICKET_TTL))
    return ticket


def redeem_login_ticket(rt: Runtime, ticket: str | None, binding: object = None,
                        now: datetime | None = None) -> str | None:
    """Use up a live ticket and start a new session for its user, bound to the browser's
    ``binding`` secret: the cookie's token, else None (also for a missing or malformed binding).

    A ticket issued before the user's last password change is refused (password changes and
    disabling also delete outstanding tickets; this is the second line)."""
    if not isinstance(ticket, str) or not 20 <= len(ticket) <= 100 or not valid_binding(binding):
        return None
    now = now or utcnow()
    with Session(rt.engine) as session, session.begin():
        row = session.get(LoginTicket, hash_token(ticket))
        if row is None:
            return None
        # Deleting (and counting) makes the ticket single-use even when two requests race.
        used = rowcount(session.execute(sa.delete(LoginTicket).where(col(LoginTicket.ticket_hash) == row.ticket_hash)))
        user = session.get(User, row.user_id)
        if not used or row.expires_at <= now or user is None or user.disabled:
            return None
        if row.expires_at - LOGIN_TICKET_TTL < user.password_changed_at:  # issued before the change
            return None
        return _add_session(session, saved_id(user.id), now + SESSION_TTL, str(binding))


class SessionEnd(StrEnum):
    """Why a session that existed no longer signs anyone in (told to the browser that held it)."""

    DISABLED = "disabled"
    PASSWORD_CHANGED = "password_changed"
    SIGNED_OUT = "signed_out"
    EXPIRED = "expired"
    NOT_THIS_BROWSER = "not_this_browser"  # a cookie this browser did not get by signing in here


SESSION_ENDED = {
    SessionEnd.DISABLED: "You were signed out because your account was disabled; ask an admin to enable it.",
    SessionEnd.PASSWORD_CHANGED: "You were signed out because your password was changed; sign in with the new "
                                 "password (if you did not change it, ask an admin).",
    SessionEnd.SIGNED_OUT: "You were signed out in another tab or window; sign in again to go on.",
    SessionEnd.EXPIRED: "Your sign-in expired after 14 days; sign in again to go on.",
    SessionEnd.NOT_THIS_BROWSER: "This browser carried a sign-in that was not made here (another page on this "
                                 "machine may have set it), so it was ignored; sign in again to go on.",
}


def session_status(rt: Runtime, token: str | None,
                   now: datetime | None = None) -> tuple[User | None, SessionEnd | None]:
    """The signed-in user for a session token, or why that session ended (None for a token that
    never was one: nothing to tell)."""
    if not token or len(token) > 200:
        return None, None
    now = now or utcnow()
    with Session(rt.engine) as session:
        row = session.exec(_SIGNED_IN, params={"token_hash": hash_token(token)}).first()
    if row is None:
        return None, None
    user, auth = row
    if user.disabled:
        return None, SessionEnd.DISABLED
    if auth.created_at < user.password_changed_at:
        return None, SessionEnd.PASSWORD_CHANGED
    if auth.revoked_at:
        return None, SessionEnd.SIGNED_OUT
    if auth.expires_at <= now:
        return None, SessionEnd.EXPIRED
    return user, None


def revoke_session(rt: Runtime, token: str | None) -> None:
    if not token:
        return
    with rt.engine.begin() as conn:
        conn.execute(sa.update(AuthSession).where(col(AuthSession.token_hash) == hash_token(token))
                     .values(revoked_at=utcnow()))


def delete_tickets(session: Session, user_id: int) -> None:
    session.execute(sa.delete(LoginTicket).where(col(LoginTicket.user_id) == user_id))


def end_sessions(session: Session, user_id: int) -> None:
    """Revoke every session (kept, so an open tab is told its account was disabled) and ticket."""
    session.execute(sa.update(AuthSession).where(col(AuthSession.user_id) == user_id,
                                                 col(AuthSession.revoked_at).is_(None)).values(revoked_at=utcnow()))
    delete_tickets(session, user_id)


def forget_sessions(session: Session, user_id: int) -> None:
    """Delete the sessions of an account being enabled: all ended when it was disabled."""
    session.execute(sa.delete(AuthSession).where(col(AuthSession.user_id) == user_id))
