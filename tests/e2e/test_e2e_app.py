"""End to end in a real Chromium: `streamlit run streamlit_app.py` against loopback fake providers.

First-run setup with the code from the server's console, keys, a streamed chat reply, a reload
that keeps the session, search, usage, admin, role gating by URL, and sign-out. Every wait is on
the app's own state or a specific element, never a fixed sleep. Screenshots go to
test-artifacts/screenshots/ (BYOK_SCREENSHOTS_DIR=docs/screenshots refreshes the README's).

    pytest -m e2e tests/e2e          # needs /usr/bin/chromium (or BYOK_E2E_CHROMIUM)
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fakeproviders import FakeProvider

from byok_core.providers import Provider

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("BYOK_SCREENSHOTS_DIR") or ROOT / "test-artifacts" / "screenshots")
CHROMIUM = os.environ.get("BYOK_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OPENAI_KEY = "sk-e2e-PLAINTEXT-never-shown-9f3c"
REPLY = "Streaming works: one token after another until the very end."
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"

from playwright.sync_api import expect, sync_playwright  # noqa: E402

expect.set_options(timeout=15_000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def fakes():
    with FakeProvider(Provider.OPENAI, reply=REPLY, chunk_delay=0.12, models=["gpt-4o-mini", "gpt-4o"]) as openai, \
            FakeProvider(Provider.TAVILY) as tavily:
        yield openai, tavily


@pytest.fixture(scope="module")
def server(tmp_path_factory, fakes):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"No Chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium) "
                    "or set BYOK_E2E_CHROMIUM; or leave the browser test out with -m 'not e2e'.")
    openai, tavily = fakes
    tmp = tmp_path_factory.mktemp("e2e")
    port = _free_port()
    machine = [v for p in Provider for v in (p.spec.key_env, p.spec.base_url_env) if v]
    env = {k: v for k, v in os.environ.items()
           if k not in machine and not k.startswith(("DATABASE_URL", "ENCRYPTION_KEY", "BYOK_", "STREAMLIT_"))}
    env.update(openai.env())
    env.update(tavily.env())
    env.update({"BYOK_DATA_DIR": str(tmp / "data"), "TAVILY_API_KEY": "tvly-server-key-e2e"})
    stderr_path = tmp / "stderr.log"
    with open(stderr_path, "wb") as err, open(tmp / "stdout.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=out, stderr=err,
        )
    try:
        code = _wait_for(lambda: (m := re.search(r"setup code: (\S+)", stderr_path.read_text(errors="replace")))
                         and m.group(1), 60, "the setup code on the server's stderr")
        url = f"http://127.0.0.1:{port}"
        _wait_for(lambda: _healthy(url), 60, "the server to answer")
        yield {"url": url, "code": code, "stderr": stderr_path}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/_stcore/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def idle(page) -> None:
    page.wait_for_selector(IDLE, timeout=30_000)


def no_errors(page) -> None:
    """No page ever shows a traceback or the generic server-error message."""
    assert page.get_by_test_id("stException").count() == 0
    assert "Something went wrong on the server" not in page.content()
    assert "Traceback" not in page.content()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    idle(page)
    no_errors(page)
    page.get_by_role("heading").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def nav(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible()
    idle(page)
    no_errors(page)


def sign_in(page, url: str, username: str, password: str) -> None:
    page.goto(url)
    expect(page.get_by_role("textbox", name="Username", exact=True)).to_be_visible()
    page.get_by_role("textbox", name="Username", exact=True).fill(username)
    page.get_by_role("textbox", name="Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_test_id("stSidebarNav")).to_be_visible()
    idle(page)


def test_full_flow(server, browser, fakes):
    url = server["url"]
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()

    # --- first run: the setup code printed on the server's console ----------------------------
    page.goto(url)
    expect(page.get_by_text("There are no users yet")).to_be_visible()
    idle(page)
    page.get_by_role("textbox", name="Setup code", exact=True).fill(server["code"])
    page.get_by_role("textbox", name="Admin username", exact=True).fill("admin")
    page.get_by_role("textbox", name="Password (at least 8 characters)", exact=True).fill("admin password 1")
    page.get_by_role("textbox", name="Repeat the password", exact=True).fill("admin password 1")
    page.get_by_role("button", name="Create admin").click()
    expect(page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    idle(page)

    # the session cookie: HttpOnly, SameSite=Lax, invisible to page scripts
    cookie = _wait_for(lambda: next((c for c in context.cookies() if c["name"] == "byok_session"), None), 10,
                       "the session cookie")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert "byok_session" not in page.evaluate("document.cookie")
    assert cookie["value"] not in page.url

    # --- keys: save one, see only its mask -----------------------------------------------------
    nav(page, "Keys")
    card = page.locator(".st-key-mykeys_openai_card")
    card.get_by_text("Add key").click()
    card.get_by_role("textbox", name="API key", exact=True).fill(OPENAI_KEY)
    card.get_by_role("textbox", name="Label (optional)", exact=True).fill("e2e")
    card.get_by_role("button", name="Save key").click()
    expect(card.get_by_text("Saved the OpenAI key sk-…9f3c")).to_be_visible()  # next to the button pressed
    idle(page)
    expect(card.get_by_text("Saved key sk-…9f3c")).to_be_visible()
    assert OPENAI_KEY not in page.content()
    assert "PLAINTEXT" not in page.content()
    assert page.locator(".st-key-mykeys_openai_key input").input_value() == ""
    shot(page, "keys")

    # --- chat: the reply streams in ---------------------------------------------------------------
    nav(page, "Chat")
    expect(page.get_by_role("combobox", name="Model")).to_have_value("gpt-4o-mini")
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("Does streaming work?")
    box.press("Enter")
    assistant = page.get_by_test_id("stChatMessage").filter(has_text="Streaming works")
    expect(assistant).to_be_visible()
    # seen part-way: the first words are there while the last ones have not arrived yet
    assert "until the very end" not in assistant.inner_text()
    expect(assistant).to_contain_text("until the very end.", timeout=20_000)
    expect(assistant).to_contain_text("Paid by your key")
    idle(page)
    shot(page, "chat")

    # --- reload: still signed in, conversation kept -----------------------------------------------
    page.reload()
    expect(page.get_by_test_id("stSidebarNav")).to_be_visible()
    expect(page.get_by_role("button", name="Does streaming work?")).to_be_visible()
    idle(page)
    assert page.get_by_role("textbox", name="Username", exact=True).count() == 0

    # --- search ------------------------------------------------------------------------------------
    nav(page, "Search")
    page.get_by_role("textbox", name="Query", exact=True).fill("example")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    idle(page)
    shot(page, "search")

    # --- usage: the chat call is logged ------------------------------------------------------------
    if page.get_by_test_id("stSidebarNav").get_by_role("link", name="Usage", exact=True).count():
        nav(page, "Usage")
        expect(page.get_by_text("gpt-4o-mini").first).to_be_visible()
        shot(page, "usage")

    # --- admin: create a member ---------------------------------------------------------------------
    nav(page, "Admin")
    page.get_by_role("textbox", name="Username", exact=True).fill("member1")
    page.get_by_role("textbox", name="Initial password (at least 8 characters)", exact=True).fill("member password 1")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_text("Created 'member1'.")).to_be_visible()
    idle(page)
    shot(page, "admin")

    # --- sign out: session revoked, cookie cleared ------------------------------------------------
    page.get_by_role("button", name="Sign out").first.click()
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    idle(page)
    _wait_for(lambda: not any(c["name"] == "byok_session" for c in context.cookies()), 10, "the cookie to go")
    page.reload()
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    shot(page, "sign-in")
    context.close()

    # --- a member cannot open admin pages by URL --------------------------------------------------
    member = browser.new_context(viewport={"width": 1280, "height": 860})
    mpage = member.new_page()
    sign_in(mpage, url, "member1", "member password 1")
    nav_links = mpage.get_by_test_id("stSidebarNav").inner_text()
    assert "Admin" not in nav_links and "Budgets" not in nav_links
    for path in ("/admin", "/budgets"):
        mpage.goto(url + path)
        expect(mpage.get_by_test_id("stSidebarNav")).to_be_visible()
        idle(mpage)
        assert mpage.get_by_role("heading", name="Admin", exact=True).count() == 0
        assert "admin password" not in mpage.content() and "Audit log" not in mpage.content()
    # and a stale or forged cookie signs nobody in
    anon = browser.new_context()
    anon.add_cookies([{"name": "byok_session", "value": cookie["value"], "url": url}])  # the revoked one
    apage = anon.new_page()
    apage.goto(url + "/keys")
    expect(apage.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    member.close()
    anon.close()
