"""``state.same_origin``: the session cookie counts only on a websocket opened by the app's own origin,
so a page served from another port or host cannot use the sign-in a browser carries. The attack
against the running server is in tests/e2e/test_ws_origin.py."""

from __future__ import annotations

import pytest

from byok_ui.state import same_origin


def ws(origin: str | None, host: str | None, **extra: str) -> dict[str, str]:
    headers = dict(extra)
    if origin is not None:
        headers["Origin"] = origin
    if host is not None:
        headers["Host"] = host
    return headers


@pytest.mark.parametrize("origin, host", [
    ("http://127.0.0.1:8501", "127.0.0.1:8501"),
    ("http://localhost:8501", "localhost:8501"),
    ("http://LocalHost:8501", "localhost:8501"),  # hostnames in any case
    ("HTTP://localhost:8501", "LOCALHOST:8501"),
    ("https://dash.example.com", "dash.example.com"),  # default ports
    ("https://dash.example.com:443", "dash.example.com"),
    ("https://dash.example.com", "dash.example.com:443"),
    ("http://dash.example.com", "dash.example.com:80"),
    ("http://dash.example.com:80", "dash.example.com"),
    ("http://[::1]:8501", "[::1]:8501"),
    ("http://[0:0:0:0:0:0:0:1]:8501", "[::1]:8501"),  # IPv6 by value
    ("http://[::1]", "[::1]:80"),
    ("http://[FE80::1]:8501", "[fe80::1]:8501"),
])
def test_the_same_host_and_port_is_same_origin(origin, host):
    assert same_origin(ws(origin, host))


@pytest.mark.parametrize("origin, host", [
    ("http://127.0.0.1:9999", "127.0.0.1:8501"),  # the attack: another local port
    ("http://localhost:9999", "localhost:8501"),
    ("http://[::1]:9999", "[::1]:8501"),
    ("http://localhost:8501", "127.0.0.1:8501"),  # another host, though the same machine
    ("http://127.0.0.1:8501", "localhost:8501"),
    ("http://[::1]:8501", "127.0.0.1:8501"),
    ("http://[::1]:8501", "localhost:8501"),
    ("https://evil.example", "dash.example.com"),
    ("https://dash.example.com.evil.example", "dash.example.com"),
    ("https://dash.example.com:8443", "dash.example.com"),  # default port against another port
    ("https://dash.example.com", "dash.example.com:8443"),
    ("http://dash.example.com", "dash.example.com:443"),  # http's default port is 80
    ("https://dash.example.com", "dash.example.com:80"),  # https's default port is 443
])
def test_another_host_or_port_is_not(origin, host):
    assert not same_origin(ws(origin, host))


@pytest.mark.parametrize("proto, origin, ok", [
    ("https", "https://dash.example.com", True),
    ("wss", "https://dash.example.com", True),  # what some proxies send for a websocket
    ("HTTPS", "https://dash.example.com", True),
    ("http", "http://dash.example.com", True),
    ("ws", "http://dash.example.com", True),
    ("https", "http://dash.example.com", False),  # scheme known and different
    ("wss", "http://dash.example.com", False),
    ("http", "https://dash.example.com", False),
    ("ws", "https://dash.example.com", False),
])
def test_the_scheme_must_match_when_a_proxy_says_it(proto, origin, ok):
    assert same_origin(ws(origin, "dash.example.com", **{"X-Forwarded-Proto": proto})) is ok


def test_a_known_scheme_decides_the_default_port_of_the_host():
    # behind a TLS proxy the browser connects to https://host (port 443); a page on http://host (port 80)
    # must not pass just because the Host header carries no port
    assert not same_origin(ws("http://dash.example.com", "dash.example.com", **{"x-forwarded-proto": "https"}))
    assert same_origin(ws("https://dash.example.com", "dash.example.com", **{"x-forwarded-proto": "https"}))


def test_an_unusable_forwarded_proto_counts_as_unknown():
    assert same_origin(ws("https://dash.example.com", "dash.example.com", **{"X-Forwarded-Proto": "https, http"}))
    assert same_origin(ws("http://dash.example.com", "dash.example.com", **{"X-Forwarded-Proto": "gopher"}))


def test_header_names_in_any_case():
    assert same_origin({"origin": "http://127.0.0.1:8501", "HOST": "127.0.0.1:8501"})
    assert not same_origin({"ORIGIN": "http://127.0.0.1:9999", "host": "127.0.0.1:8501"})


@pytest.mark.parametrize("headers", [
    {},  # AppTest, or a non-browser client
    ws(None, "127.0.0.1:8501"),  # no Origin: not a browser; refused (see the docstring)
    ws("http://127.0.0.1:8501", None),  # no Host
    ws("", "127.0.0.1:8501"),
    ws("http://127.0.0.1:8501", ""),
    ws("null", "127.0.0.1:8501"),  # sandboxed iframe, file:// page
    ws("file://", "127.0.0.1:8501"),
    ws("chrome-extension://abcdef", "abcdef"),
    ws("ws://127.0.0.1:8501", "127.0.0.1:8501"),  # an Origin is http(s), never ws
    ws("http://127.0.0.1:8501/path", "127.0.0.1:8501"),
    ws("http://user@127.0.0.1:8501", "127.0.0.1:8501"),
    ws("http://127.0.0.1:99999", "127.0.0.1:99999"),  # malformed ports
    ws("http://127.0.0.1:x", "127.0.0.1:x"),
    ws("http://127.0.0.1:8501", "127.0.0.1:8501/x"),
    ws("http://127.0.0.1:8501", "evil@127.0.0.1:8501"),
])
def test_missing_or_malformed_headers_are_not_same_origin(headers):
    assert not same_origin(headers)


def test_sign_out_from_another_origin_leaves_the_cookie_s_session_alone(rt, monkeypatch):
    """A page on another local port, signed in with its own account, signs out: the browser's
    cookie (the victim's session) is not revoked, as it is not trusted from there either."""
    from types import SimpleNamespace

    from byok_core import accounts
    from byok_core.identity import Actor
    from byok_ui import state

    victim = accounts.create_user(rt, Actor.operator(), "victim", "victim password 1")
    token = accounts.create_session(rt, victim)
    monkeypatch.setattr(state, "_cookie_token", lambda: token)
    foreign = {"Origin": "http://127.0.0.1:9999", "Host": "127.0.0.1:8501"}
    monkeypatch.setattr(state.st, "context", SimpleNamespace(headers=foreign, cookies={}))
    state.sign_out(rt)
    assert accounts.session_status(rt, token)[0].id == victim.id
    monkeypatch.setattr(state.st, "context", SimpleNamespace(headers={**foreign, "Origin": "http://127.0.0.1:8501"},
                                                             cookies={}))
    state.sign_out(rt)  # from the app's own page the same sign-out ends it
    assert accounts.session_status(rt, token)[0] is None
