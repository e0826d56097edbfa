"""An install made by the first release upgrades in place on SQLite and PostgreSQL, and a start with
the wrong master key (another ENCRYPTION_KEY, or a key file that was not carried over) changes nothing:
started again with the right key, every row survives and every key decrypts to what was stored."""

from __future__ import annotations

import stat
from contextlib import contextmanager

import first_release
import pytest
import sqlalchemy as sa
from callhelpers import sealed_by_version_1
from fakeproviders import FakeProvider
from sqlmodel import Session, select
from test_migrations import cli_main

from byok_core import accounts, budgets, conversations, crypto, db, first_format, keys, vault
from byok_core.chat import ChatMessage, stream_chat
from byok_core.errors import ConfigError, KeyUnreadableError
from byok_core.identity import Owner
from byok_core.models import ApiKey, AppSetting
from byok_core.providers import Provider
from byok_core.startup import open_runtime


@pytest.fixture
def old_install(empty_database, tmp_path):
    """The first release's database, and the environment it ran with (its master key in ENCRYPTION_KEY)."""
    first_release.load(empty_database)
    return {"BYOK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": empty_database,
            "ENCRYPTION_KEY": first_release.MASTER_KEY}


def every_key_decrypts(rt) -> None:
    """Every stored key resolves to its plaintext, sealed in today's format."""
    assert vault.scan(rt).unreadable == []
    with Session(rt.engine) as session:
        rows = list(session.exec(select(ApiKey)))
    assert {row.id for row in rows} == set(first_release.PLAINTEXTS)
    for row in rows:
        assert crypto.version_of(row.ciphertext) == crypto.VERSION
        assert vault.open_value(rt.keyring, row) == first_release.PLAINTEXTS[row.id]


def every_row_survived(rt) -> None:
    with rt.engine.connect() as conn:
        for table, rows in first_release.TABLES.items():
            if table != "alembic_version":
                assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() == len(rows), table
    for name, password in first_release.PASSWORDS.items():
        assert accounts.authenticate(rt, name, password).username == name
    bob = accounts.get_user(rt, "bob")
    [chat] = conversations.list_conversations(rt, bob.id)
    assert [m.content for m in conversations.messages(rt, bob.id, chat.id)] == ["Hello from the first release",
                                                                               "Hi Bob!"]
    lines = budgets.spend_report(rt)
    assert {line.owner: line.budget_usd for line in lines if line.budget_usd is not None} == {
        Owner.team(): 200.0, Owner.user(bob.id): 25.0}
    team = keys.resolve(rt, None, Provider.OPENAI_COMPATIBLE)
    assert team.credential.base_url == first_release.DUMP["base_urls"]["team"]
    mine = keys.resolve(rt, bob.id, Provider.OPENAI_COMPATIBLE)
    assert mine.credential.base_url == first_release.DUMP["base_urls"]["bob"]


@contextmanager
def runtime(environ):
    """The app's start on ``environ`` (migrations and start-up chores), closed afterwards."""
    rt = open_runtime(environ)
    try:
        yield rt
    finally:
        rt.engine.dispose()


def started(environ):
    with runtime(environ):
        pass


def test_a_plain_upgrade_keeps_every_row_and_key(old_install):
    with runtime(old_install) as rt:
        every_key_decrypts(rt)
        every_row_survived(rt)


def test_a_start_with_another_master_key_refuses_and_loses_nothing(old_install):
    with pytest.raises(ConfigError, match=r"opens none of the 10 stored keys") as refused:
        started({**old_install, "ENCRYPTION_KEY": crypto.gen_key()})
    assert "sealed with master key" in str(refused.value) and first_release.MASTER_KEY not in str(refused.value)
    with runtime(old_install) as rt:  # the operator sets the right key again
        every_key_decrypts(rt)
        every_row_survived(rt)


def test_a_missing_key_file_is_never_replaced_by_a_new_one(old_install, tmp_path):
    key_file = tmp_path / "data" / "master.key"
    without_key = {k: v for k, v in old_install.items() if k != "ENCRYPTION_KEY"}
    with pytest.raises(ConfigError, match=r"master\.key is missing") as refused:
        started(without_key)  # the key file was not carried over to the new machine
    assert "restore" in str(refused.value) and not key_file.exists()
    key_file.parent.mkdir()
    key_file.write_text(first_release.MASTER_KEY + "\n")  # restored from the backup
    key_file.chmod(0o600)
    with runtime(without_key) as rt:
        every_key_decrypts(rt)
        every_row_survived(rt)


def test_rows_another_configured_key_must_open_wait_for_it(old_install):
    """Some values sealed by an older master key the operator has not configured yet: the others are
    re-sealed; those stay as they were and are re-sealed at the first start that has their key."""
    older_key = crypto.gen_key()
    older = crypto.Keyring(crypto.parse_master_key(older_key, "older"))
    team_openai = next(r["id"] for r in first_release.TABLES["api_keys"] if r["provider"] == "openai"
                       and r["owner_kind"] == "team")
    engine = db.create_engine(old_install["DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(sa.update(ApiKey).where(ApiKey.id == team_openai).values(
            key_id=older.primary.key_id, ciphertext=sealed_by_version_1(
                older, first_release.PLAINTEXTS[team_openai], f"team:0|openai|{team_openai}")))
    engine.dispose()
    with runtime(old_install) as rt:
        assert [row_id for row_id, _, _ in vault.scan(rt).unreadable] == [team_openai]
        with pytest.raises(KeyUnreadableError):
            keys.resolve(rt, None, Provider.OPENAI)
    started(old_install)  # a restart without that key changes nothing
    fallback = {**old_install, "ENCRYPTION_KEY_FALLBACKS": older_key}
    with runtime(fallback) as rt:
        every_key_decrypts(rt)


def test_an_old_dump_planted_after_the_upgrade_never_sends_the_team_key_elsewhere(old_install, capsys):
    """Write access to the database alone: the team's first-format value from an old dump put back,
    its base URL pointed at the attacker, the re-sealing marker inserted; then any `byok` command runs
    and a team chat is sent. The key never reaches the attacker."""
    started(old_install)  # the upgrade
    [old_row] = [r for r in first_release.TABLES["api_keys"]
                 if r["provider"] == "openai-compatible" and r["owner_kind"] == "team"]
    with FakeProvider(Provider.OPENAI_COMPATIBLE) as attacker:
        engine = db.create_engine(old_install["DATABASE_URL"])
        with engine.begin() as conn:
            conn.execute(sa.update(ApiKey).where(ApiKey.id == old_row["id"]).values(
                ciphertext=old_row["ciphertext"], key_id=old_row["key_id"], base_url=attacker.base_url))
            conn.execute(sa.delete(AppSetting).where(AppSetting.name == first_format.PENDING))
            conn.execute(sa.insert(AppSetting).values(name=first_format.PENDING, value="pending"))
        engine.dispose()
        env = {**old_install, "BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"}
        assert cli_main(["keys", "list", "--team"], env) == 0  # any byok command opens the runtime
        with runtime(env) as rt, pytest.raises(KeyUnreadableError):
            stream_chat(rt, user_id=None, provider=Provider.OPENAI_COMPATIBLE, model="llama",
                        messages=[ChatMessage("user", "hi")])
        assert attacker.requests == []
    assert cli_main(["doctor"], old_install) == 1
    assert f"PROBLEM: key {old_row['id']}" in capsys.readouterr().out


def test_a_new_install_keeps_its_data_folder_private(tmp_path):
    """The embedded default: the folder that holds byok.db and master.key is made for its owner only."""
    data = tmp_path / "data"
    with runtime({"BYOK_DATA_DIR": str(data)}):
        pass
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "master.key").stat().st_mode) == 0o600
