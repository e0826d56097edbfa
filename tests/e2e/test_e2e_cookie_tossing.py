"""Session fixation by cookie tossing, as the break-in test did it: a page on another port of the same
host (cookies do not keep ports apart) sets ``byok_session`` to the attacker's own valid session, for a
signed-out victim directly, and for a signed-in one after pushing the HttpOnly cookie out of
Chromium's jar with throwaway cookies. The victim's tab must never be in the attacker's account."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from browser import COOKIE, idle, sign_in
from playwright.sync_api import Page, expect

from byok_core import accounts
from byok_core.identity import Actor, Role

NOT_HERE = "This browser carried a sign-in that was not made here"


@pytest.fixture(scope="module")
def people(server):
    from byok_core.startup import open_runtime

    rt = open_runtime(server.env, migrate=False)
    try:
        accounts.create_user(rt, Actor.operator(), "victor", "victor-password-1", Role.MEMBER)
        return accounts.create_user(rt, Actor.operator(), "mallory", "mallory-password-1", Role.MEMBER)
    finally:
        rt.engine.dispose()


@pytest.fixture
def attacker(people, rt) -> Iterator[str]:
    """A page on another port of 127.0.0.1 that plants, for the whole host, mallory's own live cookie
    session, as her browser got it by signing in (bound to her browser)."""
    token = accounts.create_session(rt, people, binding=secrets.token_urlsafe(32))
    script = (
        "for (let i = 0; i < 200; i++) document.cookie = `junk${i}=x; path=/`;"  # evict the oldest (HttpOnly) one
        f"document.cookie = {json.dumps(f'{COOKIE}={token}; path=/')};"
        "for (let i = 0; i < 200; i++) document.cookie = `junk${i}=; path=/; max-age=0`;"
        "document.title = 'planted';"
    )
    body = f"<!doctype html><title>cats</title><script>{script}</script>".encode()

    class Page_(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Page_)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _plant(page: Page, attacker: str) -> None:
    page.goto(attacker)
    expect(page).to_have_title("planted")
    # the page's cookie writes reach the browser's cookie store a moment later (Chromium's network
    # service): wait for the planted one, as ``expect`` waits for an element
    deadline = time.monotonic() + 10
    while not any(c["name"] == COOKIE and not c["httpOnly"] for c in page.context.cookies()):
        assert time.monotonic() < deadline, "the attacker's page could not plant its cookie"
        page.wait_for_timeout(50)


def test_a_planted_cookie_does_not_sign_a_signed_out_browser_in(server, page, attacker):
    _plant(page, attacker)
    page.goto(server.url + "/keys")
    expect(page.get_by_text(NOT_HERE)).to_be_visible()
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    assert "mallory" not in page.content()
    page.reload()  # and the planted cookie is gone: a plain sign-in page
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    assert not any(c["name"] == COOKIE for c in page.context.cookies())


def test_a_planted_cookie_never_moves_a_signed_in_browser_to_another_account(server, page, attacker):
    sign_in(page, server.url, "victor", "victor-password-1")
    expect(page.get_by_text("Signed in as victor")).to_be_visible()
    _plant(page, attacker)
    page.goto(server.url + "/keys")
    idle(page)
    assert "mallory" not in page.content()
    # either the planted cookie was refused (sign in again), or it never displaced victor's own
    expect(page.get_by_text("Signed in as victor").or_(page.get_by_text(NOT_HERE))).to_be_visible()


def test_a_reload_keeps_the_browser_that_signed_in_signed_in(server, page):
    sign_in(page, server.url, "victor", "victor-password-1")
    page.reload()
    expect(page.get_by_text("Signed in as victor")).to_be_visible()
    page.goto(server.url + "/keys")
    expect(page.get_by_text("the keys you save here are victor's")).to_be_visible()
