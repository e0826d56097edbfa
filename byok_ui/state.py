"""Per-process runtime, per-browser sign-in state, and the error guard every page uses.

Sign-in state (one place, read by the shell on every rerun):

* ``st.session_state[TOKEN_KEY]``: the session token of this browser tab's Streamlit session,
  set right after a successful sign-in (or seeded by tests, see tests/test_app_*.py).
* otherwise the ``byok_session`` HttpOnly cookie (``st.context.cookies``) that the browser got
  from ``POST /byok/session`` (under the server's base path) and sends again after a reload, but
  only when the websocket's ``Origin`` is this very site (``same_origin``): a browser attaches the
  cookie to a websocket opened by any page, and Streamlit accepts every localhost origin on any port.
* otherwise single sign-on (``st.user``), when ``[auth]`` is configured.

Either way the token is checked against the database on every rerun
(``accounts.session_status``), so sign-out, a password change or disabling the account takes
effect at once, and the sign-in page then says why (``signed_out_reason``).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from byok_core import accounts
from byok_core.errors import ByokError, NotFoundError
from byok_core.identity import Actor
from byok_core.md import md_escape
from byok_core.models import User
from byok_core.runtime import Runtime
from byok_ui.server import COOKIE_NAME, SESSION_PATH, SIGNOUT_PATH, app_path

TOKEN_KEY = "byok_session_token"
_TICKET_KEY = "_byok_pending_ticket"
_SIGNOUT_KEY = "_byok_pending_signout"
_ENDED_KEY = "_byok_session_ended"  # why this tab's session ended (accounts.SessionEnd)
_SIGNED_OUT_HERE_KEY = "_byok_signed_out_here"  # this tab signed out: its stale cookie needs no explaining
_AWAITING_KEY = "_byok_awaiting_browser"
_COOKIE_PAIR = re.compile(r"(?:^|;)\s*" + re.escape(COOKIE_NAME) + r"=")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ctx:
    """What a page needs: the runtime and the signed-in user (checked this rerun)."""

    rt: Runtime
    user: User

    @property
    def actor(self) -> Actor:
        return Actor.of(self.user)


_this_run = threading.local()  # the shell's context for the page it runs in this thread


@contextmanager
def page_context(value: Ctx) -> Iterator[None]:
    """Make ``value`` the signed-in context while the shell runs the chosen page."""
    _this_run.ctx = value
    try:
        yield
    finally:
        _this_run.ctx = None


def ctx() -> Ctx:
    """The signed-in context of this very rerun, set by the shell.

    Deliberately not kept in session state: a page script run any other way (not through the
    shell's sign-in check and navigation) finds nothing here and stops."""
    value: Ctx | None = getattr(_this_run, "ctx", None)
    if value is None:
        st.stop()
    return value


# --- sign-in state -------------------------------------------------------------------------


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except StreamlitSecretNotFoundError:  # no secrets file, or one that cannot be read
        return False


def _oidc_user(rt: Runtime) -> User | None:
    """The local, enabled account whose username is the OIDC email; None otherwise.

    With ``BYOK_OIDC_ADMIN_GROUPS`` set, its role follows the sign-in's groups claim
    (``accounts.apply_oidc_role``; written and audited only when it changes)."""
    if not oidc_configured() or not st.user.is_logged_in:
        return None
    email = str(st.user.get("email") or "").strip()
    if not email or st.user.get("email_verified") is False:
        return None
    try:
        user = accounts.get_user(rt, email)
    except NotFoundError:
        return None
    return None if user.disabled else accounts.apply_oidc_role(rt, user, st.user)


def _cookie_token() -> str | None:
    value = st.context.cookies.get(COOKIE_NAME)  # empty without a browser request behind this session
    return value if isinstance(value, str) else None


_DEFAULT_PORTS = {"http": 80, "https": 443}
_WS_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def _host(name: str) -> str:
    """A hostname for comparison: lower case, IP addresses in their one canonical spelling."""
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name.lower()


def same_origin(headers: Mapping[str, str]) -> bool:
    """True when the websocket handshake's ``Origin`` is the site the request was sent to.

    ``headers`` are the handshake's headers (``st.context.headers``, or a plain dict; names in
    any case). The Origin's host and port must equal the ``Host`` header's, hostnames compared
    case-insensitively and IP addresses by value (``[::1]`` is ``[0:0::1]``), a missing port
    meaning the scheme's default (http 80, https 443).

    The scheme is compared too when it can be known: from ``X-Forwarded-Proto`` (``http``,
    ``https``, or ``ws``/``wss`` as some proxies send for websockets; a list or any other value
    counts as unknown, as it does for uvicorn). The header is read whichever peer sent it: a
    page's script cannot set headers on a websocket handshake, so it only ever comes from a proxy
    (or a non-browser client, which can send any Origin anyway), and it can only make the check
    stricter. The server itself does not tell the script whether the connection was TLS, so
    without that header the ``Host``'s missing port is read with the Origin's scheme; the one
    difference this cannot see is http on port 80 against https on port 443 of the same host.

    ``X-Forwarded-Host`` is not used, like uvicorn and Streamlit's own websocket check (which
    compare with ``Host``): a proxy must pass the browser's ``Host`` through.

    No ``Origin`` (or ``null``, or a scheme other than http/https) and no valid ``Host`` mean
    False. Browsers always send ``Origin`` on a websocket handshake, so only a non-browser
    client omits it; such a client holding the token could as well send a matching Origin, so
    refusing costs no legitimate use and keeps the rule simple: no proof of the same origin,
    no cookie. (AppTest sends no headers, but it sends no cookie either.)"""
    h = {str(k).lower(): str(v) for k, v in headers.items()}
    origin_header = h.get("origin", "").strip()
    host_header = h.get("host", "").strip()
    if not origin_header or not host_header:
        return False
    try:
        origin = urlsplit(origin_header)
        host = urlsplit("//" + host_header)
        origin_port, host_port = origin.port, host.port  # ValueError for a malformed port
    except ValueError:
        return False
    if (origin.scheme not in _DEFAULT_PORTS or not origin.hostname or origin.path or origin.query
            or origin.fragment or origin.username is not None):
        return False
    if not host.hostname or host.path or host.query or host.fragment or host.username is not None:
        return False
    known = _WS_SCHEMES.get(h.get("x-forwarded-proto", "").strip().lower())
    if known is not None and known != origin.scheme:
        return False
    scheme = known or origin.scheme
    return (_host(origin.hostname) == _host(host.hostname)
            and (origin_port or _DEFAULT_PORTS[origin.scheme]) == (host_port or _DEFAULT_PORTS[scheme]))


def _same_origin_cookie_token() -> str | None:
    """The cookie's token, if the browser sent one, and only one, on a websocket opened by this very
    site (two ``byok_session`` cookies: one was planted by a page on another port)."""
    token = _cookie_token()
    if not token:
        return None
    headers = st.context.headers
    if len(_COOKIE_PAIR.findall(headers.get("Cookie") or "")) > 1:
        log.warning("byok: two %s cookies arrived (one was set by another page on this host); both ignored",
                    COOKIE_NAME)
        return None
    if same_origin(headers):
        return token
    log.warning("byok: session cookie ignored, the websocket is not same-origin (Origin %r, Host %r, "
                "X-Forwarded-Proto %r); showing sign-in",
                headers.get("Origin"), headers.get("Host"), headers.get("X-Forwarded-Proto"))
    return None


_BINDING_KEY = "byok_binding"  # the browser's secret, in the app origin's localStorage
_binding_probe = st.components.v2.component("byok_binding_probe", js=f"""
export default function({{ setStateValue }}) {{
  setStateValue("binding", window.localStorage.getItem({json.dumps(_BINDING_KEY)}) || "");
}}""")


def _browser_binding() -> str | None:
    """The binding secret this browser's page keeps in localStorage ("" when it has none), or None
    until the page has answered (the probe's answer reruns the script)."""
    answer = _binding_probe(key="_byok_binding_probe", on_binding_change=lambda: None, height=0)
    value = answer.get("binding") if answer is not None else None
    return value if isinstance(value, str) else None


def _cookie_session(rt: Runtime) -> str | None:
    """The cookie's token, adopted by this tab once its page proves it is the browser that signed in
    (``accounts.session_bound_to``): a cookie set from another port of this host (cookies do not
    keep ports apart, and the attacker knows their own cookie) carries a session bound to a secret
    that only this site's own pages could have put in this browser's localStorage."""
    token = _same_origin_cookie_token()
    if token is None or st.session_state.get(_SIGNED_OUT_HERE_KEY):  # this tab's own cookie, on its way out
        return None
    binding = _browser_binding()
    if binding is None:  # the page answers a moment later, which runs the script again
        st.session_state[_AWAITING_KEY] = True
        return None
    if accounts.session_bound_to(rt, token, binding):
        st.session_state[TOKEN_KEY] = token
        return token
    if accounts.session_status(rt, token)[0] is not None:  # a live session, not this browser's
        log.warning("byok: a session cookie this browser did not get by signing in here was ignored")
        st.session_state[_ENDED_KEY] = accounts.SessionEnd.NOT_THIS_BROWSER
        st.session_state[_SIGNOUT_KEY] = True  # the browser drops it
        return None
    return token  # an ended session: session_status tells the sign-in page why


def current_user(rt: Runtime) -> User | None:
    """The signed-in user of this rerun: this tab's own token, else the cookie's when the websocket
    is same-origin (``same_origin``) and this browser started that session (``_cookie_session``),
    else single sign-on; None shows sign-in.

    A session that existed but ended (password changed, account disabled, signed out elsewhere,
    expired) leaves its reason for the sign-in page (``signed_out_reason``)."""
    token = st.session_state.get(TOKEN_KEY) or _cookie_session(rt)
    user, ended = accounts.session_status(rt, token) if token else (None, None)
    if user is None:
        st.session_state.pop(TOKEN_KEY, None)
        if ended is not None and not st.session_state.get(_SIGNED_OUT_HERE_KEY):
            st.session_state[_ENDED_KEY] = ended
        user = _oidc_user(rt)
    return user


def awaiting_browser() -> bool:
    """Whether this run waits for the page to prove it is the browser that signed in (``_cookie_session``):
    the shell then draws nothing but keeps the address, so the answer's run opens the page asked for."""
    return bool(st.session_state.pop(_AWAITING_KEY, False))


def signed_out_reason() -> str | None:
    """Why this tab was signed out, in one sentence, until it signs in again; None when it was not
    (a first visit, or it signed out itself)."""
    ended = st.session_state.get(_ENDED_KEY)
    return accounts.SESSION_ENDED.get(ended) if ended else None


def start_session(rt: Runtime, user: User) -> None:
    """Sign ``user`` in on this tab now, and have the browser fetch the cookie for later visits."""
    token = accounts.create_session(rt, user)
    st.session_state[TOKEN_KEY] = token
    st.session_state[_TICKET_KEY] = accounts.issue_login_ticket(rt, user)
    for key in (_SIGNOUT_KEY, _ENDED_KEY, _SIGNED_OUT_HERE_KEY):
        st.session_state.pop(key, None)


def sign_out(rt: Runtime) -> None:
    """Revoke the server session; the browser is then told to drop the cookie (and, with single
    sign-on, Streamlit's identity cookie, or the next rerun would sign the same person in again)."""
    sso = oidc_configured() and bool(st.user.is_logged_in)
    for token in {st.session_state.get(TOKEN_KEY), _same_origin_cookie_token()}:  # not a foreign page's cookie
        accounts.revoke_session(rt, token)
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    st.session_state[_SIGNOUT_KEY] = True
    st.session_state[_SIGNED_OUT_HERE_KEY] = True
    if sso:
        st.logout()


def _post_js(path: str, payload: dict[str, object]) -> str:
    body = json.dumps(json.dumps(payload))  # a JS string literal holding the JSON text
    return (
        "<script>fetch(" + json.dumps(path) + ", {method: 'POST', credentials: 'same-origin', "
        "headers: {'Content-Type': 'application/json'}, body: " + body + "});</script>"
    )


def _ticket_js(path: str, ticket: str) -> str:
    """Swap the sign-in ticket for the cookie, bound to this browser's secret (made on its first
    sign-in: 32 random bytes in the app origin's localStorage)."""
    return (
        "<script>(() => { const name = " + json.dumps(_BINDING_KEY) + ";"
        " let binding = localStorage.getItem(name);"
        " if (!/^[A-Za-z0-9_-]{43}$/.test(binding || '')) {"
        "  const bytes = crypto.getRandomValues(new Uint8Array(32));"
        "  binding = btoa(String.fromCharCode(...bytes)).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');"
        "  localStorage.setItem(name, binding); }"
        " fetch(" + json.dumps(path) + ", {method: 'POST', credentials: 'same-origin', headers: {'Content-Type':"
        " 'application/json'}, body: JSON.stringify({ticket: " + json.dumps(ticket) + ", binding})}); })();</script>"
    )


def emit_cookie_actions() -> None:
    """Send the browser the pending cookie request (set after sign-in, or clear after sign-out)."""
    ticket = st.session_state.pop(_TICKET_KEY, None)
    if ticket:
        st.html(_ticket_js(app_path(SESSION_PATH), ticket), unsafe_allow_javascript=True, width="content")
    elif st.session_state.pop(_SIGNOUT_KEY, None):
        st.html(_post_js(app_path(SIGNOUT_PATH), {}), unsafe_allow_javascript=True, width="content")


# --- errors --------------------------------------------------------------------------------


@contextmanager
def shows_errors() -> Iterator[None]:
    """Show any ByokError raised inside as a plain st.error (as text: it may quote a provider or a
    person); everything else is the app's bug."""
    try:
        yield
    except ByokError as exc:
        st.error(md_escape(str(exc)), icon=":material/error:")


def flash(name: str, message: str, *, ok: bool = True) -> None:
    """Remember an outcome to show once, where the page calls ``show_flash(name)`` on its next run
    (an action runs in a callback, before the page is drawn)."""
    st.session_state[f"_flash_{name}"] = (ok, message)


def show_flash(name: str) -> None:
    """Show (and forget) the outcome remembered under ``name``, if any, as text: outcomes name
    people, keys and endpoints, and quote providers."""
    outcome = st.session_state.pop(f"_flash_{name}", None)
    if outcome is not None:
        ok, message = outcome[0], md_escape(outcome[1])
        if ok:
            st.success(message, icon=":material/check_circle:")
        else:
            st.error(message, icon=":material/error:")


def fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"
