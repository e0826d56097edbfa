"""The localhost session theft of issue 13, item 3, replayed against the running server.

A page on another local port (say http://127.0.0.1:9999) can open a websocket to the app on
127.0.0.1:<port>: Streamlit accepts any localhost Origin on any port, and the browser attaches the
app's ``byok_session`` cookie (cookies are not bound to a port). This test does what that page's
script would make the browser do: connect to ``/_stcore/stream`` with the cookie and the foreign
``Origin``, send the start-up frame the Streamlit frontend sends (``rerun_script``), and read the
page the server renders. It must be the sign-in page. The same frames with the app's own Origin
must show "Signed in as", which proves the client drives the app like a browser does.

    pytest -m e2e tests/e2e/test_ws_origin.py
"""

from __future__ import annotations

import pytest
from ports import free_port
from wsclient import first_page

from byok_core import accounts
from byok_core.identity import Actor, Role
from byok_core.startup import open_runtime

pytestmark = pytest.mark.e2e

WAITING = "Signing you in"
SIGN_IN_FORM = ("Username", "Password")  # the sign-in page's fields


@pytest.fixture(scope="module")
def alice(server):
    """The shared app server (tests/e2e/conftest.py): its port, its console, and alice's session token."""
    rt = open_runtime(server.env, migrate=False)
    try:
        user = accounts.create_user(rt, Actor.operator(), "alice", "alice-password-1", Role.MEMBER)
        token = accounts.create_session(rt, user)
    finally:
        rt.engine.dispose()
    return {"port": server.port, "token": token, "stderr": server.stderr}


def render(port: int, origin: str, token: str) -> str:
    """Open the app's websocket as a browser would from ``origin``, with the session cookie (and no
    binding secret to answer the sign-in probe with), and return the text of every element of the
    first complete script run."""
    return first_page(f"http://127.0.0.1:{port}", f"byok_session={token}", origin).text()


def test_the_app_s_own_origin_has_its_cookie_considered(alice):
    """From the app's own origin the cookie counts: the tab then asks its page for the browser's
    binding secret (which this raw websocket cannot answer; a real browser's page does, see
    test_e2e_cookie_tossing.py) instead of showing the sign-in form."""
    port = alice["port"]
    page = render(port, f"http://127.0.0.1:{port}", alice["token"])
    assert WAITING in page and "byok_binding_probe" in page
    assert not any(field in page for field in SIGN_IN_FORM) and "Something went wrong" not in page


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_page_on_another_local_port_gets_the_sign_in_page(alice, host):
    port, token = alice["port"], alice["token"]
    other = free_port()
    page = render(port, f"http://{host}:{other}", token)
    assert "Signed in as" not in page
    assert all(field in page for field in SIGN_IN_FORM), page  # Streamlit accepted it; the app refused the cookie
    console = alice["stderr"].read_text(errors="replace")
    assert f"'http://{host}:{other}'" in console and "session cookie ignored" in console
    assert token not in console
    # the cookie's session itself is untouched: the app's own origin still has it considered
    assert WAITING in render(port, f"http://127.0.0.1:{port}", token)
