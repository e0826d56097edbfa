"""The app served under a sub-path (`streamlit run streamlit_app.py --server.baseUrlPath=team`), as
behind a proxy that forwards only /team/: in a real Chromium, sign-in sets the session cookie for
/team (the page posts its ticket to /team/byok/session), a page opened by URL keeps the session,
and sign-out clears it; /team/healthz, /team/readyz and /team/metrics answer there and not at /.

    pytest -m e2e tests/e2e/test_subpath.py     # needs /usr/bin/chromium (or BYOK_E2E_CHROMIUM)
"""

from __future__ import annotations

import httpx
import pytest
from appserver import running_app, wait_for
from browser import idle, need_chromium
from playwright.sync_api import Page, expect

from byok_core import accounts
from byok_core.identity import Actor, Role
from byok_core.startup import open_runtime

pytestmark = pytest.mark.e2e

USER = ("lead", "lead password 1")
TOKEN = "e2e-metrics-token-5b0f2a9c41d7"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    need_chromium()
    with running_app(tmp_path_factory.mktemp("subpath"), "team", BYOK_METRICS_TOKEN=TOKEN) as app:
        rt = open_runtime(app.env)  # the server migrated the database when it started
        try:
            accounts.create_user(rt, Actor.operator(), USER[0], USER[1], Role.ADMIN)
        finally:
            rt.engine.dispose()
        yield app.url


def cookie_of(page: Page) -> dict | None:
    return next((c for c in page.context.cookies() if c["name"] == "byok_session"), None)


def test_sign_in_open_a_page_and_sign_out_under_the_sub_path(server, page):
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(server + "/")
    page.get_by_role("textbox", name="Username", exact=True).fill(USER[0])
    page.get_by_role("textbox", name="Password", exact=True).fill(USER[1])
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_test_id("stSidebarNav")).to_be_visible()
    idle(page)
    cookie = wait_for(lambda: cookie_of(page), 10, "the session cookie")
    assert cookie["path"] == "/team" and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert server + "/byok/session" in posts

    page.goto(server + "/keys")  # a new websocket: only the cookie can sign this one in
    expect(page.get_by_role("heading", name="Keys", exact=True).first).to_be_visible()
    idle(page)
    assert page.get_by_role("textbox", name="Username", exact=True).count() == 0
    assert page.get_by_test_id("stException").count() == 0

    page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("textbox", name="Username", exact=True)).to_be_visible()
    wait_for(lambda: cookie_of(page) is None, 10, "the cookie to be cleared")
    assert server + "/byok/signout" in posts
    page.goto(server + "/keys")
    expect(page.get_by_role("textbox", name="Username", exact=True)).to_be_visible()


def test_health_readiness_and_metrics_under_the_sub_path(server):
    site = server.rsplit("/team", 1)[0]
    assert httpx.get(server + "/healthz").text == "ok"
    assert httpx.get(server + "/readyz").json() == {"ready": True}
    assert httpx.get(server + "/metrics").status_code == 401
    r = httpx.get(server + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and "# TYPE byok_provider_calls_total counter" in r.text
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(site + path).status_code == 404
