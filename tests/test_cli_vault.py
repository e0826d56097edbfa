"""`byok gen-key | doctor | rotate-master-key | users | keys` as an operator uses them."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest
import sqlalchemy as sa
from callhelpers import runtime_with, sealed_by_version_1

from byok_core import audit, words
from byok_core.cli import main
from byok_core.crypto import gen_key

SECRET = "sk-fake.cli-secret-value-ZZZZZZZZZZZZ9876"


@pytest.fixture
def cli(environ, monkeypatch, capsys):
    """Run `byok ARGS` in-process with ``stdin`` text; returns (exit code, stdout, stderr)."""
    for name in ("ENCRYPTION_KEY_FILE", "ENCRYPTION_KEY_FALLBACKS", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str, stdin: str = "", env: dict | None = None):
        for name, value in {**environ, **(env or {})}.items():
            if value is None:  # unset
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_gen_key_prints_a_valid_master_key(cli):
    code, out, _ = cli("gen-key")
    assert code == 0 and re.fullmatch(r"[0-9a-f]{64}\n", out)


def test_users_and_keys_round_trip_without_leaking(cli):
    assert cli("users", "create", "alice", "--admin", stdin="alice-password\n")[0] == 0
    code, out, _ = cli("keys", "set", "--user", "alice", "--provider", "openai", "--name", "laptop", "--no-test",
                       stdin=SECRET + "\n")
    assert code == 0 and "sk-…9876" in out
    code, out, _ = cli("keys", "list", "--user", "alice")
    assert code == 0 and "laptop" in out and "sk-…9876" in out and "yes" in out
    key_id = re.search(r"^([0-9a-f]{32})\s", out.splitlines()[1]).group(1)
    code, out, _ = cli("users", "list")
    assert "alice" in out and "admin" in out
    code, out, _err = cli("doctor")
    assert code == 0 and "1 under master key" in out and "healthy" in out
    assert cli("keys", "delete", key_id, "--team")[0] == 1  # not the team's: looks missing
    assert cli("keys", "delete", key_id, "--user", "alice")[0] == 0
    assert "sk-…9876" not in cli("keys", "list", "--user", "alice")[1]


def test_doctor_reports_undecryptable_rows_and_keeps_them(cli, environ):
    cli("users", "create", "alice", stdin="alice-password\n")
    cli("keys", "set", "--user", "alice", "--provider", "anthropic", "--no-test", stdin=SECRET)
    code, out, _ = cli("doctor", env={"ENCRYPTION_KEY": gen_key()})
    assert code == 1 and "PROBLEM: The master key from ENCRYPTION_KEY" in out and "opens none of the 1" in out
    assert "stored keys: 1 under master key" in out and "NOT CONFIGURED" in out and "Nothing was changed" in out
    code, out, _ = cli("doctor")  # the right key again: nothing was lost
    assert code == 0 and "healthy" in out


def test_rotate_master_key_dry_run_then_real(cli, environ):
    cli("users", "create", "alice", stdin="alice-password\n")
    cli("keys", "set", "--user", "alice", "--provider", "google", "--no-test", stdin="AIza-not-a-real-key-0123456789")
    new = {"ENCRYPTION_KEY": gen_key(), "ENCRYPTION_KEY_FALLBACKS": environ["ENCRYPTION_KEY"]}
    code, out, err = cli("rotate-master-key", "--dry-run", env=new)
    assert code == 0 and "would re-encrypt 1" in out, out + err
    code, out, _ = cli("rotate-master-key", env=new)
    assert code == 0 and "re-encrypted 1; already current 0" in out
    code, out, _ = cli("rotate-master-key", env=new)
    assert "re-encrypted 0; already current 1" in out
    code, out, _ = cli("doctor", env={"ENCRYPTION_KEY": new["ENCRYPTION_KEY"], "ENCRYPTION_KEY_FALLBACKS": ""})
    assert code == 0 and "(current)" in out


@pytest.mark.parametrize("args, stdin, message", [
    (["keys", "set", "--user", "nobody", "--provider", "openai"], SECRET, "No user named"),
    (["keys", "set", "--team", "--provider", "openai"], "   \n", "white space"),
    (["users", "create", "bob"], "short\n", "at least 8"),
    (["users", "disable", "ghost"], "", "No user named"),
])
def test_errors_are_one_sentence_on_stderr(cli, args, stdin, message):
    code, out, err = cli(*args, stdin=stdin)
    assert code == 1 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and SECRET not in err + out


def test_installed_command_refuses_a_bad_master_key_without_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCRYPTION_KEY", "DATABASE_URL"))}
    env.update(BYOK_DATA_DIR=str(tmp_path), ENCRYPTION_KEY="abc123")
    result = subprocess.run([sys.executable, "-m", "byok_core", "doctor"], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("byok: ENCRYPTION_KEY must be 64 hexadecimal") and "byok gen-key" in result.stderr
    assert "Traceback" not in result.stderr and "abc123" not in result.stderr


def test_doctor_rebuilds_the_running_budget_figures_from_the_usage_log(cli, rt):
    from callhelpers import log_call

    from byok_core import budgets
    from byok_core.identity import KeySource, Owner
    from byok_core.models import BudgetMonth, table
    from byok_core.providers import Provider

    cli("doctor")  # migrated
    log_call(rt, user_id=None, provider=Provider.BRAVE, key_source=KeySource.ENV, cost_usd=0.25)
    with rt.engine.begin() as conn:  # a running figure that drifted from the log
        conn.execute(table(BudgetMonth).update().values(spent_usd=9.0))
    code, out, _ = cli("doctor")
    assert code == 0 and "running spend was $9.0000, the usage log says $0.2500" in out
    assert [line.spent_usd for line in budgets.spend_report(rt) if line.owner == Owner.team()] == [0.25]
    assert "matches the usage log\n" in cli("doctor")[1]


def test_rotate_master_key_re_encrypts_the_alert_webhook(cli, environ):
    from callhelpers import runtime_with

    from byok_core import alerts, keys
    from byok_core.identity import Actor, Owner
    from byok_core.providers import Provider

    hook = "https://hooks.example.com/services/T0/B0/hook-secret-path-4711"
    with runtime_with(environ) as rt:
        alerts.set_webhook(rt, Actor.operator(), hook)
    new = {"ENCRYPTION_KEY": gen_key(), "ENCRYPTION_KEY_FALLBACKS": environ["ENCRYPTION_KEY"]}
    assert "alert webhook: sealed with a fallback master key" in cli("doctor", env=new)[1]
    code, out, _ = cli("rotate-master-key", "--dry-run", env=new)
    assert code == 0 and "alert webhook: would re-encrypt" in out
    code, out, _ = cli("rotate-master-key", env=new)
    assert code == 0 and "alert webhook: re-encrypted" in out and "hook-secret" not in out
    assert "alert webhook: already current" in cli("rotate-master-key", env=new)[1]
    with runtime_with(environ, ENCRYPTION_KEY=new["ENCRYPTION_KEY"], ENCRYPTION_KEY_FALLBACKS="") as rt:
        assert alerts.webhook(rt) == hook  # the old master key can go: the webhook still opens
        assert [words.audit_sentence(e) for e in audit.recent(rt)] == [
            "An operator (command line) re-encrypted the budget alert webhook under the new master key",
            "An operator (command line) set the budget alert webhook to an address at hooks.example.com"]
    code, out, err = cli("rotate-master-key", env={"ENCRYPTION_KEY": gen_key()})  # it opens nothing stored
    assert code == 1 and "opens none of the 1 stored keys" in err and "hook-secret" not in out + err
    other = gen_key()  # a master key that opens a stored key, but not the webhook
    with runtime_with(environ, ENCRYPTION_KEY=other) as rt:
        keys.store(rt, Actor.operator(), Owner.team(), Provider.BRAVE, "brave-fake.cli-0123456789abcdef")
    code, out, _ = cli("rotate-master-key", env={"ENCRYPTION_KEY": other})
    assert code == 1 and "alert webhook: cannot be decrypted" in out and "hook-secret" not in out
    code, out, _ = cli("doctor", env={"ENCRYPTION_KEY": other})
    assert code == 1 and "alert webhook: PROBLEM" in out
    with runtime_with(environ, ENCRYPTION_KEY=new["ENCRYPTION_KEY"], ENCRYPTION_KEY_FALLBACKS="") as rt:
        assert alerts.webhook(rt) == hook  # left untouched


# --- the master key: never replaced silently, and the ways back ---------------------------------


EMBEDDED = {"ENCRYPTION_KEY": None}  # no ENCRYPTION_KEY: the key file data/master.key (made if absent)


def test_a_missing_key_file_is_refused_until_restored_or_given_up(cli, environ, monkeypatch, tmp_path):
    cli("users", "create", "alice", stdin="alice-password\n")
    cli("keys", "set", "--user", "alice", "--provider", "anthropic", "--no-test", stdin=SECRET)
    key_file = tmp_path / "data" / "master.key"
    code, _, err = cli("doctor", env=EMBEDDED)
    assert code == 1 and "master.key is missing, but the database holds 1 value(s)" in err
    assert "byok forget-unreadable-keys" in err and not key_file.exists()
    code, out, _ = cli("forget-unreadable-keys", env=EMBEDDED)  # lists, deletes nothing
    assert code == 0 and "would forget: key" in out and "user:1 anthropic" in out and SECRET not in out
    code, out, _ = cli("forget-unreadable-keys", "--yes", env=EMBEDDED)
    assert code == 0 and "forgot 1 stored key(s)" in out and key_file.exists()
    code, out, _ = cli("doctor", env=EMBEDDED)
    assert code == 0 and "stored keys: none yet" in out
    with runtime_with({k: v for k, v in environ.items() if k != "ENCRYPTION_KEY"}) as rt:
        [forgotten] = [e for e in audit.recent(rt.engine) if e.action == "key.delete"]
        assert forgotten.actor == "operator" and "forgotten" in forgotten.detail and SECRET not in forgotten.detail


def test_a_key_file_others_can_read_is_a_problem(cli, environ, monkeypatch, tmp_path):
    key_file = tmp_path / "key.txt"
    key_file.write_text(environ["ENCRYPTION_KEY"] + "\n")
    key_file.chmod(0o644)
    env = {**EMBEDDED, "ENCRYPTION_KEY_FILE": str(key_file)}
    code, out, _ = cli("doctor", env=env)
    assert code == 1 and f"PROBLEM: The master key file {key_file} can be read by other users" in out
    assert f"chmod 600 {key_file}" in out
    key_file.chmod(0o600)
    code, out, _ = cli("doctor", env=env)
    assert code == 0 and "healthy" in out


def test_rotate_dry_run_and_doctor_agree_on_what_is_unreadable(cli, environ):
    from byok_core import keys
    from byok_core.identity import Actor, Owner
    from byok_core.models import ApiKey
    from byok_core.providers import Provider

    with runtime_with(environ) as rt:
        good = keys.store(rt, Actor.operator(), Owner.team(), Provider.BRAVE, "brave-fake.cli-0123456789abcdef")
        planted = keys.store(rt, Actor.operator(), Owner.team(), Provider.TAVILY, "tvly-fake.cli-0123456789abcd")
        with rt.engine.begin() as conn:  # a first-format value no manifest lists, under the current key id
            conn.execute(sa.update(ApiKey).where(ApiKey.id == planted.id).values(ciphertext=sealed_by_version_1(
                rt.keyring, "tvly-fake.cli-0123456789abcd", f"team:0|tavily|{planted.id}")))
    code, out, _ = cli("doctor")
    assert code == 1 and out.count("PROBLEM: key") == 1 and planted.id in out and good.id not in out
    code, out, _ = cli("rotate-master-key", "--dry-run")
    assert code == 1 and "would re-encrypt 0; already current 1; unreadable 1" in out


def test_first_format_keys_left_by_an_older_upgrade_can_be_resealed_by_the_operator(cli, environ):
    """An install whose first start after the upgrade ran an older version of the re-sealing, which
    dropped its marker although no configured key opened the values: the operator, who
    holds the right key, re-seals them to the base URLs their rows have, after seeing them."""
    from byok_core import keys
    from byok_core.identity import Actor, Owner
    from byok_core.models import ApiKey
    from byok_core.providers import Provider

    key = "sk-fake.cli-compatible-0123456789abcdef"
    with runtime_with(environ, BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as rt:
        row = keys.store(rt, Actor.operator(), Owner.team(), Provider.OPENAI_COMPATIBLE, key,
                         base_url="https://llm.example.com/v1")
        with rt.engine.begin() as conn:
            conn.execute(sa.update(ApiKey).where(ApiKey.id == row.id).values(ciphertext=sealed_by_version_1(
                rt.keyring, key, f"team:0|openai-compatible|{row.id}")))
    code, out, _ = cli("reseal-first-format")
    assert code == 0 and f"would re-seal: key {row.id} (team:0 openai-compatible), bound to " \
                         "https://llm.example.com/v1" in out and "rerun with --yes" in out
    assert cli("doctor")[0] == 1  # nothing was written
    code, out, _ = cli("reseal-first-format", "--yes")
    assert code == 0 and f"re-sealed: key {row.id}" in out
    assert cli("doctor")[0] == 0
    with runtime_with(environ) as rt:
        assert keys.resolve(rt, None, Provider.OPENAI_COMPATIBLE).credential.secret.reveal() == key
    assert "no stored key is in the first format" in cli("reseal-first-format")[1]


def test_keys_set_tests_the_key_first_as_the_keys_page_does(cli):
    """A rejected key is not saved; a key pasted in quotes or after "Bearer " is tested and saved
    without them, and it says so; --no-test saves without asking the provider."""
    from fakeproviders import FakeProvider

    from byok_core.providers import Provider

    cli("users", "create", "alice", stdin="alice-password\n")
    with FakeProvider(Provider.OPENAI, expect_key=SECRET) as openai:
        env = openai.env()
        code, out, err = cli("keys", "set", "--user", "alice", "--provider", "openai", stdin="sk-wrong-0123456789abc\n",
                             env=env)
        assert code == 1 and err.startswith("byok: Not saved: OpenAI rejected the key") and out == ""
        assert "sk-wrong" not in err and cli("keys", "list", "--user", "alice", env=env)[1].count("\n") == 1
        code, out, err = cli("keys", "set", "--user", "alice", "--provider", "openai", stdin=f'"Bearer {SECRET}"\n',
                             env=env)
        assert code == 0 and "stored openai key sk-…9876" in out
        assert "and tested it" in err and "The quotes around the key and the “Bearer” before it were removed." in err
        assert openai.sent_keys()[-1] == SECRET and SECRET not in out + err
        tried = len(openai.requests)
        code, out, err = cli("keys", "set", "--user", "alice", "--provider", "openai", "--no-test",
                             stdin=f"'{SECRET}'\n", env=env)
        assert code == 0 and len(openai.requests) == tried and err == "The quotes around the key were removed.\n"


def test_keys_set_offers_no_test_when_the_provider_cannot_be_reached(cli):
    cli("users", "create", "alice", stdin="alice-password\n")
    code, _, err = cli("keys", "set", "--user", "alice", "--provider", "openai", stdin=SECRET + "\n",
                       env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert code == 1 and err.startswith("byok: Not saved yet: the key sk-…9876 could not be tested")
    assert err.rstrip().endswith("(--no-test saves it without testing)") and SECRET not in err


def test_deleting_a_key_says_the_one_it_replaced_can_still_be_restored(cli):
    cli("users", "create", "alice", stdin="alice-password\n")
    first = "sk-fake.first-key-0123456789-aaaa1111"
    for key in (first, SECRET):
        cli("keys", "set", "--user", "alice", "--provider", "anthropic", "--no-test", stdin=key + "\n")
    listed = cli("keys", "list", "--user", "alice")[1].splitlines()[1:]
    active = next(line.split()[0] for line in listed if " yes " in line)
    replaced = next(line.split()[0] for line in listed if " no " in line)
    code, out, err = cli("keys", "delete", active, "--user", "alice")
    assert code == 0 and out == f"deleted key {active}\n"
    assert err.startswith(f"The key sk-…1111 it replaced (id {replaced}) can still be restored on the Keys page until ")
    assert f"`byok keys delete {replaced} --user alice` deletes it now." in err
    code, out, err = cli("keys", "delete", replaced, "--user", "alice")
    assert code == 0 and err == ""


def test_keys_list_shows_the_connection_whether_it_works_and_its_expiry(cli, environ):
    from datetime import timedelta

    from byok_core import connections, keys
    from byok_core.clock import utcnow
    from byok_core.identity import Actor, Owner
    from byok_core.models import ApiKey, table
    from byok_core.providers import Provider

    op, team = Actor.operator(), Owner.team()
    with runtime_with(environ) as rt:
        groq = connections.create(rt, op, team, "Groq", connections.PRESETS["groq"].base_url, "groq")
        keys.store(rt, op, team, Provider.OPENAI_COMPATIBLE, "gsk_fake-cli-list-0123456789-gggg", connection=groq.id)
        soon = utcnow().date() + timedelta(days=30)
        openai = keys.store(rt, op, team, Provider.OPENAI, SECRET, expires_on=soon)
        with rt.engine.begin() as conn:  # as the daily check leaves a key the provider rejected
            conn.execute(sa.update(table(ApiKey)).where(table(ApiKey).c.id == openai.id).values(
                failing_since=utcnow(), failing_reason="rejected", checked_at=utcnow()))
    code, out, _ = cli("keys", "list", "--team")
    header, *lines = out.splitlines()
    assert code == 0 and header.split()[:10] == ["id", "provider", "connection", "label", "mask", "active", "works",
                                                 "expires", "created", "last"]
    [compat] = [line for line in lines if "openai-compatible" in line]
    [own] = [line for line in lines if " openai " in line]
    assert " Groq " in compat and "not checked" in compat and " never " in compat
    assert f"no, since {utcnow():%Y-%m-%d} (rejected)" in own and f"{soon:%Y-%m-%d}" in own
    assert SECRET not in out and "gsk_fake-cli-list" not in out
