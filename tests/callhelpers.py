"""Helpers for tests that make provider calls against tests/fakeproviders.py servers."""

from __future__ import annotations

import base64
import os
import re
import threading
import warnings
from contextlib import contextmanager

import sqlalchemy as sa
from sqlmodel import Session, col, select

from byok_core import accounts, audit, budgets, conversations, keys, replies, usage_log
from byok_core.audit import AuditAction
from byok_core.errors import CallStatus
from byok_core.identity import Actor, KeySource, Owner, Role
from byok_core.models import ApiKey, Message, ReplyStatus, UsageRecord
from byok_core.providers import Provider
from byok_core.record import CallRecord
from byok_core.startup import open_runtime


@contextmanager
def runtime_with(environ: dict, **extra: str):
    """A runtime on the test database with extra environment (base URLs, env keys, timeouts)."""
    rt = open_runtime({**environ, **extra}, migrate=False)  # the test database is migrated already
    try:
        yield rt
    finally:
        rt.engine.dispose()


def usage_rows(rt) -> list[UsageRecord]:
    with Session(rt.engine) as session:
        return list(session.exec(select(UsageRecord).order_by(col(UsageRecord.id))))


def dump_database(rt) -> str:
    """Every value in every table, as text."""
    out = []
    with rt.engine.connect() as conn:
        meta = sa.MetaData()
        with warnings.catch_warnings():  # expression-based indexes cannot be reflected; rows can
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            meta.reflect(bind=conn)
        for table in meta.sorted_tables:
            for row in conn.execute(sa.select(table)):
                out.append(" ".join(str(v) for v in row))
    return "\n".join(out)


def log_call(rt, **fields) -> CallRecord:
    """Write one usage row as a finished call would (``calls.metered`` does this for real calls); a
    shared-key call counts its cost against budgets, the running figures rebuilt from the log."""
    record = CallRecord(**fields)
    with rt.engine.begin() as conn:
        row_id = usage_log.start(conn, record)
        usage_log.complete(conn, row_id, record)
        if record.key_source.shared:
            conn.execute(sa.update(UsageRecord).where(col(UsageRecord.id) == row_id)
                         .values(charged_usd=record.cost_usd or 0.0))
    if record.key_source.shared:
        budgets.reconcile(rt)
    return record


def sealed_by_version_1(keyring, plain: str, context: str) -> str:
    """A stored value as the first version sealed it: associated data of owner, provider and row
    only (no base URL), header ``v1``."""
    header = f"v1:{keyring.primary.key_id}"
    nonce = os.urandom(12)
    sealed = keyring.primary.aead.encrypt(nonce, plain.encode(), f"{header}|{context}".encode())
    return f"{header}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"


# --- every kind of value a page can show, and the raw spellings none may show ---------------------

PAGES = {"admin": ["Chat", "Search", "Keys", "Usage", "Account", "Admin", "Budgets"],
         "member": ["Chat", "Search", "Keys", "Usage", "Account"]}
_EDGE = r"(?<![\w./-]){}(?![\w./-])"
RAW = re.compile("|".join([
    *(re.escape(s.value) for s in CallStatus if "_" in s.value),
    *(re.escape(a.value) for a in AuditAction),
    *(_EDGE.format(re.escape(p.value)) for p in Provider),
    *(_EDGE.format(w) for w in ("env", "None", "nan", "NaN", "NaT", "<NA>", "pending", "streaming")),
    r"key_source", r"\b[a-z]+_tokens\b", r"latency_ms", r"cost_usd", r"user_id", r"unknown_cost_calls",
    r"(?m:^count$)",  # a chart's axis titled after the column it counts
    re.escape("(no user)"),
]))


def seed_every_kind(rt, admin: tuple[str, str], member: tuple[str, str]) -> None:
    """A bit of everything: calls of every status and payer on every provider, a CLI call, failed
    and stopped replies, keys with test results, budgets, and an audit event of every action."""
    boss = accounts.create_user(rt, Actor.operator(), *admin, Role.ADMIN)
    mia = accounts.create_user(rt, Actor.operator(), *member)
    keys.store(rt, Actor.of(boss), Owner.team(), Provider.BRAVE, "brave-team-key-0123456789")
    keys.store(rt, Actor.of(mia), Owner.user(mia.id), Provider.OPENAI, "sk-mia-key-0123456789abcd")
    keys.store(rt, Actor.of(mia), Owner.user(mia.id), Provider.TAVILY, "tvly-mia-key-0123456789abcd")
    with rt.engine.begin() as conn:  # keys whose last test failed in two ways
        conn.execute(sa.update(ApiKey).where(col(ApiKey.provider) == Provider.OPENAI)
                     .values(last_test_status=CallStatus.KEY_REJECTED))
        conn.execute(sa.update(ApiKey).where(col(ApiKey.provider) == Provider.TAVILY)
                     .values(last_test_status=CallStatus.PROVIDER_DOWN))
    budgets.set_budget(rt, Actor.operator(), Owner.user(mia.id), 5)
    statuses = list(CallStatus)
    for i, provider in enumerate(Provider):
        for j, source in enumerate(KeySource):
            status = statuses[(i + j) % len(statuses)]
            log_call(rt, user_id=None if (i, j) == (0, 2) else (mia.id if j % 2 else boss.id), provider=provider,
                     model="" if provider.kind == "search" else "some-model", key_source=source, status=status,
                     input_tokens=None if i % 2 else 120, output_tokens=None if i % 2 else 30,
                     cost_usd=None if i % 3 == 0 else 0.0123, latency_ms=1234)
    conv = conversations.create(rt, mia.id, "Mixed turns")
    conversations.add_message(rt, mia.id, conv.id, "user", "one")
    failed = CallRecord(Provider.OPENAI, KeySource.USER, "gpt-4o-mini", mia.id, status=CallStatus.PROVIDER_DOWN,
                        error="OpenAI is overloaded or having trouble right now; try again in a minute.")
    conversations.add_message(rt, mia.id, conv.id, "assistant", "",
                              conversations.reply_meta(failed, error=failed.error))
    with rt.engine.begin() as conn:
        conn.execute(sa.update(Message).where(col(Message.role) == "assistant").values(status=ReplyStatus.FAILED))
    with Session(rt.engine) as session, session.begin():
        for action in AuditAction:
            audit.record(session, admin[0], action, audit.Target(owner=Owner.team(), provider=Provider.BRAVE,
                                                                 key_row_id="6d0eb0c1"))


def follow_to_end(reply_id: int) -> None:
    """Wait until the reply a worker in this process writes has ended (at once if none does)."""
    running = replies.live(reply_id)
    for _ in running.follow() if running else ():
        pass


def finished(rt, user_id: int, reply_id: int) -> conversations.StoredMessage:
    """The reply as stored once its worker has ended."""
    follow_to_end(reply_id)
    return replies.reply(rt, user_id, reply_id)


@contextmanager
def counted(engine):
    """The statements the app sends while the block runs (the heartbeat thread's, which beats for
    every running reply every few seconds whatever it does, left out)."""
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if threading.current_thread().name != "byok-reply-heartbeat":
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
