"""A call whose process is killed mid-reply (kill -9: no finally runs) leaves its usage row not
finished. It is closed once it cannot still be running, charged the worst case it reserved, so the
text the provider streamed and billed counts against the budget after all."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from callhelpers import runtime_with, usage_rows
from fakeproviders import FakeProvider

from byok_core import budgets, usage_log
from byok_core.clock import utcnow
from byok_core.errors import CallStatus
from byok_core.identity import Actor, Owner
from byok_core.models import Reservation
from byok_core.providers import Provider
from byok_core.startup import open_runtime

ENV_KEY = "sk-fake.env-ABANDONED-eeeeeeeeeeeeeeeeeeee2222"
ROOT = Path(__file__).resolve().parents[1]


def _chat_killed_mid_reply(environ, server) -> None:
    """`byok chat` in a process of its own, killed (SIGKILL) while the provider is half-way."""
    env = {**os.environ, **environ, **server.env(), "OPENAI_API_KEY": ENV_KEY}
    proc = subprocess.Popen([sys.executable, "-m", "byok_core", "chat", "--provider", "openai", "--", "hi"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stdout.read(6) == b"alpha "  # the first text arrived
    finally:
        proc.kill()
        proc.wait(10)


def test_a_killed_call_is_closed_and_charged_its_worst_case(environ):
    with runtime_with(environ) as rt:
        budgets.set_budget(rt, Actor.operator(), Owner.team(), 50)
    with FakeProvider(Provider.OPENAI, reply="alpha beta gamma", hold_after=1) as server:
        _chat_killed_mid_reply(environ, server)
    with runtime_with(environ) as rt:
        [row] = usage_rows(rt)
        assert row.status == CallStatus.PENDING and row.charged_usd is None and row.reserved_usd > 0
        assert usage_log.close_abandoned(rt) == 0  # it could still be running in another process
        settings = rt.settings
        later = utcnow() + timedelta(seconds=settings.connect_timeout + settings.read_timeout
                                     + settings.call_deadline + 61)
        assert usage_log.close_abandoned(rt, now=later) == 1
        assert usage_log.close_abandoned(rt, now=later) == 0  # closed once
        [row] = usage_rows(rt)
        assert (row.status, row.charged_usd) == (CallStatus.CUT_OFF, row.reserved_usd)
        assert "server stopped" in row.error
        [team] = [line for line in budgets.spend_report(rt) if line.owner == Owner.team()]
        assert (team.spent_usd, team.reserved_usd) == (row.reserved_usd, 0.0)  # counted once, not also reserved
        assert budgets.reconcile(rt, fix=False) == []
        with rt.engine.connect() as conn:
            assert conn.execute(Reservation.__table__.select()).all() == []


def test_every_start_closes_what_a_killed_process_left(environ, monkeypatch):
    with FakeProvider(Provider.OPENAI, reply="alpha beta gamma", hold_after=1) as server:
        _chat_killed_mid_reply(environ, server)
    monkeypatch.setattr(usage_log, "utcnow", lambda: utcnow() + timedelta(hours=1))  # an hour later
    rt = open_runtime(environ)
    try:
        assert [row.status for row in usage_rows(rt)] == [CallStatus.CUT_OFF]
    finally:
        rt.engine.dispose()
