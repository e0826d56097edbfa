"""Fixtures the browser test modules share: one Chromium per module, and a runtime on the database
of the module's own ``server`` (a running app)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser import chromium
from playwright.sync_api import Browser

from byok_core.runtime import Runtime, open_runtime


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def rt(server) -> Iterator[Runtime]:
    runtime = open_runtime(server.env, migrate=False)
    yield runtime
    runtime.engine.dispose()
