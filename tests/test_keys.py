"""The key service on a real database: store, replace, delete, list, resolve, rotate."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from callhelpers import usage_rows
from fakeproviders import FakeProvider
from sqlmodel import Session, select

from byok_core import accounts, audit, keys, keytest, vault
from byok_core.clock import utcnow
from byok_core.crypto import gen_key
from byok_core.errors import (
    CallStatus,
    ConfigError,
    KeyUnreadableError,
    NoKeyError,
    NotFoundError,
    PermissionDenied,
    UnknownProviderError,
    ValidationError,
)
from byok_core.identity import Actor, Owner
from byok_core.models import ApiKey, KeySource, Role
from byok_core.providers import Provider
from byok_core.startup import open_runtime

ALICE_KEY = "sk-fake.alice-secret-AAAAAAAAAAAAAAAAAAAA1111"
BOB_KEY = "sk-fake.bob-secret-BBBBBBBBBBBBBBBBBBBBBB2222"
TEAM_KEY = "sk-fake.team-secret-TTTTTTTTTTTTTTTTTTTTT3333"
ENV_KEY = "sk-fake.env-secret-EEEEEEEEEEEEEEEEEEEEEE4444"
ALL = (ALICE_KEY, BOB_KEY, TEAM_KEY, ENV_KEY)


@pytest.fixture
def people(rt):
    alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
    bob = accounts.create_user(rt, Actor.operator(), "bob", "bob-password")
    admin = accounts.create_user(rt, Actor.operator(), "root", "root-password", Role.ADMIN)
    return Actor.of(alice), Actor.of(bob), Actor.of(admin)


def dump_database(rt) -> str:
    """Every value in every table, as text: what an attacker with the database would see.

    Tables and rows are sorted, so two dumps of the same data compare equal (PostgreSQL
    returns both in whatever order its catalog and heap happen to hold them)."""
    out = []
    with rt.engine.connect() as conn:
        for table in sorted(sa.inspect(conn).get_table_names()):
            out += sorted(repr(tuple(r)) for r in conn.execute(sa.text(f'SELECT * FROM "{table}"')))
    if rt.engine.url.get_backend_name() == "sqlite":  # the raw bytes too, WAL included
        path = rt.engine.url.database
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                out.append(Path(path + suffix).read_bytes().decode("latin-1"))
    return "\n".join(out)


def assert_no_plaintext(text: str) -> None:
    for key in ALL:
        assert key not in text
        assert key[-8:] not in text  # not even a tail longer than the mask


def test_store_list_and_resolve_own_key(rt, people, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # SQL and its parameters
    alice, _, _ = people
    info = keys.store(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, f"  {ALICE_KEY}\n", label="work")
    assert info.mask == "sk-…1111" and info.label == "work" and info.active
    listed = keys.list_keys(rt, alice, Owner.user(alice.user_id))
    assert [k.id for k in listed] == [info.id]
    resolved = keys.resolve(rt, alice.user_id, Provider.OPENAI)
    assert resolved.credential.secret.reveal() == ALICE_KEY
    assert resolved.source is KeySource.USER
    assert resolved.credential.base_url == "https://api.openai.com/v1"
    assert "INSERT INTO api_keys" in caplog.text  # SQL logging was on, parameters included
    for text in (repr(info), repr(listed), repr(resolved), str(resolved), dump_database(rt), caplog.text):
        assert_no_plaintext(text)


def test_precedence_user_then_team_then_env(environ, people):
    rt = open_runtime({**environ, "OPENAI_API_KEY": ENV_KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    alice, bob, admin = people
    assert keys.resolve(rt, alice.user_id, Provider.OPENAI).source is KeySource.ENV
    assert keys.resolve(rt, alice.user_id, Provider.OPENAI).credential.base_url == "http://127.0.0.1:9/v1"
    keys.store(rt, admin, Owner.team(), Provider.OPENAI, TEAM_KEY)
    team = keys.resolve(rt, alice.user_id, Provider.OPENAI)
    assert (team.source, team.credential.secret.reveal()) == (KeySource.TEAM, TEAM_KEY)
    keys.store(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, ALICE_KEY)
    own = keys.resolve(rt, alice.user_id, Provider.OPENAI)
    assert (own.source, own.credential.secret.reveal()) == (KeySource.USER, ALICE_KEY)
    assert keys.resolve(rt, bob.user_id, Provider.OPENAI).credential.secret.reveal() == TEAM_KEY  # not Alice's
    assert keys.resolve(rt, None, Provider.OPENAI).credential.secret.reveal() == TEAM_KEY  # CLI without --user
    assert keys.sources(rt, alice.user_id)[Provider.OPENAI] is KeySource.USER
    assert keys.sources(rt, bob.user_id)[Provider.OPENAI] is KeySource.TEAM
    assert keys.sources(rt, bob.user_id)[Provider.ANTHROPIC] is None
    with pytest.raises(NoKeyError, match="Keys page"):
        keys.resolve(rt, bob.user_id, Provider.ANTHROPIC)


def test_new_key_replaces_the_active_one(rt, people):
    alice, _, _ = people
    owner = Owner.user(alice.user_id)
    first = keys.store(rt, alice, owner, Provider.OPENAI, ALICE_KEY)
    second = keys.store(rt, alice, owner, Provider.OPENAI, "sk-fake.alice-second-key-000000000000")
    listed = {k.id: k.active for k in keys.list_keys(rt, alice, owner)}
    assert listed == {first.id: False, second.id: True}
    resolved = keys.resolve(rt, alice.user_id, Provider.OPENAI)
    assert resolved.credential.secret.reveal().startswith("sk-fake.alice-second")
    actions = [e.action for e in audit.recent(rt.engine)]
    assert actions[:2] == ["key.replace", "key.store"]


def test_one_user_cannot_list_resolve_or_delete_anothers_key(rt, people):
    alice, bob, _ = people
    info = keys.store(rt, alice, Owner.user(alice.user_id), Provider.ANTHROPIC, ALICE_KEY)
    assert keys.list_keys(rt, bob, Owner.user(bob.user_id)) == []
    with pytest.raises(NoKeyError):
        keys.resolve(rt, bob.user_id, Provider.ANTHROPIC)
    with pytest.raises(NotFoundError) as theirs:
        keys.delete(rt, bob, Owner.user(bob.user_id), info.id)
    with pytest.raises(NotFoundError) as missing:
        keys.delete(rt, bob, Owner.user(bob.user_id), "0" * 32)
    assert str(theirs.value) == str(missing.value)  # indistinguishable
    with pytest.raises(PermissionDenied):  # naming Alice as the owner does not help
        keys.list_keys(rt, bob, Owner.user(alice.user_id))
    with pytest.raises(PermissionDenied):
        keys.store(rt, bob, Owner.team(), Provider.OPENAI, BOB_KEY)
    assert keys.resolve(rt, alice.user_id, Provider.ANTHROPIC).credential.secret.reveal() == ALICE_KEY


def test_delete_removes_the_key(rt, people):
    alice, _, _ = people
    owner = Owner.user(alice.user_id)
    info = keys.store(rt, alice, owner, Provider.TAVILY, "tvly-abcdefghijklmnopqrstuvwxyz")
    assert keys.delete(rt, alice, owner, info.id) is None  # nothing left to restore
    assert keys.list_keys(rt, alice, owner) == []
    with pytest.raises(NoKeyError):
        keys.resolve(rt, alice.user_id, Provider.TAVILY)
    with pytest.raises(NotFoundError):
        keys.delete(rt, alice, owner, info.id)


@pytest.mark.parametrize("raw, message", [
    ("", "empty"),
    ("   \t\n", "white space"),
    ("sk-fake.abc\x00def1234567890", "control characters"),
    ("sk-fake.abc\u200bdef1234567890", "control characters"),
    ("sk-fake.abc def1234567890", "spaces"),
    ("x" * 513, "longer than 512"),
])
def test_bad_keys_get_clear_messages_and_store_nothing(rt, people, raw, message):
    alice, _, _ = people
    with pytest.raises(ValidationError, match=message) as info:
        keys.store(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, raw)
    assert raw.strip() == "" or raw.strip() not in str(info.value)
    assert keys.list_keys(rt, alice, Owner.user(alice.user_id)) == []


def test_unknown_provider_and_base_url_rules(rt, people):
    alice, _, _ = people
    with pytest.raises(UnknownProviderError, match="openai, anthropic"):
        Provider.parse("gpt")
    owner = Owner.user(alice.user_id)
    with pytest.raises(ValidationError, match="base URL"):
        keys.store(rt, alice, owner, Provider.OPENAI_COMPATIBLE, ALICE_KEY)
    with pytest.raises(ValidationError, match="leave the base URL empty"):
        keys.store(rt, alice, owner, Provider.OPENAI, ALICE_KEY, base_url="https://evil.example")
    with pytest.raises(ValidationError, match=r"metadata|link-local"):
        keys.store(rt, alice, owner, Provider.OPENAI_COMPATIBLE, ALICE_KEY, base_url="http://169.254.169.254/v1")
    with pytest.raises(ValidationError, match="BYOK_ALLOW_PRIVATE_ENDPOINTS"):
        keys.store(rt, alice, owner, Provider.OPENAI_COMPATIBLE, ALICE_KEY, base_url="http://127.0.0.1:11434/v1")
    info = keys.store(rt, alice, owner, Provider.OPENAI_COMPATIBLE, ALICE_KEY, base_url="https://openrouter.ai/api/v1/")
    assert info.base_url == "https://openrouter.ai/api/v1"
    assert keys.resolve(rt, alice.user_id, Provider.OPENAI_COMPATIBLE).credential.base_url == "https://openrouter.ai/api/v1"


def test_eight_concurrent_saves_leave_exactly_one_active_key(rt, people):
    alice, _, _ = people
    owner = Owner.user(alice.user_id)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def save(i: int) -> None:
        try:
            barrier.wait()
            keys.store(rt, alice, owner, Provider.OPENAI, f"sk-fake.concurrent-{i}-xxxxxxxxxxxxxxxx")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    listed = keys.list_keys(rt, alice, owner)
    assert len(listed) == 8
    assert sum(k.active for k in listed) == 1


def test_database_refuses_a_second_active_key(rt, people):
    """The guarantee is the partial unique index, not only the service's update-then-insert."""
    alice, _, _ = people
    keys.store(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, ALICE_KEY)
    with Session(rt.engine) as session:
        row = session.exec(select(ApiKey)).one()
        clone = ApiKey(**{**row.model_dump(), "id": "f" * 32})
        session.add(clone)
        with pytest.raises(sa.exc.IntegrityError):
            session.commit()


def test_unreadable_row_is_reported_kept_and_audited(environ, people):
    alice, _, _ = people
    rt = open_runtime(environ)
    keys.store(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, ALICE_KEY)
    with pytest.raises(ConfigError, match="opens none of the 1 stored keys"):  # a start with it is refused
        open_runtime({**environ, "ENCRYPTION_KEY": gen_key()})
    wrong = open_runtime({**environ, "ENCRYPTION_KEY": gen_key()}, migrate=False)
    with pytest.raises(KeyUnreadableError, match="cannot be decrypted") as info:
        keys.resolve(wrong, alice.user_id, Provider.OPENAI)
    assert_no_plaintext(str(info.value))
    report = vault.scan(wrong)
    assert len(report.unreadable) == 1 and report.per_key_id == {rt.keyring.primary.key_id: 1}
    rotated = vault.rotate(wrong)
    assert rotated.rotated == 0 and len(rotated.unreadable) == 1
    # Nothing was destroyed: the right key still reads it.
    assert keys.resolve(rt, alice.user_id, Provider.OPENAI).credential.secret.reveal() == ALICE_KEY
    assert "key.decrypt_failed" in [e.action for e in audit.recent(rt.engine)]


def _ring_env(environ, primary, *fallbacks):
    return {**environ, "ENCRYPTION_KEY": primary, "ENCRYPTION_KEY_FALLBACKS": ",".join(fallbacks)}


def test_rotation_with_fallbacks_is_rerunnable_and_dry_run_writes_nothing(environ, people):
    alice, _, admin = people
    old, new = environ["ENCRYPTION_KEY"], gen_key()
    rt_old = open_runtime(environ)
    keys.store(rt_old, alice, Owner.user(alice.user_id), Provider.OPENAI, ALICE_KEY)
    keys.store(rt_old, admin, Owner.team(), Provider.BRAVE, TEAM_KEY)
    rt = open_runtime(_ring_env(environ, new, old))
    before = dump_database(rt)
    dry = vault.rotate(rt, dry_run=True)
    assert dry.rotated == 2 and dump_database(rt) == before
    done = vault.rotate(rt)
    assert (done.rotated, done.current) == (2, 0)
    assert done.per_key_id == {rt_old.keyring.primary.key_id: 2}
    again = vault.rotate(rt)
    assert (again.rotated, again.current) == (0, 2)
    only_new = open_runtime(_ring_env(environ, new))
    assert keys.resolve(only_new, alice.user_id, Provider.OPENAI).credential.secret.reveal() == ALICE_KEY
    assert keys.resolve(only_new, None, Provider.BRAVE).credential.secret.reveal() == TEAM_KEY
    assert_no_plaintext(dump_database(rt))


def test_rotation_interrupted_half_way_leaves_every_row_readable(environ, people, monkeypatch):
    alice, _, _admin = people
    old, new = environ["ENCRYPTION_KEY"], gen_key()
    rt_old = open_runtime(environ)
    providers = [Provider.OPENAI, Provider.ANTHROPIC, Provider.GOOGLE, Provider.BRAVE]
    for p in providers:
        keys.store(rt_old, alice, Owner.user(alice.user_id), p, f"{p.value}-secret-value-123456789")
    rt = open_runtime(_ring_env(environ, new, old))
    calls = {"n": 0}
    real_encrypt = rt.keyring.encrypt

    def failing_encrypt(plaintext, context):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_encrypt(plaintext, context)

    monkeypatch.setattr(rt.keyring, "encrypt", failing_encrypt)
    with pytest.raises(OSError):
        vault.rotate(rt)
    monkeypatch.undo()
    assert vault.scan(rt).unreadable == []
    for p in providers:
        assert keys.resolve(rt, alice.user_id, p).credential.secret.reveal() == f"{p.value}-secret-value-123456789"
    assert sorted(vault.scan(rt).per_key_id.values()) == [2, 2]  # two rotated, two still old
    assert vault.rotate(rt).rotated == 2  # a rerun finishes the job
    assert vault.scan(rt).per_key_id == {rt.keyring.primary.key_id: 4}


# --- replaced keys: the label carries over, restore for 30 days, then purged ----------------------


def _age(rt, row_id: str, days: float) -> None:
    """Make a replaced key look replaced ``days`` ago."""
    with rt.engine.begin() as conn:
        conn.execute(sa.update(ApiKey).where(ApiKey.id == row_id).values(updated_at=utcnow() - timedelta(days=days)))


def test_the_label_carries_over_when_a_replacement_has_none(rt, people):
    alice, _, _ = people
    owner = Owner.user(alice.user_id)
    keys.store(rt, alice, owner, Provider.OPENAI, ALICE_KEY, label="work")
    second = keys.store(rt, alice, owner, Provider.OPENAI, "sk-fake.alice-second-key-000000000000")
    assert second.label == "work"
    third = keys.store(rt, alice, owner, Provider.OPENAI, "sk-fake.alice-third-key-0000000000000", label="home")
    assert third.label == "home"
    keys.store(rt, alice, owner, Provider.ANTHROPIC, "sk-fake.alice-anthropic-key-00000000000")
    assert {(k.provider, k.label) for k in keys.list_keys(rt, alice, owner) if k.active} == {
        (Provider.OPENAI, "home"), (Provider.ANTHROPIC, "")}  # another provider's label never does


def test_restore_swaps_the_replaced_key_back_and_is_audited(rt, people):
    alice, _, _ = people
    owner = Owner.user(alice.user_id)
    first = keys.store(rt, alice, owner, Provider.OPENAI, ALICE_KEY, label="work")
    second = keys.store(rt, alice, owner, Provider.OPENAI, "sk-fake.alice-second-key-000000000000")
    listed = keys.list_keys(rt, alice, owner)
    assert [(k.id, k.active) for k in listed] == [(second.id, True), (first.id, False)]
    assert listed[1].replaced_at is not None and listed[0].replaced_at is None
    restored = keys.restore(rt, alice, owner, first.id)
    assert restored.active and restored.replaced_at is None and restored.mask == "sk-…1111"
    assert [(k.id, k.active) for k in keys.list_keys(rt, alice, owner)] == [(first.id, True), (second.id, False)]
    assert keys.resolve(rt, alice.user_id, Provider.OPENAI).credential.secret.reveal() == ALICE_KEY
    event = audit.recent(rt.engine)[0]
    assert (event.actor, event.action) == ("alice", "key.replace")
    assert (event.mask, event.detail) == ("sk-…1111", "a replaced key, restored")
    assert event.key_row_id == first.id
    keys.restore(rt, alice, owner, second.id)  # and back again
    secret = keys.resolve(rt, alice.user_id, Provider.OPENAI).credential.secret
    assert secret.reveal() == "sk-fake.alice-second-key-000000000000"
    assert_no_plaintext(dump_database(rt))


def test_a_deleted_active_key_leaves_the_replaced_one_restorable(rt, people):
    alice, _, _ = people
    owner = Owner.user(alice.user_id)
    first = keys.store(rt, alice, owner, Provider.BRAVE, "BSA-alice-first-key-0123456789")
    second = keys.store(rt, alice, owner, Provider.BRAVE, "BSA-alice-second-key-0123456789")
    left = keys.delete(rt, alice, owner, second.id)
    assert left is not None and left.id == first.id and left.mask == first.mask  # said, so it is not a surprise
    assert keys.restorable_until(left) == left.replaced_at + keys.KEEP_REPLACED
    with pytest.raises(NoKeyError):
        keys.resolve(rt, alice.user_id, Provider.BRAVE)
    keys.restore(rt, alice, owner, first.id)
    secret = keys.resolve(rt, alice.user_id, Provider.BRAVE).credential.secret
    assert secret.reveal() == "BSA-alice-first-key-0123456789"


def test_only_ones_own_recently_replaced_key_can_be_restored(rt, people):
    alice, bob, admin = people
    owner = Owner.user(alice.user_id)
    first = keys.store(rt, alice, owner, Provider.OPENAI, ALICE_KEY)
    second = keys.store(rt, alice, owner, Provider.OPENAI, "sk-fake.alice-second-key-000000000000")
    with pytest.raises(NotFoundError) as theirs:
        keys.restore(rt, bob, Owner.user(bob.user_id), first.id)
    with pytest.raises(NotFoundError) as missing:
        keys.restore(rt, alice, owner, "0" * 32)
    with pytest.raises(NotFoundError) as active:
        keys.restore(rt, alice, owner, second.id)
    assert str(theirs.value) == str(missing.value) == str(active.value)
    with pytest.raises(PermissionDenied):
        keys.restore(rt, bob, owner, first.id)
    with pytest.raises(NotFoundError):  # the team's replaced keys are the team's
        keys.restore(rt, admin, Owner.team(), first.id)
    _age(rt, first.id, 29.9)
    keys.restore(rt, alice, owner, first.id)  # still within 30 days
    _age(rt, second.id, 30.01)
    with pytest.raises(NotFoundError, match="can no longer be restored"):
        keys.restore(rt, alice, owner, second.id)
    assert keys.resolve(rt, alice.user_id, Provider.OPENAI).credential.secret.reveal() == ALICE_KEY


def test_replaced_keys_are_purged_after_30_days_and_audited(rt, people):
    alice, bob, admin = people
    owner = Owner.user(alice.user_id)
    old = keys.store(rt, alice, owner, Provider.OPENAI, ALICE_KEY)
    recent = keys.store(rt, alice, owner, Provider.OPENAI, "sk-fake.alice-second-key-000000000000")
    current = keys.store(rt, alice, owner, Provider.OPENAI, "sk-fake.alice-third-key-0000000000000")
    bobs = keys.store(rt, bob, Owner.user(bob.user_id), Provider.OPENAI, BOB_KEY)
    keys.store(rt, bob, Owner.user(bob.user_id), Provider.OPENAI, "sk-fake.bob-second-key-00000000000000")
    _age(rt, old.id, 31)
    _age(rt, recent.id, 29)
    _age(rt, bobs.id, 31)
    assert [k.id for k in keys.list_keys(rt, alice, owner)] == [current.id, recent.id]  # listing purges hers
    with Session(rt.engine) as session:
        assert session.get(ApiKey, old.id) is None
        assert session.get(ApiKey, bobs.id) is not None  # Bob's wait for his own list, a save or a full purge
    purge = [e for e in audit.recent(rt.engine) if e.actor == "system"]
    assert [(e.action, e.mask, e.detail) for e in purge] == [
        ("key.delete", "sk-…1111", "replaced more than 30 days ago")]
    assert purge[0].key_row_id == old.id
    assert keys.purge_replaced(rt) == 1  # everyone's: Bob's old key
    assert keys.purge_replaced(rt) == 0
    with Session(rt.engine) as session:
        assert session.get(ApiKey, bobs.id) is None
    _age(rt, recent.id, 30.5)
    keys.store(rt, admin, owner, Provider.ANTHROPIC, "sk-fake.alice-anthropic-key-00000000000")  # a save purges too
    with Session(rt.engine) as session:
        assert session.get(ApiKey, recent.id) is None
    assert len([e for e in audit.recent(rt.engine) if e.actor == "system"]) == 3


def test_concurrent_restores_and_saves_leave_exactly_one_active_key(rt, people):
    alice, _, _ = people
    owner = Owner.user(alice.user_id)
    first = keys.store(rt, alice, owner, Provider.OPENAI, ALICE_KEY)
    second = keys.store(rt, alice, owner, Provider.OPENAI, "sk-fake.alice-second-key-000000000000")
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def act(i: int) -> None:
        try:
            barrier.wait()
            if i % 2:
                keys.restore(rt, alice, owner, (first if i % 4 == 1 else second).id)
            else:
                keys.store(rt, alice, owner, Provider.OPENAI, f"sk-fake.concurrent-{i}-xxxxxxxxxxxxxxxx")
        except NotFoundError:
            pass  # that key was made active by another thread first
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=act, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(k.active for k in keys.list_keys(rt, alice, owner)) == 1


# --- save tests the key first ------------------------------------------------------------------


@contextmanager
def openai_runtime(environ, **fake):
    with FakeProvider(Provider.OPENAI, **fake) as server:
        runtime = open_runtime({**environ, **server.env()}, migrate=False)
        try:
            yield runtime, server
        finally:
            runtime.engine.dispose()


def test_save_tests_the_key_and_stores_it_with_its_test(environ, people, caplog):
    caplog.set_level(logging.DEBUG)
    alice, _, _ = people
    with openai_runtime(environ, expect_key=ALICE_KEY) as (rt, server):
        outcome = keytest.save(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, ALICE_KEY, label="work")
        assert outcome.ok and outcome.status is CallStatus.OK and outcome.saved is not None
        assert outcome.message == "Saved the OpenAI key sk-…1111 and tested it: 3 models visible."
        assert server.sent_keys() == [ALICE_KEY]
        [info] = keys.list_keys(rt, alice, Owner.user(alice.user_id))
        assert (info.id, info.last_test_status, info.label) == (outcome.saved.id, CallStatus.OK, "work")
        assert info.checked_at is not None and info.last_used_at is None  # a test is not a use
        assert usage_rows(rt) == []  # a key test is not a chat or search call
        for text in (repr(outcome), dump_database(rt), caplog.text):
            assert_no_plaintext(text)


def test_a_rejected_key_is_not_saved_and_the_old_one_stays_active(environ, people, caplog):
    caplog.set_level(logging.DEBUG)
    alice, _, _ = people
    owner = Owner.user(alice.user_id)
    with openai_runtime(environ, expect_key=ALICE_KEY) as (rt, _server):
        keytest.save(rt, alice, owner, Provider.OPENAI, ALICE_KEY)
        outcome = keytest.save(rt, alice, owner, Provider.OPENAI, BOB_KEY, label="typo")
        assert not outcome.ok and outcome.saved is None and not outcome.can_save_untested
        assert outcome.status is CallStatus.KEY_REJECTED
        assert outcome.message == ("Not saved: OpenAI rejected the key sk-…2222, so check that you copied all of it; "
                                   "your key sk-…1111 stays in use.")
        assert [(k.mask, k.active) for k in keys.list_keys(rt, alice, owner)] == [("sk-…1111", True)]
        assert keys.resolve(rt, alice.user_id, Provider.OPENAI).credential.secret.reveal() == ALICE_KEY
        for text in (repr(outcome), dump_database(rt), caplog.text):
            assert_no_plaintext(text)


@pytest.mark.parametrize("fault, status", [(503, CallStatus.PROVIDER_DOWN), (429, CallStatus.RATE_LIMITED),
                                           (400, CallStatus.BAD_REQUEST)])
def test_a_key_that_cannot_be_tested_can_be_saved_untested(environ, people, fault, status):
    alice, _, _ = people
    owner = Owner.user(alice.user_id)
    with openai_runtime(environ, status=fault) as (rt, _server):
        outcome = keytest.save(rt, alice, owner, Provider.OPENAI, ALICE_KEY)
        assert (outcome.ok, outcome.saved, outcome.status, outcome.can_save_untested) == (False, None, status, True)
        assert outcome.message.startswith("Not saved yet: the key sk-…1111 could not be tested because OpenAI ")
        assert outcome.message.endswith(" or save it without testing.")
        assert keys.list_keys(rt, alice, owner) == []
        untested = keytest.save(rt, alice, owner, Provider.OPENAI, ALICE_KEY, test=False)
        assert untested.ok and untested.saved is not None and untested.status is None
        assert keys.list_keys(rt, alice, owner)[0].last_test_status is None
        assert_no_plaintext(repr(outcome) + repr(untested) + dump_database(rt))


def test_a_timeout_and_a_refused_connection_offer_saving_untested(environ, people):
    alice, _, _ = people
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rt = open_runtime({**environ, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"}, migrate=False)
    try:
        outcome = keytest.save(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, ALICE_KEY)
        assert (outcome.status, outcome.can_save_untested) == (CallStatus.PROVIDER_DOWN, True)
        assert "cannot be reached" in outcome.message
    finally:
        rt.engine.dispose()

    def too_slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with openai_runtime(environ) as (rt, _server), httpx.Client(transport=httpx.MockTransport(too_slow)) as client:
        outcome = keytest.save(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, ALICE_KEY, client=client)
        assert (outcome.status, outcome.can_save_untested) == (CallStatus.TIMEOUT, True)
        assert outcome.message == ("Not saved yet: the key sk-…1111 could not be tested because OpenAI did not answer "
                                   "in time, so try again in a minute or save it without testing.")
        assert keys.list_keys(rt, alice, Owner.user(alice.user_id)) == []


def test_an_openai_compatible_endpoint_is_named_by_its_label_and_checked_before_sending(environ, people):
    alice, _, _ = people
    owner = Owner.user(alice.user_id)
    with FakeProvider(Provider.OPENAI_COMPATIBLE, expect_key=ALICE_KEY) as server:
        rt = open_runtime({**environ, "BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"}, migrate=False)
        try:
            outcome = keytest.save(rt, alice, owner, Provider.OPENAI_COMPATIBLE, ALICE_KEY, "Groq", server.base_url)
            assert outcome.message == "Saved the Groq key sk-…1111 and tested it: 2 models visible."
            rejected = keytest.save(rt, alice, owner, Provider.OPENAI_COMPATIBLE, BOB_KEY, "", server.base_url)
            assert rejected.message.startswith("Not saved: Groq rejected the key sk-…2222")  # the label in use
            checked = keytest.check(rt, alice, owner, Provider.OPENAI_COMPATIBLE)
            assert checked.message == "The Groq key sk-…1111 works: 2 models visible."
        finally:
            rt.engine.dispose()
    assert keys.display_name(Provider.OPENAI_COMPATIBLE, "", "https://api.groq.com/openai/v1") == "api.groq.com"
    strict = open_runtime(environ, migrate=False)  # private addresses not allowed: nothing is sent, nothing saved
    try:
        with pytest.raises(ValidationError, match="BYOK_ALLOW_PRIVATE_ENDPOINTS"):
            keytest.save(strict, alice, owner, Provider.OPENAI_COMPATIBLE, TEAM_KEY, "", "http://127.0.0.1:9/v1")
        assert all(k.mask != "sk-…3333" for k in keys.list_keys(strict, alice, owner))
    finally:
        strict.engine.dispose()


def test_save_checks_the_owner_before_anything_is_sent(environ, people):
    alice, bob, _ = people
    with openai_runtime(environ) as (rt, server):
        with pytest.raises(PermissionDenied):
            keytest.save(rt, bob, Owner.user(alice.user_id), Provider.OPENAI, BOB_KEY)
        with pytest.raises(PermissionDenied):
            keytest.save(rt, bob, Owner.team(), Provider.OPENAI, BOB_KEY)
        with pytest.raises(ValidationError, match="spaces"):
            keytest.save(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, "sk has spaces")
        assert server.requests == []


@pytest.mark.parametrize("pasted, note", [
    ('"sk-fake.quoted-0123456789abcdef"', "The quotes around the key were removed."),
    ("'sk-fake.quoted-0123456789abcdef'", "The quotes around the key were removed."),
    ("\u201csk-fake.quoted-0123456789abcdef\u201d", "The quotes around the key were removed."),
    ("Bearer sk-fake.quoted-0123456789abcdef", "The “Bearer” before the key was removed."),
    ("  bearer   sk-fake.quoted-0123456789abcdef\n", "The “bearer” before the key was removed."),
    ('"Bearer sk-fake.quoted-0123456789abcdef"', "The quotes around the key and the “Bearer” before it were removed."),
    (" sk-fake.quoted-0123456789abcdef \n", ""),  # white space alone goes without a word, as ever
])
def test_quotes_and_bearer_pasted_with_a_key_are_removed_and_said(rt, people, pasted, note):
    alice, _, _ = people
    assert keys.paste_note(pasted) == note
    info = keys.store(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, pasted)
    assert info.mask == "sk-…cdef"
    assert keys.resolve(rt, alice.user_id, Provider.OPENAI).credential.secret.reveal() == \
        "sk-fake.quoted-0123456789abcdef"


@pytest.mark.parametrize("pasted, message", [
    ('"sk-fake.unmatched-0123456789', "quotation mark at one end only"),
    ("sk-fake.unmatched-0123456789\u201d", "quotation mark at one end only"),
    ('"sk-fake.mismatched-0123456789\'', "quotation mark at one end only"),
    ('""', "white space"), ("Bearer sk-fake.a b-0123456789", "spaces")])
def test_a_quote_without_its_pair_is_refused(rt, people, pasted, message):
    alice, _, _ = people
    with pytest.raises(ValidationError, match=message):
        keys.store(rt, alice, Owner.user(alice.user_id), Provider.OPENAI, pasted)
    assert keys.list_keys(rt, alice, Owner.user(alice.user_id)) == []


def test_bearer_alone_is_not_taken_for_a_prefix():
    assert keys.unwrap(" Bearer ") == ("Bearer", []) and keys.unwrap("bearer-sk-1") == ("bearer-sk-1", [])


def test_saving_says_what_was_removed_from_the_pasted_key(environ, people):
    alice, _, _ = people
    with openai_runtime(environ, expect_key="sk-fake.quoted-0123456789abcdef") as (rt, server):
        outcome = keytest.save(rt, alice, Owner.user(alice.user_id), Provider.OPENAI,
                               "'sk-fake.quoted-0123456789abcdef'")
        assert outcome.saved is not None and server.sent_keys() == ["sk-fake.quoted-0123456789abcdef"]
        assert outcome.message.endswith("and tested it: 3 models visible. The quotes around the key were removed.")
