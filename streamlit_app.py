"""BYOK Dashboard server: `streamlit run streamlit_app.py`.

``streamlit run`` finds ``app = st.App(...)`` below and serves it with uvicorn. On top of the
Streamlit UI (the script byok_ui/entrypoint/app.py, which runs the page shell on every rerun) it
adds:

* ``POST /byok/session`` and ``POST /byok/signout``: set and clear the HttpOnly session cookie;
* security headers on every HTTP response;
* Streamlit's own ``/_stcore/metrics`` only with the ``/metrics`` token;
* Streamlit's ``/media/`` files (downloads, images) only for a signed-in browser;
* single sign-on that returns to the page it started from;
* a start-up hook that opens the database (migrating it) and prints the first-run setup code;
* a script-error handler that logs the traceback to the console and shows users a plain message.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from byok_ui.server import (
    ROUTES,
    MediaNeedsSession,
    SecurityHeaders,
    SignOnReturnsToPage,
    StreamlitMetricsNeedToken,
)

SCRIPT = Path(__file__).resolve().parent / "byok_ui" / "entrypoint" / "app.py"


@asynccontextmanager
async def lifespan(_app: st.App) -> AsyncIterator[None]:
    import anyio

    from byok_ui.process import warm_up

    await anyio.to_thread.run_sync(warm_up)
    yield


def on_script_error(exc: BaseException) -> bool:
    import traceback

    from byok_core.db import storage_error

    traceback.print_exception(exc)
    problem = storage_error(exc)  # a full disk, a read-only file, a database that is down: say which
    st.error(str(problem) if problem else "Something went wrong on the server. Try again; if it keeps happening, "
             "tell an admin.", icon=":material/error:")
    return True


app = st.App(str(SCRIPT), routes=ROUTES,
             middleware=[Middleware(StreamlitMetricsNeedToken), Middleware(MediaNeedsSession),
                         Middleware(SecurityHeaders), Middleware(SignOnReturnsToPage)],
             lifespan=lifespan, on_script_error=on_script_error)
