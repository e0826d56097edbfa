"""In a real Chromium: an image planted in a provider's error and in a username is shown as text,
and the loopback server its URL names receives no request (tests/test_untrusted_text.py has the
rest, without a browser). On the shared app server (tests/e2e/conftest.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from browser import idle, no_errors, open_signed_in
from fakeproviders import default_error_body
from playwright.sync_api import expect

from byok_core import accounts, keys
from byok_core.identity import Actor, Owner
from byok_core.models import User, table
from byok_core.providers import Provider

pytestmark = pytest.mark.e2e


@pytest.fixture
def trap() -> Iterator[tuple[str, list[str]]]:
    """A loopback server that records every request: the address a planted image names."""
    hits: list[str] = []

    class Record(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Record)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def failing_openai(openai, trap) -> Iterator[str]:
    """The shared OpenAI answering every request with a 400 whose message holds an image."""
    image = f"![e]({trap[0]}/e1)"
    openai.status, openai.error_body = 400, default_error_body(Provider.OPENAI, 400, f"Unsupported model {image}")
    yield image
    openai.status, openai.error_body = None, None


def test_a_planted_image_in_an_error_and_a_username_loads_nothing(server, page, rt, trap, failing_openai):
    url, hits = trap
    user = accounts.create_user(rt, Actor.operator(), "planted", "member password 1")
    keys.store(rt, Actor.of(user), Owner.user(user.id), Provider.OPENAI, "sk-e2e-planted-0123456789")
    named = f"planted{failing_openai.replace('/e1', '/u1')}"
    with rt.engine.begin() as conn:  # as a single sign-on email or an old import could have written it
        conn.execute(sa.update(table(User)).where(table(User).c.id == user.id).values(username=named))
    open_signed_in(page, server.url, rt, user)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("hi")
    box.press("Enter")
    alert = page.get_by_test_id("stAlertContentError").filter(has_text="Unsupported model")
    expect(alert).to_be_visible()
    idle(page)
    no_errors(page)
    assert page.locator(f"img[src^='{url}']").count() == 0
    assert hits == []
    expect(alert).to_contain_text(failing_openai)  # the provider's words and the name, as the text they are
    expect(page.get_by_test_id("stSidebar")).to_contain_text(named)
