"""Migration 0010 reads the target and detail texts the earlier releases wrote into an audit event's
fields, on SQLite and PostgreSQL: each event reads as the sentence the Admin page showed before, a
text in no form a release wrote is kept as written, and the migration goes back down and up again."""

from __future__ import annotations

import first_release
import sqlalchemy as sa
from alembic import command
from sqlmodel import Session, col, select

from byok_core import db, words
from byok_core.audit import Target
from byok_core.identity import Owner, Role
from byok_core.models import AuditEvent
from byok_core.providers import Provider as P

NAMES = {5: "bob", 1: "admin"}
BOBS, TEAM = Owner.user(5), Owner.team()
ROW = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"

# (actor, action, target, detail) as releases up to 0009 wrote them -> the sentence the Admin page
# showed (0009's words.py parsed these texts back), and the fields 0010 reads from them.
WRITTEN = [
    (("admin", "key.store", f"team brave {ROW}", "mask bra…ab12"), "admin saved the team's Brave Search key bra…ab12",
     Target(owner=TEAM, provider=P.BRAVE, key_row_id=ROW, mask="bra…ab12"), None, ""),
    (("bob", "key.replace", "user 5 openai 0a1b", "mask sk-…9f3c"), "bob replaced their own OpenAI key with sk-…9f3c",
     Target(owner=BOBS, provider=P.OPENAI, key_row_id="0a1b", mask="sk-…9f3c"), None, ""),
    (("bob", "key.replace", "user 5 openai 0a1b", "mask sk-…9f3c (a replaced key, restored)"),
     "bob replaced their own OpenAI key with sk-…9f3c (a replaced key, restored)",
     Target(owner=BOBS, provider=P.OPENAI, key_row_id="0a1b", mask="sk-…9f3c"), None, "a replaced key, restored"),
    (("admin", "key.delete", "user 5 anthropic 0a1b", "mask sk-…9f3c"), "admin deleted bob's Anthropic key sk-…9f3c",
     Target(owner=BOBS, provider=P.ANTHROPIC, key_row_id="0a1b", mask="sk-…9f3c"), None, ""),
    (("system", "key.delete", "user 5 openai 0a1b", "mask …12, replaced more than 30 days ago"),
     "The app deleted bob's OpenAI key …12 (replaced more than 30 days ago)",
     Target(owner=BOBS, provider=P.OPENAI, key_row_id="0a1b", mask="…12"), None, "replaced more than 30 days ago"),
    (("operator", "key.delete", "user:5 tavily 0a1b", "forgotten: no configured master key opens it (bad tag)"),
     "An operator (command line) deleted bob's Tavily key (forgotten: no configured master key opens it (bad tag))",
     Target(owner=BOBS, provider=P.TAVILY, key_row_id="0a1b"), None,
     "forgotten: no configured master key opens it (bad tag)"),
    (("operator", "key.rotate", "team:0 tavily 0a1b", "from master key a to b"),
     "An operator (command line) re-encrypted the team's Tavily key under the new master key",
     Target(owner=TEAM, provider=P.TAVILY, key_row_id="0a1b"), None, "from master key a to b"),
    (("system", "key.decrypt_failed", "user:7 openai 0a1b", "wrong master key"),
     "The app could not decrypt a removed account's OpenAI key: wrong master key",
     Target(owner=Owner.user(7), provider=P.OPENAI, key_row_id="0a1b"), None, "wrong master key"),
    (("operator", "user.create", "bob", "role member"), "An operator (command line) created bob's account as a member",
     Target(username="bob", role=Role.MEMBER), None, ""),
    (("setup", "user.create", "admin", "role admin (first-run setup)"),
     "First-run setup created admin's account as an admin",
     Target(username="admin", role=Role.ADMIN), None, "first-run setup"),
    (("admin", "user.role", "bob", "role admin"), "admin made bob an admin",
     Target(username="bob", role=Role.ADMIN), None, ""),
    (("oidc", "user.role", "bob", "role admin (single sign-on groups)"),
     "Single sign-on made bob an admin from their single sign-on groups",
     Target(username="bob", role=Role.ADMIN), None, "from their single sign-on groups"),
    # 0009 said "sent no groups" whichever claim was missing
    (("oidc", "user.role", "ann@example.com", "role member (single sign-on: no 'roles' claim)"),
     "Single sign-on made ann@example.com a member because their single sign-on sent no 'roles' claim",
     Target(username="ann@example.com", role=Role.MEMBER), None, "because their single sign-on sent no 'roles' claim"),
    (("admin", "user.disable", "bob", ""), "admin disabled bob's account", Target(username="bob"), None, ""),
    (("bob", "user.password", "bob", ""), "bob changed their password", Target(username="bob"), None, ""),
    (("system", "user.throttled", "bob", "3 failures"),
     "Sign-ins to bob's account were slowed down after 3 failed tries", Target(username="bob"), None, "3 failed tries"),
    (("admin", "user.rename", "robert", "from bob"), "admin renamed bob to robert",
     Target(username="robert"), None, "bob"),
    (("admin", "budget.set", "user 5", "$1,025.00 a month"),
     "admin set bob's budget on shared keys to $1,025.00 a month", Target(owner=BOBS), 1025.0, ""),
    (("admin", "budget.clear", "team", ""), "admin removed the team's budget on shared keys", Target(owner=TEAM), None,
     ""),
    (("admin", "limits.set", "shared keys", "5 per user, no limit for the team, per minute"),
     "admin set the rate limits on shared keys: 5 per user, no limit for the team, per minute",
     Target(), None, "5 per user, no limit for the team, per minute"),
    (("admin", "models.set", "role:member openai", "gpt-4o-mini, gpt-4.1*"),
     "admin let members use only these OpenAI models on shared keys: gpt-4o-mini, gpt-4.1*",
     Target(role=Role.MEMBER, provider=P.OPENAI), None, "gpt-4o-mini, gpt-4.1*"),
    (("admin", "models.set", "user:5 anthropic", "any model"), "admin let bob use any Anthropic model on shared keys",
     Target(owner=BOBS, provider=P.ANTHROPIC), None, ""),
    (("admin", "alerts.set", "webhook", "hooks.example.com"),
     "admin set the budget alert webhook to an address at hooks.example.com", Target(), None, "hooks.example.com"),
    (("admin", "alerts.set", "webhook", "removed"), "admin removed the budget alert webhook", Target(), None, ""),
    (("admin", "price.set", "search brave", "0.0075"), "admin set the price of a Brave Search request to $0.0075",
     Target(provider=P.BRAVE), 0.0075, ""),
    (("operator", "price.set", "model openai my tuned model", "0.02"),
     "An operator (command line) set the per-call price of OpenAI model my tuned model to $0.0200",
     Target(provider=P.OPENAI, model="my tuned model"), 0.02, ""),
    (("admin", "price.set", "model anthropic x", "removed"), "admin removed the per-call price of Anthropic model x",
     Target(provider=P.ANTHROPIC, model="x"), None, ""),
]
# 0009 showed the address of this one as "re-encrypted under master key 4b1d…"; it becomes its own action
REKEYED = (("operator", "alerts.set", "webhook", "re-encrypted under master key 4b1d"),
           "An operator (command line) re-encrypted the budget alert webhook under the new master key")
# In no form a release wrote: the action's plain words, as 0009 showed them; the texts are kept.
UNREAD = [
    (("admin", "price.set", "search brave", "removed"), "admin changed a price"),
    (("admin", "price.set", "model x y", "1"), "admin changed a price"),
    (("admin", "price.set", "model openai", "1"), "admin changed a price"),
    (("admin", "user.create", "team brave 6d0eb0c1", ""), "admin created an account"),
    (("admin", "budget.set", "team brave 6d0eb0c1", ""), "admin set a budget"),
    (("admin", "key.store", "user 5 nosuchprovider 0a1b", "mask sk-…9f3c"), "admin saved a key"),
    (("admin", "thing.done", "something", "whatever"), "admin thing.done"),
]


def _events(engine: sa.Engine) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.id))))


def _texts(engine: sa.Engine) -> list[tuple[str, str, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT actor, action, target, detail FROM audit_events "
                                                       "ORDER BY id"))]


def test_audit_texts_become_fields_and_read_as_before(empty_database):
    rows = [written for written, *_ in WRITTEN] + [REKEYED[0]] + [written for written, _ in UNREAD]
    engine = db.create_engine(empty_database)
    try:
        with engine.begin() as conn:
            command.upgrade(db._alembic_config(conn), "0009")
            conn.execute(sa.text("INSERT INTO audit_events (ts, actor, action, target, detail) VALUES "
                                 "(CURRENT_TIMESTAMP, :a, :b, :c, :d)"),
                         [dict(zip("abcd", row, strict=True)) for row in rows])
            command.upgrade(db._alembic_config(conn), "0010")
        events = _events(engine)
        assert len(events) == len(rows)  # no row lost
        assert [words.audit_sentence(e, NAMES) for e in events] == (
            [sentence for _, sentence, *_ in WRITTEN] + [REKEYED[1]] + [sentence for _, sentence in UNREAD])
        read, rekeyed, unread = events[:len(WRITTEN)], events[len(WRITTEN)], events[len(WRITTEN) + 1:]
        assert [(Target.of(e), e.usd, e.detail, e.old_target) for e in read] == [
            (target, usd, detail, None) for _, _, target, usd, detail in WRITTEN]
        assert (rekeyed.action, rekeyed.detail, Target.of(rekeyed)) == ("alerts.rotate", "to master key 4b1d", Target())
        assert [(e.actor, e.action, e.old_target, e.detail) for e in unread] == [written for written, _ in UNREAD]
        assert all(Target.of(e) == Target() and e.usd is None for e in unread)

        with engine.begin() as conn:  # and back: 0009's texts, which read as the same fields again
            command.downgrade(db._alembic_config(conn), "0009")
        assert _texts(engine)[len(WRITTEN) + 1:] == [written for written, _ in UNREAD]
        with engine.begin() as conn:
            command.upgrade(db._alembic_config(conn), "0010")
        assert [(e.action, Target.of(e), e.usd, e.detail, e.old_target) for e in _events(engine)] == [
            (e.action, Target.of(e), e.usd, e.detail, e.old_target) for e in events]
    finally:
        engine.dispose()


def test_the_first_releases_audit_log_reads_as_it_did(empty_database):
    first_release.load(empty_database)
    engine = db.create_engine(empty_database)
    try:
        with engine.begin() as conn:
            command.upgrade(db._alembic_config(conn), "head")
        events = _events(engine)
        team_keys = ["OpenAI key sk-…cdef", "Anthropic key sk-…6789", "Google Gemini key AIf…cdef",
                     "OpenAI-compatible key sk-…6789", "Firecrawl key fc-…6789", "Brave Search key fak…cdef",
                     "Tavily key tvl…6789", "Serper key fak…cdef"]
        assert [words.audit_sentence(e, {1: "alice", 2: "bob"}) for e in events] == [
            "An operator (command line) created alice's account as an admin",
            "An operator (command line) created bob's account as a member",
            *(f"An operator (command line) saved the team's {key}" for key in team_keys),
            "bob saved their own OpenAI key sk-…cdef", "bob saved their own OpenAI-compatible key sk-…6789",
            "An operator (command line) set the team's budget on shared keys to $200.00 a month",
            "An operator (command line) set bob's budget on shared keys to $25.00 a month"]
        stored = {row["id"]: row for row in first_release.TABLES["audit_events"]}
        assert all(e.old_target is None and e.key_row_id in (None, *stored[e.id]["target"].split()) for e in events)
    finally:
        engine.dispose()
