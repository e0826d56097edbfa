"""``python tests/e2e/slow_sign_in.py -m streamlit run …``: the app on a server that is slow just after
it asks the browser to prove its sign-in (``byok_ui.state._browser_binding``), as a busy server is.
The browser's answer then reruns the script before the browser has heard which page the first run
shows, which is the race ``byok_ui.shell._to_asked_page`` settles."""

import runpy
import sys
import time

from byok_ui import state

_probe = state._browser_binding


def _slow_probe() -> str | None:
    answer = _probe()
    if answer is None:  # the first run: the answer is on its way
        time.sleep(1)
    return answer


state._browser_binding = _slow_probe
assert sys.argv[1:3] == ["-m", "streamlit"], sys.argv
sys.argv = ["streamlit", *sys.argv[3:]]
runpy.run_module("streamlit", run_name="__main__", alter_sys=True)
