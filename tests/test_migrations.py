"""An existing install upgrades in place: every migration runs on a database holding data, on
SQLite and PostgreSQL, and keeps that data."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from callhelpers import sealed_by_version_1

from byok_core import accounts, budgets, connections, db, keys, vault
from byok_core.accounts import passwords
from byok_core.cli import main as cli_main_argv
from byok_core.clock import utcnow
from byok_core.errors import ValidationError
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider
from byok_core.startup import open_runtime

PG_URL = os.environ.get("TEST_DATABASE_URL", "")  # as tests/conftest.py reads it
ENGINES = ["sqlite"] + (["postgresql"] if PG_URL else [])


def cli_main(argv: list[str], environ: dict[str, str]) -> int:
    """`byok ...` in this process, with ``environ`` as the machine's environment."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("ENCRYPTION_KEY_FILE", "ENCRYPTION_KEY_FALLBACKS"):
            mp.delenv(name, raising=False)
        for name, value in environ.items():
            mp.setenv(name, value)
        return cli_main_argv(argv)
KEY = "sk-fake.first-format-0123456789abcdef1111"


def wide(text: str) -> str:
    """``text`` in full-width letters (U+FF01 to U+FF5E), which NFKC turns back into plain ones."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def test_budgets_move_to_owners_and_keep_working(empty_database, tmp_path, master_key):
    engine = db.create_engine(empty_database)
    with engine.begin() as conn:  # an install at 0001 with a team budget and a user's budget
        command.upgrade(db._alembic_config(conn), "0001")
        conn.execute(sa.text("INSERT INTO users (username, password_hash, role, disabled, created_at, "
                             "password_changed_at, failed_logins) VALUES ('ann', 'x', 'member', false, "
                             "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"))
        ann = conn.execute(sa.text("SELECT id FROM users")).scalar_one()
        conn.execute(sa.text("INSERT INTO budgets (user_id, monthly_usd) VALUES (NULL, 200), (:ann, 25)"), {"ann": ann})
    engine.dispose()

    rt = open_runtime({"BYOK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": empty_database,
                       "ENCRYPTION_KEY": master_key})  # the app's start: migrates to head
    try:
        assert db.current_revision(rt.engine) == db.head_revision()
        report = {line.owner: line.budget_usd for line in budgets.spend_report(rt)}
        assert report == {Owner.team(): 200.0, Owner.user(ann): 25.0}
        budgets.set_budget(rt, Actor.operator(), Owner.user(ann + 1), 5.0)  # new rows get fresh ids
        budgets.set_budget(rt, Actor.operator(), Owner.team(), 300.0)  # and the owner stays unique
        assert {line.owner: line.budget_usd for line in budgets.spend_report(rt)}[Owner.team()] == 300.0
        with rt.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM budgets")).scalar_one() == 3
    finally:
        rt.engine.dispose()


def test_first_format_keys_are_rebound_to_their_base_url_on_the_first_start(empty_database, tmp_path, master_key):
    environ = {"BYOK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": empty_database, "ENCRYPTION_KEY": master_key}
    keyring = open_runtime(environ, migrate=False).keyring
    engine = db.create_engine(empty_database)
    compatible, openai = uuid.uuid4().hex, uuid.uuid4().hex
    with engine.begin() as conn:  # an install at 0002 holding keys sealed by the first version
        command.upgrade(db._alembic_config(conn), "0002")
        for row_id, provider, base_url in ((compatible, "openai-compatible", "https://llm.example.com/v1"),
                                           (openai, "openai", "https://planted.example/v1")):
            conn.execute(sa.text(
                "INSERT INTO api_keys (id, owner_kind, owner_id, provider, label, ciphertext, key_id, mask, base_url, "
                "active, created_at, updated_at) VALUES (:id, 'team', 0, :provider, '', :ciphertext, :key_id, "
                "'sk-…1111', :base_url, true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                {"id": row_id, "provider": provider, "base_url": base_url, "key_id": keyring.primary.key_id,
                 "ciphertext": sealed_by_version_1(keyring, KEY, f"team:0|{provider}|{row_id}")})
    engine.dispose()

    rt = open_runtime(environ)  # the first start of this version: migrations, then the re-sealing
    try:
        assert vault.scan(rt).unreadable == []
        for provider, base_url in ((Provider.OPENAI_COMPATIBLE, "https://llm.example.com/v1"),
                                   (Provider.OPENAI, "https://api.openai.com/v1")):  # the planted URL is gone
            resolved = keys.resolve(rt, None, provider)
            assert (resolved.credential.secret.reveal(), resolved.credential.base_url) == (KEY, base_url)
        with rt.engine.connect() as conn:
            assert all(v.startswith("v2:") for v in conn.execute(sa.text("SELECT ciphertext FROM api_keys")).scalars())
    finally:
        rt.engine.dispose()


def test_the_running_monthly_spend_is_built_from_the_existing_log(empty_database, tmp_path, master_key):
    engine = db.create_engine(empty_database)
    now = utcnow()
    last_month = (now.replace(day=1) - timedelta(days=1)).replace(hour=12)
    with engine.begin() as conn:  # an install at 0004 with shared-key and own-key calls in two months
        command.upgrade(db._alembic_config(conn), "0004")
        conn.execute(sa.text("INSERT INTO users (username, password_hash, role, disabled, created_at, "
                             "password_changed_at, failed_logins) VALUES ('ann', 'x', 'member', false, "
                             "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"))
        ann = conn.execute(sa.text("SELECT id FROM users")).scalar_one()
        rows = [(ann, "team", 1.25, now), (ann, "env", None, now), (None, "team", 0.5, now),
                (ann, "user", 9.0, now), (ann, "team", 2.0, last_month)]
        for user_id, source, cost, ts in rows:
            conn.execute(sa.text("INSERT INTO usage_records (ts, user_id, kind, provider, model, key_source, "
                                 "latency_ms, status, cost_usd) VALUES (:ts, :u, 'chat', 'openai', 'gpt-4o', :s, "
                                 "1, 'ok', :c)"), {"ts": ts, "u": user_id, "s": source, "c": cost})
    engine.dispose()

    rt = open_runtime({"BYOK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": empty_database,
                       "ENCRYPTION_KEY": master_key})
    try:
        report = {line.owner: line.spent_usd for line in budgets.spend_report(rt)}
        assert report == {Owner.team(): 1.75, Owner.user(ann): 1.25}  # own-key calls never count
        assert budgets.reconcile(rt, fix=False) == []  # last month's figures were built too
        with rt.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT spent_usd FROM budget_months WHERE owner_kind = 'user' AND "
                                        "month = :m"), {"m": budgets.month_of(last_month)}).scalar_one() == 2.0
    finally:
        rt.engine.dispose()


def test_the_revision_the_start_checks_is_the_newest_migration():
    assert db.head_revision() == db.SCHEMA_REVISION


def _add_user(conn, name: str) -> int:
    conn.execute(sa.text("INSERT INTO users (username, password_hash, role, disabled, created_at, "
                         "password_changed_at, failed_logins) VALUES (:n, :h, 'member', false, CURRENT_TIMESTAMP, "
                         "CURRENT_TIMESTAMP, 0)"), {"n": name, "h": passwords.hash_password(f"{name} password")})
    return int(conn.execute(sa.text("SELECT id FROM users WHERE username = :n"), {"n": name}).scalar_one())


def test_usernames_that_collide_are_reported_and_keep_working(empty_database, tmp_path, master_key, capsys, caplog):
    engine = db.create_engine(empty_database)
    with engine.begin() as conn:  # an install at 0006 where case mattered: bob, BOB and Bob are three people
        command.upgrade(db._alembic_config(conn), "0006")
        ids = {name: _add_user(conn, name) for name in ("ann", "bob", "BOB", "Bob", "carl")}
        conn.execute(sa.text("INSERT INTO budgets (owner_kind, owner_id, monthly_usd) VALUES ('user', :id, 7)"),
                     {"id": ids["BOB"]})
    engine.dispose()

    environ = {"BYOK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": empty_database, "ENCRYPTION_KEY": master_key}
    rt = open_runtime(environ)  # the first start of this version: migration 0007
    try:
        assert "the usernames 'bob', 'BOB', 'Bob' now count as one name" in caplog.text  # said at the upgrade
        with rt.engine.connect() as conn:  # nothing merged, nothing lost
            rows = dict(conn.execute(sa.text("SELECT username, username_key FROM users")).all())
        assert rows == {"ann": "ann", "bob": "bob", "BOB": f"bob#{ids['BOB']}", "Bob": f"bob#{ids['Bob']}",
                        "carl": "carl"}
        # each signs in with its exact spelling; any other spelling reaches the oldest
        for typed, owner in (("bob", "bob"), ("BOB", "BOB"), ("Bob", "Bob"), ("bOb", "bob"), (wide("BOb"), "bob"),
                             ("CARL", "carl")):
            assert accounts.authenticate(rt, typed, f"{owner} password").username == owner, typed
        assert accounts.find_user(rt, f"bob#{ids['BOB']}") is None  # the parked key is never typed
        assert {line.owner: line.budget_usd for line in budgets.spend_report(rt)}[Owner.user(ids["BOB"])] == 7.0
        assert [c.usernames for c in accounts.name_clashes(rt)] == [("bob", "BOB", "Bob")]

        # byok doctor lists them as a problem, with what to do
        code = cli_main(["doctor"], environ)
        out = capsys.readouterr().out
        assert code == 1
        assert ("PROBLEM: The usernames 'bob', 'BOB' and 'Bob' now count as one name, so rename all but one of them "
                "with `byok users rename NAME NEW_NAME` or on the Admin page") in out

        # the database refuses a new collision, whatever the app does
        with pytest.raises(sa.exc.IntegrityError), rt.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO users (username, username_key, password_hash, role, disabled, "
                                 "created_at, password_changed_at, failed_logins) VALUES ('bOB', 'bob', 'x', "
                                 "'member', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"))
        with pytest.raises(ValidationError, match="taken"):
            accounts.create_user(rt, Actor.operator(), "bOB", "another password")

        # renaming settles it: when the oldest leaves the name, the next oldest takes the plain key
        accounts.rename_user(rt, Actor.operator(), "BOB", "robert")
        accounts.rename_user(rt, Actor.operator(), "bob", "bobby")
        assert accounts.name_clashes(rt) == []
        assert accounts.authenticate(rt, "BOB", "Bob password").id == ids["Bob"]
        assert accounts.authenticate(rt, "Robert", "BOB password").id == ids["BOB"]
        assert cli_main(["doctor"], environ) == 0
        assert "usernames:   every account has a name of its own" in capsys.readouterr().out
    finally:
        rt.engine.dispose()


def test_usernames_migration_goes_back_down(empty_database):
    engine = db.create_engine(empty_database)
    try:
        with engine.begin() as conn:
            command.upgrade(db._alembic_config(conn), "0006")
            _add_user(conn, "ann")
            command.upgrade(db._alembic_config(conn), "0007")
            command.downgrade(db._alembic_config(conn), "0006")
        assert "username_key" not in {c["name"] for c in sa.inspect(engine).get_columns("users")}
        with engine.begin() as conn:
            command.upgrade(db._alembic_config(conn), "0007")
            assert conn.execute(sa.text("SELECT username_key FROM users")).scalar_one() == "ann"
    finally:
        engine.dispose()


def _member_ann(conn) -> int:
    """The member ann, as a schema since migration 0007 (usernames with their key) holds her: her id."""
    conn.execute(sa.text("INSERT INTO users (username, username_key, password_hash, role, disabled, created_at, "
                         "password_changed_at, failed_logins) VALUES ('ann', 'ann', 'x', 'member', false, "
                         "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"))
    return int(conn.execute(sa.text("SELECT id FROM users WHERE username = 'ann'")).scalar_one())


def test_conversations_keep_working_with_default_settings_and_presets_go_back_down(empty_database):
    """Migration 0011: conversations made before it have the provider's defaults (no system prompt)."""
    engine = db.create_engine(empty_database)
    try:
        with engine.begin() as conn:
            command.upgrade(db._alembic_config(conn), "0010")
            ann = _member_ann(conn)
            conn.execute(sa.text("INSERT INTO conversations (user_id, title, created_at, updated_at) VALUES "
                                 "(:u, 'Before', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"u": ann})
            command.upgrade(db._alembic_config(conn), "0011")
            row = conn.execute(sa.text("SELECT system_prompt, temperature, max_output_tokens, reasoning_effort "
                                       "FROM conversations")).one()
            assert tuple(row) == ("", None, None, None)
            conn.execute(sa.text("INSERT INTO presets (owner_kind, owner_id, name, provider, model, created_at, "
                                 "updated_at) VALUES ('team', 0, 'Review', 'openai', 'gpt-4o', CURRENT_TIMESTAMP, "
                                 "CURRENT_TIMESTAMP)"))
            with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():  # one name per owner
                conn.execute(sa.text("INSERT INTO presets (owner_kind, owner_id, name, provider, model, created_at, "
                                     "updated_at) VALUES ('team', 0, 'Review', 'openai', 'o3', CURRENT_TIMESTAMP, "
                                     "CURRENT_TIMESTAMP)"))
            command.downgrade(db._alembic_config(conn), "0010")
        assert "presets" not in sa.inspect(engine).get_table_names()
        assert "system_prompt" not in {c["name"] for c in sa.inspect(engine).get_columns("conversations")}
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT title FROM conversations")).scalar_one() == "Before"
    finally:
        engine.dispose()


def test_conversations_become_one_branch_each_and_one_reply_at_a_time_still_holds(empty_database):
    """Migration 0012: each message's parent is the one before it in its own conversation (their ids
    interleave), the unique index over streaming replies survives, and it goes back down."""
    engine = db.create_engine(empty_database)
    try:
        with engine.begin() as conn:
            command.upgrade(db._alembic_config(conn), "0011")
            ann = _member_ann(conn)
            for title in ("One", "Two"):
                conn.execute(sa.text("INSERT INTO conversations (user_id, title, created_at, updated_at) VALUES "
                                     "(:u, :t, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"u": ann, "t": title})
            one, two = conn.execute(sa.text("SELECT id FROM conversations ORDER BY id")).scalars()
            said = [(one, "user", "a"), (two, "user", "x"), (one, "assistant", "b"), (two, "assistant", "y"),
                    (one, "user", "c")]
            for conversation, role, content in said:
                conn.execute(sa.text("INSERT INTO messages (conversation_id, role, content, created_at, meta, status, "
                                     "stop_requested) VALUES (:c, :r, :t, CURRENT_TIMESTAMP, '{}', 'done', false)"),
                             {"c": conversation, "r": role, "t": content})
            command.upgrade(db._alembic_config(conn), "0012")
            rows = conn.execute(sa.text("SELECT m.content, p.content FROM messages m LEFT JOIN messages p "
                                        "ON p.id = m.parent_id ORDER BY m.id")).all()
            assert [tuple(r) for r in rows] == [("a", None), ("x", None), ("b", "a"), ("y", "x"), ("c", "b")]
            assert conn.execute(sa.text("SELECT leaf_id FROM conversations")).scalars().all() == [None, None]
            streaming = sa.text("INSERT INTO messages (conversation_id, role, content, created_at, meta, status, "
                                "stop_requested) VALUES (:c, 'assistant', '', CURRENT_TIMESTAMP, '{}', 'streaming', "
                                "false)")
            conn.execute(streaming, {"c": one})
            with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():  # still one reply at a time
                conn.execute(streaming, {"c": one})
            command.downgrade(db._alembic_config(conn), "0011")
        assert "parent_id" not in {c["name"] for c in sa.inspect(engine).get_columns("messages")}
        assert "leaf_id" not in {c["name"] for c in sa.inspect(engine).get_columns("conversations")}
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM messages")).scalar_one() == 6
    finally:
        engine.dispose()


def _columns(conn: sa.Connection) -> dict[str, set[str]]:
    found = sa.inspect(conn)
    return {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}


def test_caps_on_own_keys_come_as_new_tables_and_leave_everything_else(empty_database):
    """Migration 0018: the caps' three tables, nothing else touched; and back down."""
    engine = db.create_engine(empty_database)
    try:
        with engine.begin() as conn:
            command.upgrade(db._alembic_config(conn), "0012")
            _member_ann(conn)
            command.upgrade(db._alembic_config(conn), "0018")
            after = _columns(conn)
            command.downgrade(db._alembic_config(conn), "-1")
            before = _columns(conn)
            assert set(after) - set(before) == {"own_key_caps", "own_cap_months", "own_cap_reservations"}
            assert {t: after[t] for t in before} == before
            assert conn.execute(sa.text("SELECT COUNT(*) FROM users")).scalar_one() == 1
    finally:
        engine.dispose()
def test_conversations_keep_their_messages_and_take_attachments_and_they_go_back_down(empty_database, tmp_path,
                                                                                        master_key):
    """Migration 0013: messages kept before it are all there, with no attachments; a prompt then keeps
    its files, which go with their conversation; and it goes back down, the messages kept."""
    from filesamples import pdf

    from byok_core import attachments
    from byok_core import conversations as convs

    engine = db.create_engine(empty_database)
    with engine.begin() as conn:
        command.upgrade(db._alembic_config(conn), "0012")
        ann = _member_ann(conn)
        conn.execute(sa.text("INSERT INTO conversations (user_id, title, created_at, updated_at) VALUES "
                             "(:u, 'Before', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"u": ann})
        conv = conn.execute(sa.text("SELECT id FROM conversations")).scalar_one()
        parent = None
        for role, content in (("user", "a"), ("assistant", "b")):
            conn.execute(sa.text("INSERT INTO messages (conversation_id, role, content, created_at, meta, status, "
                                 "stop_requested, parent_id) VALUES (:c, :r, :t, CURRENT_TIMESTAMP, '{}', 'done', "
                                 "false, :p)"), {"c": conv, "r": role, "t": content, "p": parent})
            parent = conn.execute(sa.text("SELECT MAX(id) FROM messages")).scalar_one()
    engine.dispose()

    rt = open_runtime({"BYOK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": empty_database,
                       "ENCRYPTION_KEY": master_key})  # the first start of this version: to 0013
    try:
        shown = convs.messages(rt, ann, conv)
        assert [(m.content, m.attachments) for m in shown] == [("a", ()), ("b", ())]
        with rt.engine.begin() as conn:
            attachments.add(conn, ann, conv, shown[0].id, [attachments.check("n.pdf", pdf(1))])
        assert [a.name for a in convs.messages(rt, ann, conv)[0].attachments] == ["n.pdf"]
        with rt.engine.begin() as conn:
            command.downgrade(db._alembic_config(conn), "0012")
        assert "attachments" not in sa.inspect(rt.engine).get_table_names()
        with rt.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT content FROM messages ORDER BY id")).scalars().all() == ["a", "b"]
    finally:
        rt.engine.dispose()


def test_the_display_currency_starts_as_dollars_and_budgets_and_usage_are_kept(empty_database, tmp_path, master_key):
    """Migration 0016: money is shown in USD until an admin picks a currency; budgets, usage and
    audit events written before it stay as they were, and it goes back down."""
    engine = db.create_engine(empty_database)
    try:
        with engine.begin() as conn:
            command.upgrade(db._alembic_config(conn), "0012")
            ann = _member_ann(conn)
            conn.execute(sa.text("INSERT INTO budgets (owner_kind, owner_id, monthly_usd) VALUES ('team', 0, 25.5)"))
            conn.execute(sa.text("INSERT INTO usage_records (ts, user_id, kind, provider, model, key_source, "
                                 "latency_ms, status, cost_usd) VALUES (CURRENT_TIMESTAMP, :u, 'chat', 'openai', "
                                 "'gpt-4o', 'team', 5, 'ok', 0.125)"), {"u": ann})
            command.upgrade(db._alembic_config(conn), "0016")
            assert conn.execute(sa.text("SELECT COUNT(*) FROM display_currencies")).scalar_one() == 0
        rt = open_runtime({"DATABASE_URL": empty_database, "ENCRYPTION_KEY": master_key,
                           "BYOK_DATA_DIR": str(tmp_path / "data")}, migrate=False)
        try:
            from byok_core import currency

            assert currency.current(rt) == currency.USD
            assert budgets.budget_of(rt, Owner.team()) == 25.5
            eur = currency.set_display(rt, Actor.operator(), "EUR", 0.92)
            assert currency.money(budgets.budget_of(rt, Owner.team()), whole=True, currency=eur) == "€23.46"
        finally:
            rt.engine.dispose()
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT cost_usd FROM usage_records")).scalar_one() == 0.125
            command.downgrade(db._alembic_config(conn), "0012")
        assert "display_currencies" not in sa.inspect(engine).get_table_names()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT monthly_usd FROM budgets")).scalar_one() == 25.5
    finally:
        engine.dispose()


def test_keys_keep_working_unwatched_and_one_active_key_still_holds(empty_database):
    """Migration 0015: stored keys are kept, not checked yet, with no expiry; one active key per owner
    and provider still holds; leases come and go; it goes back down with the keys kept."""
    engine = db.create_engine(empty_database)
    insert = sa.text("INSERT INTO api_keys (id, owner_kind, owner_id, provider, label, ciphertext, key_id, mask, "
                     "base_url, active, created_at, updated_at, last_test_status) VALUES (:id, :kind, :owner, "
                     "'openai', 'work', 'v1:x:y', 'k1', 'sk-…1111', NULL, true, CURRENT_TIMESTAMP, "
                     "CURRENT_TIMESTAMP, 'ok')")
    try:
        with engine.begin() as conn:
            command.upgrade(db._alembic_config(conn), "0012")
            ann = _member_ann(conn)
            conn.execute(insert, {"id": "a" * 32, "kind": "user", "owner": ann})
            conn.execute(insert, {"id": "b" * 32, "kind": "team", "owner": 0})
            command.upgrade(db._alembic_config(conn), "0015")
            rows = conn.execute(sa.text("SELECT id, owner_kind, label, last_test_status, checked_at, failing_since, "
                                        "expires_on, notice_dismissed FROM api_keys ORDER BY id")).all()
            assert [tuple(r) for r in rows] == [("a" * 32, "user", "work", "ok", None, None, None, None),
                                                ("b" * 32, "team", "work", "ok", None, None, None, None)]
            with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():  # still one active key
                conn.execute(insert, {"id": "c" * 32, "kind": "user", "owner": ann})
            conn.execute(sa.text("INSERT INTO leases (name, holder, expires_at) VALUES ('keywatch', 'h', "
                                 "CURRENT_TIMESTAMP)"))
            command.downgrade(db._alembic_config(conn), "0012")
        assert "leases" not in sa.inspect(engine).get_table_names()
        assert "expires_on" not in {c["name"] for c in sa.inspect(engine).get_columns("api_keys")}
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM api_keys WHERE active")).scalar_one() == 2
    finally:
        engine.dispose()


def test_openai_compatible_keys_become_connections_and_nothing_is_lost(empty_database, tmp_path, master_key):
    """Migration 0014: each owner's OpenAI-compatible keys (active and replaced, personal and team)
    move to a connection per base URL, named by the key's label (else the host); each still opens,
    goes only to its own URL, and one active key per connection holds."""
    environ = {"BYOK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": empty_database, "ENCRYPTION_KEY": master_key,
               "BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"}
    keyring = open_runtime(environ, migrate=False).keyring
    engine = db.create_engine(empty_database)
    rows = {  # row id: (owner kind, owner id, label, base URL, active, key)
        "a1": ("user", 0, "Groq", "https://api.groq.com/openai/v1", True, "gsk_fake-ann-active-000000000001"),
        "a2": ("user", 0, "", "https://openrouter.ai/api/v1", False, "sk-or-fake-ann-replaced-0000002"),
        "t1": ("team", 0, "", "https://llm.example.com/v1", True, "sk-fake.team-compatible-0000003"),
        "o1": ("team", 0, "", None, True, "sk-fake.team-openai-00000000004"),
    }
    with engine.begin() as conn:  # an install at 0012 with a member and these keys
        command.upgrade(db._alembic_config(conn), "0012")
        conn.execute(sa.text("INSERT INTO users (username, username_key, password_hash, role, disabled, created_at, "
                             "password_changed_at, failed_logins) VALUES ('ann', 'ann', 'x', 'member', false, "
                             "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"))
        ann = conn.execute(sa.text("SELECT id FROM users")).scalar_one()
        for n, (row_id, (kind, _, label, url, active, key)) in enumerate(rows.items()):
            owner_id = ann if kind == "user" else 0
            provider = "openai" if row_id == "o1" else "openai-compatible"
            conn.execute(sa.text(
                "INSERT INTO api_keys (id, owner_kind, owner_id, provider, label, ciphertext, key_id, mask, base_url, "
                "active, created_at, updated_at) VALUES (:id, :kind, :owner, :provider, :label, :ciphertext, :key_id, "
                "'sk-…', :url, :active, :at, :at)"),
                {"id": row_id, "kind": kind, "owner": owner_id, "provider": provider, "label": label, "url": url,
                 "active": active, "at": utcnow() - timedelta(minutes=n), "key_id": keyring.primary.key_id,
                 "ciphertext": keyring.encrypt(key, f"{kind}:{owner_id}|{provider}|{row_id}|{url or ''}")})
    engine.dispose()

    rt = open_runtime(environ)
    try:
        assert vault.scan(rt).unreadable == []
        mine = connections.list_connections(rt, Actor.operator(), Owner.user(ann))
        team = connections.list_connections(rt, Actor.operator(), Owner.team())
        assert [(c.name, c.base_url, c.preset) for c in mine] == [
            ("Groq", "https://api.groq.com/openai/v1", ""),
            ("openrouter.ai", "https://openrouter.ai/api/v1", "")]
        assert [(c.name, c.base_url) for c in team] == [("llm.example.com", "https://llm.example.com/v1")]
        assert [c.pricing_id for c in mine] == ["groq", "openrouter"]  # custom: priced by their base URL
        got = keys.resolve(rt, ann, Provider.OPENAI_COMPATIBLE)  # ann's one connection with an active key
        assert (got.credential.secret.reveal(), got.credential.base_url, got.connection.name) == (
            rows["a1"][5], "https://api.groq.com/openai/v1", "Groq")
        team_key = keys.resolve(rt, None, Provider.OPENAI_COMPATIBLE)
        assert (team_key.credential.secret.reveal(), team_key.credential.base_url) == (
            rows["t1"][5], "https://llm.example.com/v1")
        assert keys.resolve(rt, None, Provider.OPENAI).credential.secret.reveal() == rows["o1"][5]
        # the replaced key is kept, in its own connection, and restores there (to its own URL)
        restored = keys.restore(rt, Actor.operator(), Owner.user(ann), "a2")
        assert restored.connection_id == mine[1].id
        on_router = keys.resolve(rt, ann, Provider.OPENAI_COMPATIBLE, mine[1].id)
        assert (on_router.credential.secret.reveal(), on_router.credential.base_url) == (
            rows["a2"][5], "https://openrouter.ai/api/v1")
        with pytest.raises(ValidationError, match="Choose one of the connections"):  # two now: say which
            keys.resolve(rt, ann, Provider.OPENAI_COMPATIBLE)
        with rt.engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):  # one active key per connection
            conn.execute(sa.text("UPDATE api_keys SET active = true WHERE connection_id = :c"), {"c": mine[0].id})
            conn.execute(sa.text(
                "INSERT INTO api_keys (id, owner_kind, owner_id, provider, label, ciphertext, key_id, mask, "
                "base_url, active, created_at, updated_at, connection_id) SELECT 'x1', owner_kind, owner_id, "
                "provider, label, ciphertext, key_id, mask, base_url, true, created_at, updated_at, connection_id "
                "FROM api_keys WHERE id = 'a1'"))
        with rt.engine.begin() as conn:
            command.downgrade(db._alembic_config(conn), "0012")  # and back: one compatible key per owner again
            active = conn.execute(sa.text("SELECT id FROM api_keys WHERE active ORDER BY id")).scalars().all()
        assert active == ["a2", "o1", "t1"]
    finally:
        rt.engine.dispose()


def test_the_bill_check_comes_as_new_tables_and_a_column_on_the_usage_log(empty_database):
    """Migration 0019: usage rows name the stored key that paid (old rows: none), the billing keys'
    and the bill check's tables; nothing else touched, no usage row lost; and back down."""
    engine = db.create_engine(empty_database)
    try:
        with engine.begin() as conn:
            command.upgrade(db._alembic_config(conn), "0018")
            conn.execute(sa.text("INSERT INTO usage_records (ts, kind, provider, model, key_source, latency_ms, "
                                 "status) "
                                 "VALUES ('2026-12-01 10:00:00', 'chat', 'openai', 'gpt-4o-mini', 'team', 5, 'ok')"))
            before = _columns(conn)
            command.upgrade(db._alembic_config(conn), "0019")
            after = _columns(conn)
            assert set(after) - set(before) == {"billing_keys", "bill_checks"}
            assert set(after["usage_records"]) - set(before["usage_records"]) == {"key_row_id"}
            assert conn.execute(sa.text("SELECT key_row_id FROM usage_records")).all() == [(None,)]
            command.downgrade(db._alembic_config(conn), "-1")
            assert _columns(conn) == before
            assert conn.execute(sa.text("SELECT COUNT(*) FROM usage_records")).scalar_one() == 1
    finally:
        engine.dispose()
