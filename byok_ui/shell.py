"""The page shell run on every rerun: runtime, sign-in gate, per-role navigation.

Pages a user may not open are never passed to ``st.navigation``, so their scripts cannot run for
that user (``visibility="hidden"`` would not be access control). Their URLs still answer, with a
stand-in page, so no one meets Streamlit's "Page not found" pop-up:

* signed out, every page's URL shows sign-in (or first-run setup); once signed in, the same URL
  is the page that was asked for (the rerun keeps the URL, and the page behind it is now real;
  ``_to_asked_page`` makes sure of it when the browser's sign-in answer raced the first run);
* signed in, a page the role may not open (a member's ``/admin``) says so in one sentence, and
  ``/signin`` or ``/setup`` go to the first page;
* an address that is no page at all (``/chta``) is redirected by the server to the first page
  with ``?missing=chta`` (byok_ui/server.py), which says so once in a sentence.

Each tab is titled "<page> · BYOK Dashboard", and the favicon is a local SVG (inlined as a data
URL), so loading the app asks nothing of any other host.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import streamlit as st

from byok_core import accounts, currency
from byok_core.md import md_escape
from byok_core.models import User
from byok_core.runtime import Runtime
from byok_ui import first_run, key_banner, state, turns
from byok_ui.page_specs import DEFAULT, PAGE_SPECS, SIGNED_OUT_PATHS, PageSpec
from byok_ui.process import open_or_explain
from byok_ui.server import MISSING_PARAM, SHOWN_ADDRESS

PAGES = Path(__file__).resolve().parent.parent / "pages"
APP_NAME = "BYOK Dashboard"
FAVICON = "data:image/svg+xml;base64," + base64.b64encode(
    (Path(__file__).resolve().parent / "static" / "favicon.svg").read_bytes()).decode()


def tab_title(page_title: str) -> str:
    return f"{page_title} · {APP_NAME}"


# The ⋮ menu: toolbarMode "minimal" (.streamlit/config.toml) leaves the theme's choices and the items
# the app sets (no Print, Record screen or Settings); in that mode Streamlit shows the menu only when
# the app sets one, hence ABOUT. MENU_STYLE hides the "Made with Streamlit v…" line under the items (a
# footer that holds the version's copy button, and not the list of items).
ABOUT = (f"**{APP_NAME}**: chat and search with your own API keys or the team's, with every call's cost "
         "and the team's budgets in one place.")
BROWSER_KEY = "byok_browser"  # the container of the browser's unseen helpers (sign-in probe, cookie requests)
MENU_STYLE = ("<style>[data-testid='stMainMenuPopover'] div:has(.stMenuVersionCopyButton)"
              ":not(:has([data-testid='stMainMenuList'])) { display: none; }"
              f" .st-key-{BROWSER_KEY} {{ display: none; }}</style>")

_MISSING_KEY = "_byok_missing_address"
_ASKED_KEY = "_byok_asked_address"
_SEEN_KEY = "_byok_tab_seen"
_ADDRESSES = [DEFAULT.url_path, *(p.url_path for p in PAGE_SPECS[1:]), *SIGNED_OUT_PATHS]  # every page's


def _stand_in(script: str, title: str, icon: str, url_path: str, *, default: bool = False) -> st.Page:
    return st.Page(PAGES / script, title=title, icon=icon, url_path=url_path, default=default)


def signed_out_pages(rt: Runtime) -> list[st.Page]:
    """Sign-in (or, with no users yet, first-run setup) at every page's URL; the first page's is
    the default, so signing in at ``/`` lands on it."""
    if not accounts.has_users(rt):
        script, title, icon = "setup.py", "First-run setup", ":material/rocket_launch:"
    else:
        script, title, icon = "sign_in.py", "Sign in", ":material/login:"
    return [_stand_in(script, title, icon, path, default=path == DEFAULT.url_path) for path in _ADDRESSES]


def _awaiting() -> None:
    st.caption("Signing you in…")


def awaiting_pages() -> list[st.Page]:
    """Every page's address, for the one run that waits for the browser's answer (``state.awaiting_browser``)."""
    return [st.Page(_awaiting, title=APP_NAME, url_path=path, default=path == DEFAULT.url_path) for path in _ADDRESSES]


def _not_for_your_role(spec: PageSpec) -> Callable[[], None]:
    def page() -> None:
        st.error(f"Only admins can open the {spec.title} page; ask an admin if you need something there.",
                 icon=":material/block:")
    return page


def _to_first_page(first: st.Page) -> Callable[[], None]:
    def page() -> None:
        st.switch_page(first)
    return page


def member_pages(is_admin: bool) -> list[st.Page]:
    """The signed-in navigation: the pages of the role, in one short list with no section headings
    (the sidebar's room is the page's own: the Chat page's conversations), plus hidden stand-ins at
    the URLs of the pages it may not open and of sign-in."""
    pages: list[st.Page] = []
    hidden: list[st.Page] = []
    for spec in PAGE_SPECS:
        if spec.admin_only and not is_admin:
            hidden.append(st.Page(_not_for_your_role(spec), title=spec.title, icon=spec.icon, url_path=spec.url_path,
                                  visibility="hidden"))
            continue
        pages.append(st.Page(PAGES / spec.file, title=spec.title, icon=spec.icon, help=spec.help,
                             url_path=spec.url_path, default=spec is DEFAULT))
    first = pages[0]
    hidden += [st.Page(_to_first_page(first), title=DEFAULT.title, url_path=path, visibility="hidden")
               for path in SIGNED_OUT_PATHS]
    return pages + hidden


def _address(url: str | None) -> str | None:
    """The page part of the browser's address (its last path segment: a base path may come before it)."""
    return urlsplit(url).path.rstrip("/").rpartition("/")[2] if url else None


def _to_asked_page(pages: list[st.Page], shown: st.Page) -> None:
    """On a tab's first signed-in run, open the page its address names if navigation chose another.

    The browser's sign-in answer (``state.awaiting_browser``) can rerun the script before the browser
    has heard which page the first run showed; that rerun carries no page, and would open the first
    page at a deep link's address."""
    asked = st.session_state.pop(_ASKED_KEY, None)
    if not asked or asked == shown.url_path:
        return
    for page in pages:
        if page.url_path == asked:
            st.switch_page(page)


def _sidebar(rt: Runtime, user: User) -> None:
    """Who is signed in, and Sign out: at the foot of the sidebar, under the page's own part."""
    with st.sidebar:
        role = "admin" if user.is_admin else "member"
        st.caption(f":material/account_circle: Signed in as **{md_escape(user.username)}** ({role})")
        if st.button("Sign out", key="shell_sign_out", icon=":material/logout:"):
            state.sign_out(rt)
            st.rerun()


def say_missing(instead: str) -> None:
    """Once, after the server redirected an address that is no page: say so, and drop it from the URL."""
    missing = st.query_params.get(MISSING_PARAM) or st.session_state.pop(_MISSING_KEY, None)
    if missing is None:
        return
    st.query_params.pop(MISSING_PARAM, None)
    where = md_escape(f"/{missing}") if SHOWN_ADDRESS.fullmatch(missing) else "that address"
    st.info(f"There is no page at {where}; {instead}", icon=":material/explore_off:")


def main() -> None:
    try:
        _run()
    finally:  # however the run ends
        turns.give()


def _run() -> None:
    if _SEEN_KEY not in st.session_state:  # first, as any element may let the sign-in answer cut this run short
        st.session_state[_SEEN_KEY] = True
        st.session_state[_ASKED_KEY] = _address(st.context.url)
    # The favicon comes before st.navigation: otherwise the page's Material icon becomes the
    # favicon, which the browser would fetch from a Google font server.
    st.set_page_config(page_title=APP_NAME, page_icon=FAVICON, layout="wide", menu_items={"About": ABOUT})
    st.html(MENU_STYLE)
    # The sign-in probe and cookie requests are drawn in some runs only: in a container of their own,
    # always there, so what follows keeps its place between runs (a rerun would otherwise draw the page
    # one place up, and the browser make its tabs anew, on their first tab).
    browser = st.container(key=BROWSER_KEY)
    rt = open_or_explain()
    if rt.engine.dialect.name == "sqlite":  # on PostgreSQL a run waits on the network: see byok_ui/turns.py
        turns.take()
    with browser:
        user = state.current_user(rt)
        state.emit_cookie_actions()
    if user is None and state.awaiting_browser():
        if MISSING_PARAM in st.query_params:  # kept for the page's run, which may no longer see the address
            st.session_state[_MISSING_KEY] = st.query_params[MISSING_PARAM]
        st.navigation(awaiting_pages(), position="hidden").run()
        return
    if user is None:
        page = st.navigation(signed_out_pages(rt), position="hidden")
        st.set_page_config(page_title=tab_title(page.title))
        say_missing("sign in to open the app.")
        page.run()
        return
    pages = member_pages(user.is_admin)
    page = st.navigation(pages, position="sidebar")
    _to_asked_page(pages, page)
    st.set_page_config(page_title=tab_title(page.title))
    say_missing(f"here is {page.title} instead; the menu has every page.")
    try:
        # the run's money is in the team's display currency (a context variable: byok_core/currency.py)
        with state.page_context(state.Ctx(rt, user)), currency.showing(currency.current(rt)), state.shows_errors():
            first_run.show_checklist(state.Ctx(rt, user))
            key_banner.show(state.Ctx(rt, user))
            page.run()
    finally:  # also after a page's st.stop()
        _sidebar(rt, user)
