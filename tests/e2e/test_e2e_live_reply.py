"""The live reply's fragment, seen on the websocket as a browser's tab sees it (tests/e2e/wsclient.py,
the client bench/load.py drives): while the reply is written its short runs draw Stop beside the
box; the run that sees it end draws it finished (no Stop, the line on who paid), and only the run
after that is the whole page's (Regenerate). So the last words and the line under them do not wait
for a whole page run, nor do other people's."""

from __future__ import annotations

import secrets

import pytest
from conftest import REPLY
from wsclient import live_reply

from byok_core import accounts, keys
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider
from byok_core.startup import open_runtime

pytestmark = pytest.mark.e2e


def test_the_fragment_draws_the_finished_reply_and_the_page_runs_after(server, openai):
    rt = open_runtime(server.env, migrate=False)
    try:
        name = f"live-{secrets.token_hex(4)}"
        user = accounts.create_user(rt, Actor.operator(), name, "member password 1")
        keys.store(rt, Actor.of(user), Owner.user(user.id), Provider.OPENAI, f"sk-e2e-fake-{name}-0123456789")
        binding = secrets.token_urlsafe(32)
        cookie = f"byok_session={accounts.create_session(rt, user, binding=binding)}"
    finally:
        rt.engine.dispose()
    sent, streaming, runs = live_reply(server.url, cookie, binding, "Is the fragment drawing it?", openai.gate)
    assert "Stop" in sent.text()
    assert "Stop" in streaming.text() and "Paid by" not in streaming.text()
    texts = [r.text() for r in runs]
    done = next(i for i, text in enumerate(texts) if "Paid by" in text)
    assert REPLY.split()[-1] in texts[done] and "Stop" not in texts[done]  # the fragment's run
    assert "Regenerate" not in texts[done]
    assert "Regenerate" in texts[done + 1] and len(runs) == done + 2  # then the whole page's, the timer's last
