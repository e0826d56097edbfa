"""The audit log as admins read it: filtered by who, what and when (byok_core.audit.AuditFilter), on the
Admin page (byok_ui/audit_view.py) and in its CSV export, which keeps the log's sentences."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import sqlalchemy as sa
from apptest import make_user, page_as
from sqlmodel import Session

from byok_core import accounts, audit, words
from byok_core.audit import AuditAction, AuditFilter, Target
from byok_core.clock import utcnow
from byok_core.identity import Actor, Owner
from byok_core.models import AuditEvent
from byok_core.providers import Provider


def seed(rt) -> None:
    """root made mia's account today; the operator set a price and root saved a key 40 days ago."""
    with Session(rt.engine) as session, session.begin():
        audit.record(session, "operator", AuditAction.PRICE_SET, Target(provider=Provider.BRAVE), usd=0.004,
                     detail="=HYPERLINK(1)")  # a detail a spreadsheet would run
        audit.record(session, "root", AuditAction.KEY_STORE, Target(owner=Owner.team(), provider=Provider.OPENAI,
                                                                    key_row_id="abc123", mask="sk-…a1b2"))
    with rt.engine.begin() as conn:
        conn.execute(sa.update(AuditEvent).values(ts=utcnow() - timedelta(days=40)))
    root = accounts.find_user(rt, "root")
    accounts.create_user(rt, Actor.of(root), "mia", "mia password 1")


def test_filters_by_who_what_and_when(rt):
    make_user(rt, "root", admin=True)
    seed(rt)
    everything = [e.action for e in audit.recent(rt)]
    assert everything[0] == "user.create" and len(everything) == 4  # root's own creation by the operator too
    assert [e.action for e in audit.recent(rt, flt=AuditFilter(actors=["root"]))] == ["user.create", "key.store"]
    assert [e.actor for e in audit.recent(rt, flt=AuditFilter(actions=[AuditAction.PRICE_SET]))] == ["operator"]
    today = utcnow().date()
    assert [e.username for e in audit.recent(rt, flt=AuditFilter(since=today - timedelta(days=1)))] == ["mia"]
    old = AuditFilter(until=today - timedelta(days=39))
    assert [e.action for e in audit.recent(rt, flt=old)] == ["key.store", "price.set", "user.create"]
    assert audit.count(rt, old) == 3 and audit.count(rt) == 4
    assert audit.actors(rt) == ["operator", "root"]


def test_the_csv_export_has_the_sentences_and_no_formula(rt):
    make_user(rt, "root", admin=True)
    seed(rt)
    out = io.StringIO()
    names = {u.id: u.username for u in accounts.list_users(rt) if u.id is not None}
    assert audit.write_csv(rt, AuditFilter(), out, lambda e: words.audit_sentence(e, names)) == 4
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == audit.CSV_COLUMNS
    assert [(r["actor"], r["action"]) for r in rows] == [  # oldest first
        ("operator", "user.create"), ("operator", "price.set"), ("root", "key.store"), ("root", "user.create")]
    assert rows[2]["what_happened"] == words.audit_sentence(audit.recent(rt)[1], names)
    assert "OpenAI" in rows[2]["what_happened"] and rows[2]["mask"] == "sk-…a1b2" and rows[3]["username"] == "mia"
    assert rows[1]["detail"] == "'=HYPERLINK(1)"  # shown as text, never run as a formula
    only_root = io.StringIO()
    assert audit.write_csv(rt, AuditFilter(actors=["root"]), only_root, str) == 2


def shown_log(at) -> list[str] | None:
    """The audit table's sentences, None when no table is shown."""
    found = [d.value for d in at.dataframe if "What happened" in d.value]
    return list(found[0]["What happened"]) if found else None


def test_the_admin_page_filters_and_exports(app, rt):
    root = make_user(rt, "root", admin=True)
    seed(rt)
    at = page_as(rt, root, "admin")
    assert len(shown_log(at)) == 4 and "4 events, newest first; times in UTC." in [c.value for c in at.caption]
    who = at.multiselect(key="audit_who")
    assert list(who.options) == ["An operator (command line)", "root"]
    who.set_value(["operator"]).run()
    assert [s.startswith("An operator (command line)") for s in shown_log(at)] == [True, True]
    what = at.multiselect(key="audit_what")
    assert "Changed a price" in what.options and "price.set" not in what.options
    what.set_value([AuditAction.PRICE_SET.value]).run()
    assert len(shown_log(at)) == 1
    today = utcnow().date()
    at.date_input(key="audit_when").set_value((today, today)).run()
    assert shown_log(at) is None
    assert [i.value for i in at.info] == ["No events with these filters."]
