"""Per-process runtime, per-browser sign-in state, and the error guard every page uses.

Sign-in state (one place, read by the shell on every rerun):

* ``st.session_state[TOKEN_KEY]``: the session token of this browser tab's Streamlit session,
  set right after a successful sign-in (or seeded by tests, see tests/test_app_*.py).
* otherwise the ``byok_session`` HttpOnly cookie (``st.context.cookies``) that the browser got
  from ``POST /byok/session`` and sends again after a reload.

Either way the token is checked against the database on every rerun
(``accounts.user_for_session``), so sign-out, a password change or disabling the account takes
effect at once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import streamlit as st

from byok_core import accounts
from byok_core.errors import ByokError, NotFoundError
from byok_core.identity import Actor
from byok_core.models import User
from byok_core.runtime import Runtime
from byok_ui.server import COOKIE_NAME, SESSION_PATH, SIGNOUT_PATH

TOKEN_KEY = "byok_session_token"
_TICKET_KEY = "_byok_pending_ticket"
_SIGNOUT_KEY = "_byok_pending_signout"


@dataclass(frozen=True)
class Ctx:
    """What a page needs: the runtime and the signed-in user (checked this rerun)."""

    rt: Runtime
    user: User

    @property
    def actor(self) -> Actor:
        return Actor.of(self.user)


_run = threading.local()


@contextmanager
def page_context(value: Ctx):
    """Make ``value`` the signed-in context while the shell runs the chosen page."""
    _run.ctx = value
    try:
        yield
    finally:
        _run.ctx = None


def ctx() -> Ctx:
    """The signed-in context of this very rerun, set by the shell.

    Deliberately not kept in session state: a page script run any other way (not through the
    shell's sign-in check and navigation) finds nothing here and stops."""
    value = getattr(_run, "ctx", None)
    if value is None:
        st.stop()
    return value


# --- sign-in state -------------------------------------------------------------------------


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def _oidc_user(rt: Runtime) -> User | None:
    """The local, enabled account whose username is the OIDC email; None otherwise."""
    if not oidc_configured() or not st.user.is_logged_in:
        return None
    email = str(st.user.get("email") or "").strip()
    if not email or st.user.get("email_verified") is False:
        return None
    try:
        user = accounts.get_user(rt, email)
    except NotFoundError:
        return None
    return None if user.disabled else user


def _cookie_token() -> str | None:
    try:
        value = st.context.cookies.get(COOKIE_NAME)
    except Exception:  # no browser request behind this session (AppTest)
        return None
    return value if isinstance(value, str) else None


def current_user(rt: Runtime) -> User | None:
    token = st.session_state.get(TOKEN_KEY) or _cookie_token()
    user = accounts.user_for_session(rt, token) if token else None
    if user is None:
        st.session_state.pop(TOKEN_KEY, None)
        user = _oidc_user(rt)
    return user


def start_session(rt: Runtime, user: User) -> None:
    """Sign ``user`` in on this tab now, and have the browser fetch the cookie for later visits."""
    token = accounts.create_session(rt, user)
    st.session_state[TOKEN_KEY] = token
    st.session_state[_TICKET_KEY] = accounts.issue_login_ticket(rt, user)
    st.session_state.pop(_SIGNOUT_KEY, None)


def sign_out(rt: Runtime) -> None:
    """Revoke the server session; the browser is then told to drop the cookie (and, with single
    sign-on, Streamlit's identity cookie, or the next rerun would sign the same person in again)."""
    sso = oidc_configured() and bool(st.user.is_logged_in)
    for token in {st.session_state.get(TOKEN_KEY), _cookie_token()}:
        accounts.revoke_session(rt, token)
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    st.session_state[_SIGNOUT_KEY] = True
    if sso:
        st.logout()


def _post_js(path: str, payload: dict) -> str:
    body = json.dumps(json.dumps(payload))  # a JS string literal holding the JSON text
    return (
        "<script>fetch(" + json.dumps(path) + ", {method: 'POST', credentials: 'same-origin', "
        "headers: {'Content-Type': 'application/json'}, body: " + body + "});</script>"
    )


def emit_cookie_actions() -> None:
    """Send the browser the pending cookie request (set after sign-in, or clear after sign-out)."""
    ticket = st.session_state.pop(_TICKET_KEY, None)
    if ticket:
        st.html(_post_js(SESSION_PATH, {"ticket": ticket}), unsafe_allow_javascript=True, width="content")
    elif st.session_state.pop(_SIGNOUT_KEY, None):
        st.html(_post_js(SIGNOUT_PATH, {}), unsafe_allow_javascript=True, width="content")


# --- errors --------------------------------------------------------------------------------


@contextmanager
def shows_errors() -> Iterator[None]:
    """Show any ByokError raised inside as a plain st.error; everything else is the app's bug."""
    try:
        yield
    except ByokError as exc:
        st.error(str(exc), icon=":material/error:")


def flash(name: str, message: str, *, ok: bool = True) -> None:
    """Remember an outcome to show once, where the page calls ``show_flash(name)`` on its next run
    (an action runs in a callback, before the page is drawn)."""
    st.session_state[f"_flash_{name}"] = (ok, message)


def show_flash(name: str) -> None:
    """Show (and forget) the outcome remembered under ``name``, if any."""
    outcome = st.session_state.pop(f"_flash_{name}", None)
    if outcome is not None:
        ok, message = outcome
        if ok:
            st.success(message, icon=":material/check_circle:")
        else:
            st.error(message, icon=":material/error:")


def fmt_time(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"
