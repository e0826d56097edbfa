"""Fixtures the browser test modules share, once per pytest session (so once per xdist worker): one
Chromium, and one app server with its fake OpenAI and Brave for every module that needs no other
configuration (a module with another one defines its own ``server``); its /metrics and Streamlit's
/_stcore/metrics answer to ``appserver.METRICS_TOKEN``. Modules on the shared server
make users of their own names. Each module has one browser context; a test's ``page`` is a new tab
in it, with the cookies cleared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from appserver import METRICS_TOKEN, RunningApp, running_app
from browser import DESKTOP, chromium
from fakeproviders import FakeProvider
from playwright.sync_api import Browser, BrowserContext, Page

from byok_core.providers import Provider
from byok_core.runtime import Runtime
from byok_core.startup import open_runtime

REPLY = "Streaming works: one token after another until the very end."


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="session")
def shared_openai() -> Iterator[FakeProvider]:
    """The shared server's OpenAI; its reply is ``REPLY``, and it stops after the first word while
    ``gate`` is clear (it starts set)."""
    with FakeProvider(Provider.OPENAI, reply=REPLY, hold_after=1) as fake:
        fake.gate.set()
        yield fake


@pytest.fixture
def openai(shared_openai) -> Iterator[FakeProvider]:
    """The shared OpenAI answering normally: any key, no error status, replies straight through (a
    test clears ``gate`` to hold one); a reply still held is let go when the test ends."""
    shared_openai.status, shared_openai.error_body, shared_openai.expect_key = None, None, None
    shared_openai.gate.set()
    yield shared_openai
    shared_openai.gate.set()


@pytest.fixture(scope="session")
def server(tmp_path_factory, shared_openai) -> Iterator[RunningApp]:
    with FakeProvider(Provider.BRAVE) as brave, \
            running_app(tmp_path_factory.mktemp("e2e-shared"), **shared_openai.env(), **brave.env(),
                        BYOK_METRICS_TOKEN=METRICS_TOKEN) as app:
        yield app


@pytest.fixture(scope="module")
def context(browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=DESKTOP)
    yield context
    context.close()


@pytest.fixture
def page(context) -> Iterator[Page]:
    context.clear_cookies()
    page = context.new_page()
    yield page
    page.close()


@pytest.fixture
def rt(server) -> Iterator[Runtime]:
    runtime = open_runtime(server.env, migrate=False)  # the server migrated its database as it started
    yield runtime
    runtime.engine.dispose()
