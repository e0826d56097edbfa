"""What the browser tests share: Debian's Chromium driven by Playwright, and waits on the app's own
state (a script run finished, an element shown), never fixed sleeps."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from appserver import ROOT, wait_for
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from byok_core import accounts
from byok_core.models import User
from byok_core.runtime import Runtime

CHROMIUM = os.environ.get("BYOK_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
DESKTOP = {"width": 1280, "height": 860}
COOKIE = "byok_session"  # byok_ui.server.COOKIE_NAME

expect.set_options(timeout=15_000)


def need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"No Chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium) "
                    "or set BYOK_E2E_CHROMIUM; or leave the browser tests out with -m 'not e2e'.")


@contextmanager
def chromium() -> Iterator[Browser]:
    need_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def idle(page: Page) -> None:
    page.wait_for_selector(IDLE, timeout=30_000)


def settled(page: Page) -> None:
    """The script run is over and every element is drawn (charts and tables load their code lazily,
    showing placeholders until then)."""
    idle(page)
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0)


SHOTS = Path(os.environ.get("BYOK_SCREENSHOTS_DIR") or ROOT / "test-artifacts" / "screenshots")


def shot(page: Page, name: str) -> None:
    """A screenshot for the README (BYOK_SCREENSHOTS_DIR=docs/screenshots), taken once the page is drawn."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    idle(page)
    no_errors(page)
    page.get_by_role("heading").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def no_errors(page: Page) -> None:
    """No page ever shows a traceback or the generic server-error message."""
    assert page.get_by_test_id("stException").count() == 0
    assert "Something went wrong on the server" not in page.content()
    assert "Traceback" not in page.content()


def nav(page: Page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible()
    idle(page)
    no_errors(page)


def session_cookie(context: BrowserContext) -> dict:
    """The HttpOnly cookie, once the page's request for it has completed."""
    return wait_for(lambda: next((c for c in context.cookies() if c["name"] == COOKIE), None), 10,
                    "the session cookie")


def sign_in_by_cookie(context: BrowserContext, url: str, rt: Runtime, user: User) -> None:
    """Sign ``context`` in as ``user`` without the sign-in form (only the sign-in tests use it): a
    real session from the core (``accounts.create_session``) in the cookie the form's request would
    have set, bound to the secret the form's page would have put in this browser's localStorage
    (``accounts.session_bound_to``). The next page loaded is signed in."""
    binding = secrets.token_urlsafe(32)
    token = accounts.create_session(rt, user, binding=binding)
    parts = urlsplit(url)
    origin = json.dumps(f"{parts.scheme}://{parts.netloc}")
    context.add_init_script(f"if (location.origin === {origin}) localStorage.setItem('byok_binding', "
                            f"{json.dumps(binding)});")
    context.add_cookies([{"name": COOKIE, "value": token, "url": url, "httpOnly": True, "sameSite": "Lax"}])


def open_signed_in(page: Page, url: str, rt: Runtime, user: User, path: str = "/") -> None:
    """Open ``url + path`` signed in as ``user`` (``sign_in_by_cookie``)."""
    sign_in_by_cookie(page.context, url, rt, user)
    page.goto(url + path)
    expect(page.get_by_test_id("stSidebarNav")).to_be_attached()  # signed in (on a phone, in the closed menu)
    idle(page)


def sign_in(page: Page, url: str, username: str, password: str) -> None:
    page.goto(url)
    expect(page.get_by_role("textbox", name="Username", exact=True)).to_be_visible()
    page.get_by_role("textbox", name="Username", exact=True).fill(username)
    page.get_by_role("textbox", name="Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_test_id("stSidebarNav")).to_be_visible()
    idle(page)
    session_cookie(page.context)  # later navigation by URL needs it
