"""Helpers for page tests with Streamlit's AppTest (no browser).

AppTest cannot send cookies (``at.context`` only takes browser fields), so a test signs a user in
the way the sign-in page itself does after ``accounts.authenticate``: it creates a real server
session and puts its token in session state before the first run::

    at = app_test()
    sign_in(at, rt, user)   # accounts.create_session + session_state[TOKEN_KEY]
    at.run()

The shell then checks that token with ``accounts.session_status`` on every rerun exactly as it
checks the cookie, so revoked sessions, disabled accounts and roles behave as in production.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from callhelpers import follow_to_end
from streamlit import dataframe_util

from byok_core import accounts
from byok_core.identity import Actor
from byok_core.models import Message, ReplyStatus, User, table
from byok_core.providers import Provider
from byok_core.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = str(ROOT / "byok_ui" / "entrypoint" / "app.py")
_MACHINE_VARS = [v for p in Provider for v in (p.spec.key_env, p.spec.base_url_env) if v] + [
    "DATABASE_URL", "BYOK_DATA_DIR", "ENCRYPTION_KEY", "ENCRYPTION_KEY_FILE", "ENCRYPTION_KEY_FALLBACKS",
]


def drawn(table) -> pd.DataFrame:
    """An AppTest table as the browser draws it: a styled table's display values (the text of a
    column whose numbers are written by a pandas Styler), else its values."""
    styler = table.proto.arrow_data.styler
    if styler.display_values:
        return dataframe_util.convert_arrow_bytes_to_pandas_df(styler.display_values)
    return table.value


def text_of(markdown: str) -> str:
    """What the browser shows for a Markdown body (rendered as CommonMark, tags dropped): messages
    from outside are escaped (byok_core.md), so their Markdown source differs from their text."""
    from html import unescape

    from markdown_it import MarkdownIt

    return unescape(re.sub(r"<[^>]+>", "", MarkdownIt("commonmark").render(markdown))).strip()


def use_environment(monkeypatch, environ: dict[str, str]) -> None:
    """Point the app at the test's database and master key, and forget any cached runtime."""
    for name in _MACHINE_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    clear_runtime()


def clear_runtime() -> None:
    import streamlit as st

    from byok_ui.process import get_runtime

    get_runtime.clear()
    st.cache_data.clear()


def app_test(timeout: float = 30):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(ENTRYPOINT, default_timeout=timeout)


def open_page(at, name: str):
    """Switch an AppTest to ``pages/<name>.py`` (ValueError when the user's navigation lacks it)."""
    return at.switch_page(f"../../pages/{name}.py")


def sign_in(at, rt: Runtime, user: User) -> str:
    from byok_ui.state import TOKEN_KEY

    token = accounts.create_session(rt, user)
    at.session_state[TOKEN_KEY] = token
    return token


def make_user(rt: Runtime, name: str, admin: bool = False, password: str = "correct horse battery") -> User:
    from byok_core.identity import Role

    return accounts.create_user(rt, Actor.operator(), name, password, Role.ADMIN if admin else Role.MEMBER)


def env_without_machine_vars() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _MACHINE_VARS}


CHAT_MENUS = ("chat_pickers_open", "chat_presets_open", "chat_conversation_open", "presets_start_open",
              "chat_settings_open")


def open_menus(at):
    """Open the Chat page's popovers and its settings expander, whose content is drawn only while
    open (as a click does)."""
    for key in CHAT_MENUS:
        at.session_state[key] = True
    return at


def page_as(rt: Runtime, user: User, name: str = "chat", menus: bool = True):
    """An AppTest signed in as ``user`` with page ``name`` open (and no exception on it); on the
    Chat page its popovers are open (``menus``), so their widgets can be used."""
    at = app_test()
    sign_in(at, rt, user)
    at.run()
    if name == "chat" and menus:
        open_menus(at)
    open_page(at, name).run()
    assert not at.exception, at.exception
    return at


def send_message(at, rt: Runtime, text: str):
    """Send ``text`` from the Chat page's box (``settle``)."""
    return act(at, rt, lambda: at.chat_input(key="chat_prompt").set_value(text).run())


def act(at, rt: Runtime, action: Callable[[], object]):
    """Do ``action`` on the Chat page (send, Regenerate, Edit's Send), then run the page again once
    the replies it started (and any still being written) have ended: a browser follows a reply
    through the live fragment's runs, which AppTest does not make (it runs the fragment once, with
    the page). A reply that ended while the page was drawn counts too."""
    replies = table(Message)
    with rt.engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.max(replies.c.id))).scalar() or 0
    action()
    with rt.engine.connect() as conn:
        started = conn.execute(sa.select(replies.c.id).where(
            replies.c.role == "assistant", (replies.c.status == ReplyStatus.STREAMING) | (replies.c.id > before))
        ).scalars().all()
    for reply_id in started:
        follow_to_end(reply_id)
    return at.run() if started else at
