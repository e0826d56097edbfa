"""The cookie routes mounted on st.App: ticket exchange, cross-site refusal, cookie attributes."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.testclient import TestClient

from byok_ui import tickets
from byok_ui.server import COOKIE_NAME, ROUTES, SecurityHeaders


@pytest.fixture
def client():
    app = Starlette(routes=ROUTES, middleware=[Middleware(SecurityHeaders)])
    return TestClient(app, base_url="http://testserver")


def test_ticket_becomes_an_httponly_lax_cookie_once(client):
    ticket = tickets.issue("the-session-token")
    r = client.post("/byok/session", json={"ticket": ticket}, headers={"Origin": "http://testserver"})
    assert r.status_code == 204
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=the-session-token;")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie and "Max-Age=" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would be dropped
    assert r.headers["cache-control"] == "no-store" and r.headers["x-frame-options"] == "DENY"
    again = client.post("/byok/session", json={"ticket": ticket})
    assert again.status_code == 400 and "set-cookie" not in again.headers


def test_secure_over_https_or_when_forced(monkeypatch):
    app = Starlette(routes=ROUTES)
    https = TestClient(app, base_url="https://testserver")
    r = https.post("/byok/session", json={"ticket": tickets.issue("tok")})
    assert "Secure" in r.headers["set-cookie"]
    monkeypatch.setenv("BYOK_COOKIE_SECURE", "1")
    r = TestClient(app).post("/byok/session", json={"ticket": tickets.issue("tok")})
    assert "Secure" in r.headers["set-cookie"]


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site"}])
def test_cross_site_requests_are_refused(client, headers):
    ticket = tickets.issue("tok")
    r = client.post("/byok/session", json={"ticket": ticket}, headers=headers)
    assert r.status_code == 403 and "set-cookie" not in r.headers
    assert client.post("/byok/signout", json={}, headers=headers).status_code == 403


def test_only_json_bodies(client):
    ticket = tickets.issue("tok")
    r = client.post("/byok/session", data={"ticket": ticket})  # what a cross-site HTML form can send
    assert r.status_code == 400 and "set-cookie" not in r.headers
    assert client.post("/byok/signout", data={"x": "1"}).status_code == 403
    assert client.get("/byok/session").status_code == 405


def test_expired_ticket_is_refused():
    ticket = tickets.issue("tok", now=1000.0)
    assert tickets.redeem(ticket, now=1000.0 + tickets.TTL_SECONDS + 1) is None
    assert tickets.redeem(ticket, now=1001.0) is None  # and gone, even inside the window
    assert tickets.redeem("x" * 10) is None and tickets.redeem(None) is None


def test_signout_clears_the_cookie(client):
    r = client.post("/byok/signout", json={}, headers={"Origin": "http://testserver"})
    assert r.status_code == 204
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f'{COOKIE_NAME}=""') and "Max-Age=0" in cookie and "HttpOnly" in cookie
