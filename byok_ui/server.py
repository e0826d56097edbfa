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
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from byok_core import accounts
from byok_ui.runtime import get_runtime

COOKIE_NAME = "byok_session"
SESSION_PATH = "/byok/session"
SIGNOUT_PATH = "/byok/signout"
_MAX_BODY = 1024


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


async def _json_body(request: Request) -> dict | None:
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
    data = await _json_body(request)
    token = await run_in_threadpool(accounts.redeem_login_ticket, get_runtime(), data.get("ticket") if data else None)
    if token is None:
        return _no_store(JSONResponse({"error": "invalid or expired ticket"}, status_code=400))
    response = Response(status_code=204)
    response.set_cookie(COOKIE_NAME, token, max_age=int(accounts.SESSION_TTL.total_seconds()), path="/",
                        httponly=True, samesite="lax", secure=_secure(request))
    return _no_store(response)


async def signout_route(request: Request) -> Response:
    if not _same_origin(request) or await _json_body(request) is None:
        return _no_store(JSONResponse({"error": "cross-site request refused"}, status_code=403))
    await run_in_threadpool(accounts.revoke_session, get_runtime(), request.cookies.get(COOKIE_NAME))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax", secure=_secure(request))
    return _no_store(response)


class SecurityHeaders(BaseHTTPMiddleware):
    """Conservative headers on every HTTP response (the websocket is not touched)."""

    async def dispatch(self, request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response


ROUTES = [
    Route(SESSION_PATH, session_route, methods=["POST"]),
    Route(SIGNOUT_PATH, signout_route, methods=["POST"]),
]
