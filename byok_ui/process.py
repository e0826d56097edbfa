"""The process's one Runtime (master key, database, migrations), opened once and shared by every
session, the cookie routes and the start-up hook."""

from __future__ import annotations

import sys
import traceback

import streamlit as st

from byok_core import accounts, keywatch
from byok_core.errors import ConfigError
from byok_core.md import md_escape
from byok_core.runtime import Runtime
from byok_core.startup import open_runtime


def _banner(lines: list[str]) -> None:
    bar = "=" * 72
    print("\n".join(["", bar, *lines, bar, ""]), file=sys.stderr, flush=True)


@st.cache_resource(show_spinner=False)
def get_runtime() -> Runtime:
    """Open the runtime once per process (master key, database, migrations).

    With no users yet, a one-time setup code is issued and printed to the console here."""
    rt = open_runtime()
    code = accounts.issue_setup_code(rt)
    if code:
        _banner([
            "BYOK Dashboard: no users yet.",
            f"First-run setup code: {code}",
            "Open the app in a browser and enter this code to create the first admin.",
            "(It works once; restarting the server prints a new one.)",
        ])
    return rt


def warm_up() -> None:
    """Open the runtime at server start so the setup code is printed before the first visit, and
    start this process's key watch (one daemon thread; ``BYOK_KEY_WATCH=off`` leaves it to cron)."""
    try:
        rt = get_runtime()
        if rt.settings.key_watch:
            keywatch.run_in_background(rt)
    except ConfigError as exc:
        _banner([f"BYOK Dashboard cannot start: {exc}"])
    except Exception:  # the page shows a plain message; the console gets the details
        traceback.print_exc()


def open_or_explain() -> Runtime:
    """The runtime, or a plain-words explanation on the page (never a traceback)."""
    try:
        return get_runtime()
    except ConfigError as exc:
        st.error(md_escape(str(exc)), title="The server is not configured correctly", icon=":material/settings_alert:")
        st.caption("An operator needs to fix the configuration and restart the app.")
    except Exception:
        traceback.print_exc()
        st.error("The app could not open its database. The server's console has the details.",
                 title="The server is not available", icon=":material/database:")
    st.stop()
    raise AssertionError("unreachable")
