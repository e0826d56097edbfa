"""The websocket client bench/load.py drives the app with (tests/e2e/wsclient.py) signs in the way
a browser's page does: its session cookie counts once it answers the sign-in probe with the secret
the session is bound to, and a tab holding another secret is refused. A bench that stops signing in
measures the sign-in page, so this fails first.

    pytest -m e2e tests/e2e/test_wsclient.py
"""

from __future__ import annotations

import secrets
import time

import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from wsclient import Run, Tab, Timer, first_page

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


# The tab's fragment timers and the end of an action, as Streamlit's frontend has them (its App's
# handleAutoRerun: a setInterval started by the auto_rerun message, kept when one asks again for the
# same interval, cleared by a whole page's run; each firing sends a fragment run whether or not a run
# is going, and the server queues it). bench/load.py follows a live reply on these timers.

def frame(**fields) -> bytes:
    msg = ForwardMsg()
    for name, value in fields.items():
        if name == "auto_rerun":
            msg.auto_rerun.fragment_id, msg.auto_rerun.interval = value
        elif name == "new_session":
            msg.new_session.SetInParent()
            msg.metadata.run.fragment_ids.extend(value)
        else:
            setattr(msg, name, value)
    return msg.SerializeToString()


def test_a_fragment_s_timer_starts_with_its_auto_rerun_message_and_ends_with_a_page_run():
    tab, run = Tab(), Run(time.perf_counter())
    tab.read(run, frame(new_session=[]))
    before = time.perf_counter()
    tab.read(run, frame(auto_rerun=("live", 0.4)))
    due = tab.auto_reruns["live"].due
    assert before + 0.4 <= due <= time.perf_counter() + 0.4  # from the message, not from the run's end
    tab.read(run, frame(script_finished=ForwardMsg.FINISHED_SUCCESSFULLY))
    tab.read(run, frame(new_session=["live"]))  # the fragment's own run asks again: the same timer
    tab.read(run, frame(auto_rerun=("live", 0.4)))
    assert tab.auto_reruns["live"].due == due
    tab.read(run, frame(new_session=[]))
    assert tab.auto_reruns == {}


def test_a_late_timer_fires_once_and_keeps_its_beat():
    timer = Timer(0.4, due=10.0)
    timer.fire(now=11.0)  # three beats missed (a busy tab): one firing, the next on the beat
    assert timer.due == pytest.approx(11.2)


def test_a_fragment_s_run_ends_a_fragment_action_only():
    page, fragment = Run(time.perf_counter()), Run(time.perf_counter(), fragment=True)
    for run in (page, fragment):
        tab = Tab()
        tab.read(run, frame(new_session=["live"]))  # a run of the fragment queued before the action's
        tab.read(run, frame(script_finished=ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY))
    assert page.finished is None and fragment.finished is not None
    tab.read(page, frame(new_session=[]))
    tab.read(page, frame(script_finished=ForwardMsg.FINISHED_SUCCESSFULLY))
    assert page.finished is not None
