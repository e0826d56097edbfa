"""One-time, short-lived sign-in tickets that turn a session token into an HttpOnly cookie.

After a successful sign-in the script (which talks to the browser over Streamlit's websocket)
creates a server session and a ticket for it. The browser POSTs the ticket to ``/byok/session``;
that route redeems it and answers with ``Set-Cookie`` (HttpOnly, SameSite=Lax). The session token
itself is never visible to page JavaScript and never appears in a URL. Tickets live in this
process's memory only (Streamlit serves every websocket session from one process), are stored as
SHA-256 digests, expire after ``TTL_SECONDS`` and work once.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

TTL_SECONDS = 60
MAX_PENDING = 10_000
_pending: dict[str, tuple[str, float]] = {}  # sha256(ticket) -> (session token, expiry on time.monotonic)
_lock = threading.Lock()


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def issue(session_token: str, now: float | None = None) -> str:
    """A new ticket that can be exchanged once, within TTL_SECONDS, for ``session_token``."""
    now = time.monotonic() if now is None else now
    ticket = secrets.token_urlsafe(32)
    with _lock:
        if len(_pending) >= MAX_PENDING:
            for key in [k for k, (_, exp) in _pending.items() if exp <= now]:
                del _pending[key]
        _pending[_digest(ticket)] = (session_token, now + TTL_SECONDS)
    return ticket


def redeem(ticket: str | None, now: float | None = None) -> str | None:
    """The session token for a live ticket (which is used up), else None."""
    if not isinstance(ticket, str) or not 20 <= len(ticket) <= 100:
        return None
    now = time.monotonic() if now is None else now
    with _lock:
        entry = _pending.pop(_digest(ticket), None)
    if entry is None or entry[1] <= now:
        return None
    return entry[0]
