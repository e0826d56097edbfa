"""HTTP routes and middleware mounted on the Streamlit server through ``st.App``.

* ``POST /byok/session`` exchanges a one-time sign-in ticket (``accounts.issue_login_ticket``,
  kept hashed in the database so any replica can redeem it) for a new session in an HttpOnly
  cookie. ``POST /byok/signout`` revokes the cookie's session and clears the cookie.
* Both refuse cross-site requests: the body must be JSON (so a cross-site form cannot send it and a
  cross-site ``fetch`` needs a CORS preflight this server never grants), and an ``Origin`` or
  ``Sec-Fetch-Site`` header, when the browser sends one, must say same-origin. Neither takes a
  redirect target, so there is nothing to abuse as an open redirect.
* The cookie is ``Secure`` when the request arrived over https (directly, or through a proxy
  uvicorn trusts for ``X-Forwarded-Proto``) or when ``BYOK_COOKIE_SECURE=1``.

Operations (no cookie, no session; ``Cache-Control: no-store``):

* ``GET /healthz``: 200 ``ok`` while the process serves HTTP. Touches nothing else (liveness).
* ``GET /readyz``: 200 ``{"ready": true}`` when the runtime opens (the master key loads and the
  configuration is valid), the database answers and its schema is at this release's Alembic head;
  else 503 ``{"ready": false, "reason": ...}`` with a fixed, short reason, never an exception's
  text. One check runs at a time and an answer takes at most ``READY_TIMEOUT`` seconds.
* ``GET /metrics``: Prometheus text (byok_core/metrics.py) for ``Authorization: Bearer
  $BYOK_METRICS_TOKEN``; 401 for a missing or wrong token, 404 when the variable is not set.
  Streamlit's own ``/_stcore/metrics`` takes the same token (``StreamlitMetricsNeedToken``).

An address that names no page (``GET /chta``, a typo or an old bookmark) is redirected to the
app's first page with ``?missing=chta``, which the shell turns into one sentence, instead of
Streamlit's "Page not found" pop-up about the app's ``pages/`` directory.

Every route lives under Streamlit's ``server.baseUrlPath`` (``--server.baseUrlPath=team`` serves
``/team/byok/session``, ``/team/healthz``, ...), read when requests arrive, as Streamlit's own
routes do; the session cookie's ``Path`` is that base path too.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode, urlsplit

from alembic.util import CommandError
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Match, Route, compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from byok_core import accounts, db, metrics
from byok_core.errors import ConfigError, MasterKeyError
from byok_core.vault import MasterKeyMismatch
from byok_ui.page_specs import DEFAULT, PAGE_SPECS, SIGNED_OUT_PATHS
from byok_ui.process import get_runtime

COOKIE_NAME = "byok_session"
SESSION_PATH = "/byok/session"
SIGNOUT_PATH = "/byok/signout"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
STCORE_METRICS_PATH = "/_stcore/metrics"  # Streamlit's own
MEDIA_PATH = "/media/"  # Streamlit's downloads and images
MISSING_PARAM = "missing"
NEXT_COOKIE = "byok_next"
SHOWN_ADDRESS = re.compile(r"[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,3}")  # a missing address safe to show
# The parts of Streamlit's own paths (sign-in with OIDC returns to /oauth2callback) and of this
# module's: never redirected
STREAMLIT_PATHS = {"_stcore", "static", "media", "component", "app", "auth", "oauth2callback", "byok"}
READY_TIMEOUT = 5.0
_MAX_BODY = 1024

log = logging.getLogger(__name__)


def base_path() -> str:
    """Streamlit's ``server.baseUrlPath`` as a path prefix: ``""`` or ``"/team"``.

    Read on each call, not at import: ``streamlit run`` loads its configuration before it imports
    the app, but a server started another way (uvicorn) loads it later."""
    from streamlit import config

    name = str(config.get_option("server.baseUrlPath") or "").strip().strip("/")
    return f"/{name}" if name else ""


def app_path(path: str) -> str:
    """``path`` (one of the paths above) as the browser must request it, under the base path."""
    return base_path() + path


class BasePathRoute(Route):
    """A Route at ``base_path() + path``, the prefix looked up when a request arrives (Streamlit
    builds its own routes from the same option, once its configuration is loaded)."""

    def __init__(self, path: str, endpoint: Any, *, methods: list[str]) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.suffix = path
        self._base = ""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        base = base_path()
        if base != self._base:
            self._base, self.path = base, base + self.suffix
            self.path_regex, self.path_format, self.param_convertors = compile_path(self.path)
        return super().matches(scope)


def _cookie_path() -> str:
    """The app's own path: under a base path the cookie goes to that app only (its pages, its
    websocket and these routes), not to other apps on the same host."""
    return base_path() or "/"


def _secure(request: Request) -> bool:
    return get_runtime().settings.cookie_secure or request.url.scheme == "https"


def _same_origin(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in {"same-origin", "none"}:
        return False
    origin = request.headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        host = request.headers.get("host", "")
        if parts.netloc.lower() != host.lower():
            return False
    return True


async def _json_body(request: Request) -> dict[str, Any] | None:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return None
    body = await request.body()
    if len(body) > _MAX_BODY:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


async def session_route(request: Request) -> Response:
    if not _same_origin(request):
        return _no_store(JSONResponse({"error": "cross-site request refused"}, status_code=403))
    data = await _json_body(request) or {}
    token = await run_in_threadpool(accounts.redeem_login_ticket, get_runtime(), data.get("ticket"),
                                    data.get("binding"))  # the browser's secret from its localStorage
    if token is None:
        return _no_store(JSONResponse({"error": "invalid or expired ticket"}, status_code=400))
    response = Response(status_code=204)
    response.set_cookie(COOKIE_NAME, token, max_age=int(accounts.SESSION_TTL.total_seconds()), path=_cookie_path(),
                        httponly=True, samesite="lax", secure=_secure(request))
    return _no_store(response)


async def signout_route(request: Request) -> Response:
    if not _same_origin(request) or await _json_body(request) is None:
        return _no_store(JSONResponse({"error": "cross-site request refused"}, status_code=403))
    await run_in_threadpool(accounts.revoke_session, get_runtime(), request.cookies.get(COOKIE_NAME))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE_NAME, path=_cookie_path(), httponly=True, samesite="lax", secure=_secure(request))
    return _no_store(response)


# --- operations ----------------------------------------------------------------------------


async def health_route(_request: Request) -> Response:
    return _no_store(PlainTextResponse("ok"))


@functools.cache
def _head_revision() -> str:
    return db.head_revision()  # the migrations shipped with this release do not change while it runs


def _database_reason(exc: Exception) -> str:
    log.warning("readyz: %s", type(exc).__name__)  # never the text: it can hold the database URL
    if isinstance(exc, CommandError):  # Alembic: e.g. a revision from a newer release
        return "database migrations are not current"
    if isinstance(exc, OperationalError | InterfaceError):
        return "database unreachable"
    if isinstance(exc, SQLAlchemyError):
        return "database error"
    return "the server cannot open its runtime"


def readiness() -> str | None:
    """None when this server can take users, else a short fixed reason (the console has more)."""
    try:
        rt = get_runtime()  # once open, cached; until then each check tries again
    except MasterKeyMismatch:
        return "master key opens none of the stored keys"
    except MasterKeyError:
        return "master key does not load"
    except ConfigError:
        return "configuration is invalid"
    except Exception as exc:  # opening connects and migrates
        return _database_reason(exc)
    try:
        current = db.current_revision(rt.engine)
    except Exception as exc:
        return _database_reason(exc)
    if current != _head_revision():
        return "database migrations are not current"
    return db.write_problem(rt.engine)  # an embedded database whose disk is full or that is read-only


_ready_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="byok-readyz")
_ready_lock = threading.Lock()
_ready_check: Future[str | None] | None = None


async def _readiness_once() -> str | None:
    """``readiness()`` on a thread of its own, one check at a time: probes that arrive while a
    check runs share its answer, so a database that hangs holds one thread, not one per probe."""
    global _ready_check
    with _ready_lock:
        if _ready_check is None or _ready_check.done():
            _ready_check = _ready_pool.submit(readiness)
        check = _ready_check
    try:
        return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(check)), READY_TIMEOUT)
    except TimeoutError:
        return "readiness check timed out"
    except Exception as exc:  # a bug in the check itself: still a short answer, details in the log
        log.warning("readyz: the check failed (%s)", type(exc).__name__)
        return "readiness check failed"


async def ready_route(_request: Request) -> Response:
    reason = await _readiness_once()
    if reason is None:
        return _no_store(JSONResponse({"ready": True}))
    return _no_store(JSONResponse({"ready": False, "reason": reason}, status_code=503))


def bearer_matches(authorization: str | None, expected: str) -> bool:
    """True when an ``Authorization`` header carries ``Bearer <expected>`` (compared in constant time)."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def metrics_refusal(request: Request) -> Response | None:
    """None when ``request`` carries the metrics token; else the answer: 404 when no token is set
    (as if there were no such route), 401 for a missing or wrong one."""
    token = metrics.token_from_env()
    if token is None:
        return _no_store(PlainTextResponse("Not Found", status_code=404))
    if not bearer_matches(request.headers.get("authorization"), token.reveal()):
        return _no_store(PlainTextResponse("Unauthorized", status_code=401,
                                           headers={"WWW-Authenticate": 'Bearer realm="byok metrics"'}))
    return None


async def metrics_route(request: Request) -> Response:
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    body, content_type = metrics.exposition()
    return _no_store(Response(body, media_type=content_type))


class StreamlitMetricsNeedToken:
    """Streamlit's own ``/_stcore/metrics`` (its cached functions' names and hit counts, memory per
    session) answers as ``/metrics`` does: only with the metrics token. Streamlit reserves the path,
    so no route can take it; this middleware runs before Streamlit's router."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/") == app_path(STCORE_METRICS_PATH):
            refusal = metrics_refusal(Request(scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class MediaNeedsSession:
    """Streamlit serves what a page offers for download (the usage CSV, a conversation's Markdown)
    and its images under ``/media/<id>``, to anyone with the address. Here only a browser signed in
    with a live session gets them: a link copied out of the page, or opened after signing out, is
    404 like an address that never was."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(app_path(MEDIA_PATH)):
            token = Request(scope).cookies.get(COOKIE_NAME)
            user, _ = await run_in_threadpool(accounts.session_status, get_runtime(), token)
            if user is None:
                await _no_store(PlainTextResponse("Not found", status_code=404))(scope, receive, send)
                return
        await self.app(scope, receive, send)


class UnknownPageRoute(BasePathRoute):
    """``GET`` of an address that is no page: the routes above are matched first, and Streamlit's
    own (``STREAMLIT_PATHS``, its files at the root) are let through (``page_redirect``)."""

    def __init__(self) -> None:
        super().__init__("/{path:path}", unknown_page_route, methods=["GET"])

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        target = None if match is Match.NONE else page_redirect(child["path_params"]["path"])
        if target is None:
            return Match.NONE, {}
        child["path_params"]["target"] = target  # worked out once, for the endpoint
        return match, child


def page_redirect(path: str) -> str | None:
    """Where a GET of ``path`` (under the base path, without its leading ``/``) goes instead: a
    page's address with a slash too many, or Chat's (the first page is served at ``/``, not at
    ``/chat``), goes to the page; any other address that is no page goes to the first page with
    ``?missing=<path>``. None: a page, or Streamlit's to answer."""
    rest = path.strip("/")
    parts = rest.split("/")
    # Streamlit's paths, also under a page's address: its page at /keys looks for its server at
    # /keys/_stcore/health before /_stcore/health, and must not be answered there
    if not rest or STREAMLIT_PATHS.intersection(parts) or "." in parts[-1]:
        return None
    if rest == DEFAULT.url_path:
        return app_path("/")
    if rest in {spec.url_path for spec in PAGE_SPECS} | set(SIGNED_OUT_PATHS):
        return None if rest == path else app_path(f"/{rest}")
    return f"{app_path('/')}?{urlencode({MISSING_PARAM: rest[:200]})}"


async def unknown_page_route(request: Request) -> Response:
    target = request.path_params["target"]
    if request.url.query and "?" not in target:  # /chat?c=12: the conversation goes along
        target += f"?{request.url.query}"
    return RedirectResponse(target, status_code=302)


class SignOnReturnsToPage(BaseHTTPMiddleware):
    """``GET /auth/login`` from a page (its ``Referer``, same origin): remember the page in the
    ``byok_next`` cookie (HttpOnly, 10 minutes). ``GET /oauth2callback`` redirecting to ``/``: go to
    that page instead, and drop the cookie. Only names of the app's pages are kept or followed, so
    the cookie cannot send anyone elsewhere."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response: Response = await call_next(request)
        if request.method != "GET":
            return response
        path = request.url.path
        if path == app_path("/auth/login"):
            page = _page_of(request.headers.get("referer"), request.headers.get("host", ""))
            if page is not None:
                response.set_cookie(NEXT_COOKIE, page, max_age=600, path=_cookie_path(), httponly=True,
                                    secure=_secure(request), samesite="lax")
        elif path == app_path("/oauth2callback"):
            page = request.cookies.get(NEXT_COOKIE)
            if page in _return_pages() and response.headers.get("location") == app_path("/"):
                response.headers["location"] = app_path(f"/{page}")
            if page is not None:
                response.delete_cookie(NEXT_COOKIE, path=_cookie_path())
        return response


def _return_pages() -> set[str]:
    """The pages a sign-on may return to (not the first page: the callback goes there anyway)."""
    return {spec.url_path for spec in PAGE_SPECS[1:]}


def _page_of(referer: str | None, host: str) -> str | None:
    """The app page a same-origin ``referer`` names, if any."""
    if not referer:
        return None
    parts = urlsplit(referer)
    base = base_path()
    if parts.netloc.lower() != host.lower() or not parts.path.startswith(base + "/"):
        return None
    page = parts.path[len(base) + 1:].rstrip("/")
    return page if page in _return_pages() else None


class SecurityHeaders(BaseHTTPMiddleware):
    """Conservative headers on every HTTP response (the websocket is not touched)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response


ROUTES = [
    BasePathRoute(SESSION_PATH, session_route, methods=["POST"]),
    BasePathRoute(SIGNOUT_PATH, signout_route, methods=["POST"]),
    BasePathRoute(HEALTH_PATH, health_route, methods=["GET"]),
    BasePathRoute(READY_PATH, ready_route, methods=["GET"]),
    BasePathRoute(METRICS_PATH, metrics_route, methods=["GET"]),
    UnknownPageRoute(),  # last: it answers only what nothing above does
]
