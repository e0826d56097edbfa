"""Replicas (issue 14, item 2) in a real Chromium: two `streamlit run` processes on one PostgreSQL
database with one master key, behind nginx with sticky sessions (deploy/nginx.conf, filled in by
deploy/nginx_conf.py exactly as deploy/run-replicas.sh does).

A member signs in through nginx, saves an OpenAI key (encrypted by the replica serving the tab) and
chats. Every response so far came from one replica (nginx's ``X-Upstream`` header). That replica is
stopped; the open tab reconnects through nginx by itself, is still signed in (its session cookie
is checked against the shared database), finds the key and the conversation, and chats on with the
key the stopped replica encrypted. Every wait is on the app's or the browser's state, never a sleep.

Replicas need PostgreSQL, so this runs when TEST_DATABASE_URL is set (in a schema of its own); then
nginx and Chromium must be installed (apt-get install nginx chromium): missing ones fail, not skip.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test pytest tests/e2e/test_replicas.py
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from appserver import RunningApp, running_app, running_nginx, wait_for
from browser import idle, nav, need_chromium, no_errors
from fakeproviders import FakeProvider
from playwright.sync_api import Page, expect

from byok_core import accounts, db
from byok_core.crypto import gen_key
from byok_core.identity import Actor, Role
from byok_core.providers import Provider
from byok_core.startup import open_runtime

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not PG_URL, reason="replicas share a PostgreSQL database: set TEST_DATABASE_URL"),
]

MEMBER = ("carol", "carol password 1")
OPENAI_KEY = "sk-replicas-PLAINTEXT-7d2e"
FIRST, SECOND = "Written on the first replica?", "And this one after it stopped?"
REPLY = "Both replicas read the same database."
CONNECTED = "[data-testid='stApp'][data-test-connection-state='CONNECTED']"


@dataclass(frozen=True)
class Replica:
    app: RunningApp
    stop: Callable[[], None]  # terminates this replica's process and waits for it

    @property
    def address(self) -> str:  # as nginx names it in X-Upstream
        return f"127.0.0.1:{self.app.port}"


@pytest.fixture(scope="module")
def tools() -> str:
    """nginx's path, after checking that nginx and Chromium are there (before anything starts)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        pytest.fail("No nginx: install Debian's nginx (apt-get install nginx); the replica test needs it "
                    "whenever TEST_DATABASE_URL is set.")
    need_chromium()
    return nginx


@pytest.fixture(scope="module")
def database_url(tools) -> Iterator[str]:
    """An empty schema of its own on TEST_DATABASE_URL; the first replica migrates it."""
    admin = db.create_engine(PG_URL)
    schema = f"replicas_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(db.normalize_url(PG_URL)).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="module")
def openai() -> Iterator[FakeProvider]:
    with FakeProvider(Provider.OPENAI, reply=REPLY, models=["gpt-4o-mini", "gpt-4o"]) as fake:
        yield fake


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, database_url, openai) -> Iterator[list[Replica]]:
    """Two app processes: the same DATABASE_URL and master key, data folders and ports of their own;
    each can be stopped on its own (the rest stop at the end of the module)."""
    master_key = gen_key()
    with ExitStack() as everything:
        started = []
        for n in (1, 2):
            own = everything.enter_context(ExitStack())
            app = own.enter_context(running_app(tmp_path_factory.mktemp(f"replica{n}"), DATABASE_URL=database_url,
                                                ENCRYPTION_KEY=master_key, **openai.env()))
            started.append(Replica(app, own.close))
        rt = open_runtime(started[0].app.env, migrate=False)
        try:
            accounts.create_user(rt, Actor.operator(), *MEMBER, Role.MEMBER)
        finally:
            rt.engine.dispose()
        yield started


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, tools, replicas) -> Iterator[str]:
    """nginx in front of the replicas, unprivileged, everything under its own folder; its URL."""
    with running_nginx(tmp_path_factory.mktemp("nginx"), [r.address for r in replicas], tools) as nginx:
        yield nginx.url


def upstream(page: Page, proxy: str) -> str:
    """The replica nginx sends this browser to now (the last one tried, when it had to try several):
    a request with the tab's own cookies."""
    tried = page.request.get(proxy + "/_stcore/health").headers["x-upstream"]
    return tried.split(",")[-1].strip()


def chat(page: Page, prompt: str, replies: int) -> None:
    """Send ``prompt`` in the open conversation and wait for its streamed reply, the ``replies``-th."""
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(prompt)
    box.press("Enter")
    expect(page.get_by_test_id("stChatMessage").filter(has_text=prompt)).to_be_visible()
    shown = page.get_by_test_id("stChatMessage").filter(has_text=REPLY)
    expect(shown).to_have_count(replies, timeout=20_000)
    expect(shown.nth(replies - 1)).to_contain_text("Paid by your key")
    idle(page)
    no_errors(page)


def test_a_signed_in_tab_keeps_working_when_its_replica_stops(proxy, replicas, browser, openai):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    answered_by: list[str] = []
    page.on("response", lambda response: answered_by.append(response.headers.get("x-upstream", "none")))

    # sign in through nginx
    page.goto(proxy)
    page.get_by_role("textbox", name="Username", exact=True).fill(MEMBER[0])
    page.get_by_role("textbox", name="Password", exact=True).fill(MEMBER[1])
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_test_id("stSidebarNav")).to_be_visible()
    idle(page)
    wait_for(lambda: any(c["name"] == "byok_session" for c in context.cookies()), 10, "the session cookie")
    served = upstream(page, proxy)
    by_address = {r.address: r for r in replicas}
    assert served in by_address, f"nginx answered from {served!r}, not one of {sorted(by_address)}"
    (other,) = (r for r in replicas if r.address != served)

    # store something on the replica that serves the tab: a key it encrypts, a conversation
    nav(page, "Keys")
    card = page.locator(".st-key-mykeys_openai_card")
    card.get_by_text("Add key").click()
    card.get_by_role("textbox", name="API key", exact=True).fill(OPENAI_KEY)
    card.get_by_role("button", name="Save key").click()
    expect(card.get_by_text("Saved key sk-…7d2e")).to_be_visible()
    idle(page)
    nav(page, "Chat")
    chat(page, FIRST, 1)
    assert answered_by and set(answered_by) == {served}, f"not sticky: {Counter(answered_by)}"

    # stop that replica: the tab notices, and its new websocket goes through nginx to the other one
    with page.expect_event("websocket", timeout=30_000):
        by_address[served].stop()
    page.wait_for_selector(CONNECTED, timeout=30_000)
    assert upstream(page, proxy) == other.address

    # still signed in (no password asked), and everything stored is there
    nav(page, "Keys")
    expect(page.locator(".st-key-mykeys_openai_card").get_by_text("Saved key sk-…7d2e")).to_be_visible()
    nav(page, "Chat")
    page.get_by_role("button", name=FIRST).click()
    expect(page.get_by_test_id("stChatMessage").filter(has_text=REPLY)).to_have_count(1)
    idle(page)
    chat(page, SECOND, 2)  # with the key the stopped replica encrypted: same master key
    calls = [r for r in openai.requests if r.path.endswith("/chat/completions")]
    assert len(calls) == 2 and set(openai.sent_keys()) == {OPENAI_KEY}

    # and a reload lands on the remaining replica, signed in by the cookie
    document = page.reload()
    assert document is not None and document.headers["x-upstream"].split(",")[-1].strip() == other.address
    expect(page.get_by_test_id("stSidebarNav")).to_be_visible()
    expect(page.get_by_role("button", name=FIRST)).to_be_visible()
    idle(page)
    assert page.get_by_role("textbox", name="Username", exact=True).count() == 0
    context.close()
