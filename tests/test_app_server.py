"""The cookie routes mounted on st.App: ticket exchange, cross-site refusal, cookie attributes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from apptest import clear_runtime, make_user, use_environment
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.testclient import TestClient

from byok_core import accounts
from byok_core.clock import utcnow
from byok_core.identity import Actor
from byok_ui.server import COOKIE_NAME, ROUTES, SecurityHeaders

BINDING = "b1nd1ng-of-this-browser-0123456789abcdefghi"  # as the page makes it: 43 URL-safe characters


@pytest.fixture
def app(monkeypatch, environ, rt):
    use_environment(monkeypatch, environ)  # the routes open the same database as `rt`
    return Starlette(routes=ROUTES, middleware=[Middleware(SecurityHeaders)])


@pytest.fixture
def client(app):
    return TestClient(app, base_url="http://testserver")


@pytest.fixture
def alice(rt):
    return make_user(rt, "alice")


def _cookie_token(response) -> str:
    return response.headers["set-cookie"].split(";")[0].split("=", 1)[1]


def test_ticket_becomes_an_httponly_lax_session_cookie_once(client, rt, alice):
    ticket = accounts.issue_login_ticket(rt, alice)
    r = client.post("/byok/session", json={"ticket": ticket, "binding": BINDING}, headers={"Origin": "http://testserver"})
    assert r.status_code == 204
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie and "Max-Age=" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would be dropped
    assert r.headers["cache-control"] == "no-store" and r.headers["x-frame-options"] == "DENY"
    assert accounts.session_status(rt, _cookie_token(r))[0].id == alice.id
    assert ticket not in cookie
    again = client.post("/byok/session", json={"ticket": ticket, "binding": BINDING})
    assert again.status_code == 400 and "set-cookie" not in again.headers


def test_ticket_is_stored_hashed_and_any_replica_can_redeem_it(rt, alice, environ):
    ticket = accounts.issue_login_ticket(rt, alice)
    with rt.engine.connect() as conn:
        stored = [r[0] for r in conn.exec_driver_sql("SELECT ticket_hash FROM login_tickets")]
    assert ticket not in stored and len(stored) == 1
    from byok_core.startup import open_runtime

    other_replica = open_runtime(environ)
    assert accounts.session_status(rt, accounts.redeem_login_ticket(other_replica, ticket, BINDING))[0].id == alice.id


def test_secure_over_https_or_when_forced(app, rt, alice, monkeypatch):
    https = TestClient(app, base_url="https://testserver")
    r = https.post("/byok/session", json={"ticket": accounts.issue_login_ticket(rt, alice), "binding": BINDING})
    assert "Secure" in r.headers["set-cookie"]
    monkeypatch.setenv("BYOK_COOKIE_SECURE", "1")
    clear_runtime()  # settings are read once, at start: the operator restarts with the new value
    r = TestClient(app).post("/byok/session",
                             json={"ticket": accounts.issue_login_ticket(rt, alice), "binding": BINDING})
    assert "Secure" in r.headers["set-cookie"]


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site"}])
def test_cross_site_requests_are_refused(client, rt, alice, headers):
    ticket = accounts.issue_login_ticket(rt, alice)
    r = client.post("/byok/session", json={"ticket": ticket, "binding": BINDING}, headers=headers)
    assert r.status_code == 403 and "set-cookie" not in r.headers
    assert client.post("/byok/signout", json={}, headers=headers).status_code == 403
    assert accounts.redeem_login_ticket(rt, ticket, BINDING) is not None  # the refused request did not use it


def test_only_json_bodies(client, rt, alice):
    ticket = accounts.issue_login_ticket(rt, alice)
    r = client.post("/byok/session", data={"ticket": ticket})  # what a cross-site HTML form can send
    assert r.status_code == 400 and "set-cookie" not in r.headers
    assert client.post("/byok/signout", data={"x": "1"}).status_code == 403
    assert client.get("/byok/session").status_code == 405


def test_expired_or_disabled_tickets_are_refused(rt, alice):
    ticket = accounts.issue_login_ticket(rt, alice)
    late = utcnow() + accounts.LOGIN_TICKET_TTL + timedelta(seconds=1)
    assert accounts.redeem_login_ticket(rt, ticket, BINDING, now=late) is None
    assert accounts.redeem_login_ticket(rt, ticket, BINDING) is None  # and gone, even inside the window
    assert accounts.redeem_login_ticket(rt, "x" * 10, BINDING) is None
    assert accounts.redeem_login_ticket(rt, None, BINDING) is None
    ticket = accounts.issue_login_ticket(rt, alice)
    accounts.set_disabled(rt, Actor.operator(), "alice", True)
    assert accounts.redeem_login_ticket(rt, ticket, BINDING) is None


def test_signout_revokes_the_cookie_session_and_clears_it(client, rt, alice):
    token = accounts.create_session(rt, alice)
    client.cookies.set(COOKIE_NAME, token)
    r = client.post("/byok/signout", json={}, headers={"Origin": "http://testserver"})
    assert r.status_code == 204
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f'{COOKIE_NAME}=""') and "Max-Age=0" in cookie and "HttpOnly" in cookie
    assert accounts.session_status(rt, token)[0] is None


@pytest.mark.parametrize("binding", [None, "", "short", "x" * 44, "not base64url!" * 3, 12345])
def test_a_ticket_is_swapped_only_with_the_browsers_binding(client, rt, alice, binding):
    ticket = accounts.issue_login_ticket(rt, alice)
    r = client.post("/byok/session", json={"ticket": ticket, "binding": binding}, headers={"Origin": "http://testserver"})
    assert r.status_code == 400 and "set-cookie" not in r.headers
    assert client.post("/byok/session", json={"ticket": ticket, "binding": BINDING}).status_code == 204  # unused


def test_the_cookie_session_belongs_to_the_browser_that_signed_in(client, rt, alice):
    r = client.post("/byok/session", json={"ticket": accounts.issue_login_ticket(rt, alice), "binding": BINDING})
    token = _cookie_token(r)
    assert accounts.session_bound_to(rt, token, BINDING)
    assert not accounts.session_bound_to(rt, token, "a" * 43)  # another browser's secret
    assert not accounts.session_bound_to(rt, token, "")  # a browser that never signed in here
    tab_own = accounts.create_session(rt, alice)  # a tab's own session: never a cookie
    assert not accounts.session_bound_to(rt, tab_own, BINDING)
    with rt.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT binding_hash FROM auth_sessions").scalars().all()
    assert BINDING not in stored and sum(v is not None for v in stored) == 1
