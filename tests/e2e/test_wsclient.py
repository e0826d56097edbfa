"""The websocket client bench/load.py drives the app with (tests/e2e/wsclient.py) signs in the way
a browser's page does: its session cookie counts once it answers the sign-in probe with the secret
the session is bound to, and a tab holding another secret is refused. A bench that stops signing in
measures the sign-in page, so this fails first.

    pytest -m e2e tests/e2e/test_wsclient.py
"""

from __future__ import annotations

import secrets

import pytest
from wsclient import first_page

from byok_core import accounts
from byok_core.identity import Actor, Role
from byok_core.startup import open_runtime

pytestmark = pytest.mark.e2e

NOT_HERE = "This browser carried a sign-in that was not made here"


@pytest.fixture(scope="module")
def bound(server):
    """Bea's session on the shared app server, bound to her browser's secret: (cookie, secret)."""
    rt = open_runtime(server.env, migrate=False)
    try:
        user = accounts.create_user(rt, Actor.operator(), "bea", "bea-password-1", Role.MEMBER)
        binding = secrets.token_urlsafe(32)
        return f"byok_session={accounts.create_session(rt, user, binding=binding)}", binding
    finally:
        rt.engine.dispose()


def test_the_browser_s_secret_signs_the_tab_in(server, bound):
    cookie, binding = bound
    run = first_page(server.url, cookie, binding=binding)
    page = run.text()
    assert "Signed in as" in page and "bea" in page, page
    assert run.problems == [] and "Username" not in page


def test_another_secret_gets_the_sign_in_page(server, bound):
    cookie, _ = bound
    page = first_page(server.url, cookie, binding=secrets.token_urlsafe(32)).text()
    assert "Signed in as" not in page
    assert NOT_HERE in page and "Username" in page, page
