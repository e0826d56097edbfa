"""`byok` imports only what the command it runs needs (bench/cli.py times it; these tests check what
is imported, in a fresh `byok` process each, so that a heavy import creeping back fails here)."""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
from importlib import import_module
from typing import NamedTuple

import pytest
from callhelpers import usage_rows
from fakeproviders import FakeProvider

from byok_core.cli import COMMANDS, build_parser, main
from byok_core.crypto import gen_key
from byok_core.providers import Provider
from byok_core.startup import open_runtime

# the byok process, as the console script runs it; the modules it imported go to stderr at exit,
# and those it had imported when it first wrote to stdout (a chat's first text)
PROCESS = """
import atexit, sys
import gc
first = []
class Stdout:
    def __getattr__(self, name):
        return getattr(sys.__stdout__, name)
    def write(self, text):
        first.extend([] if first else ["-", *sys.modules])
        return sys.__stdout__.write(text)
sys.stdout = Stdout()
atexit.register(lambda: sys.stderr.write(f"\\nGC {gc.isenabled()} {gc.get_freeze_count()}"
                                         f"\\nFIRST {' '.join(first)}"
                                         f"\\nIMPORTED {' '.join(sorted(sys.modules))}\\n"))
from byok_core.cli import main
raise SystemExit(main())
"""
DATABASE = {"sqlalchemy", "sqlmodel", "alembic", "psycopg"}
HEAVY = {"pandas", "numpy", "httpx", "genai_prices", "argon2", "cryptography", *DATABASE}


class Run(NamedTuple):
    code: int
    out: str
    err: str
    imported: set[str]  # top-level packages, and byok_core's modules
    at_first_output: set[str]  # every module imported when it first wrote to stdout
    collector: tuple[bool, int]  # at exit: is the garbage collector on, how many objects are frozen


def byok(*argv: str, env: dict[str, str] | None = None, cwd: str | None = None) -> Run:
    """Run `byok ARGV` in a new process."""
    environ = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    proc = subprocess.run([sys.executable, "-c", PROCESS, *argv], capture_output=True, text=True, timeout=60,
                          env={**environ, **(env or {})}, cwd=cwd)
    err, _, tail = proc.stderr.rpartition("\nGC ")
    assert tail, proc.stderr
    counts, _, names = tail.partition("\nIMPORTED")
    enabled, frozen, _, *first = counts.split()
    imported = {m.partition(".")[0] for m in names.split()} | {m for m in names.split() if m.startswith("byok_core")}
    return Run(proc.returncode, proc.stdout, err, imported, set(first[1:]), (enabled == "True", int(frozen)))


def test_help_imports_nothing_heavy(tmp_path):
    code, out, _, imported, *_ = byok("--help", cwd=str(tmp_path))
    assert code == 0 and out.startswith("usage: byok")
    for name, (_, help_line) in COMMANDS.items():
        assert re.search(rf"^\s+{re.escape(name)}\s", out, re.MULTILINE), name
        assert " ".join(help_line.split()[:3]) in " ".join(out.split())
    assert not imported & HEAVY
    assert {m for m in imported if m.startswith("byok_core")} == {
        "byok_core", "byok_core.cli", "byok_core.cli.common", "byok_core.errors"}


@pytest.mark.parametrize("argv", [
    ["gen-key", "--help"], ["doctor", "--help"], ["rotate-master-key", "--help"], ["users", "create", "--help"],
    ["keys", "set", "--help"], ["usage", "export", "--help"], ["usage", "budget", "set", "--help"],
    ["chat", "--help"], ["search", "--help"],
])
def test_a_commands_help_imports_only_its_own_module(argv, tmp_path):
    code, out, _, imported, *_ = byok(*argv, cwd=str(tmp_path))
    assert code == 0 and out.startswith("usage: byok")
    assert not imported & DATABASE and "pandas" not in imported
    module = f"byok_core.cli.{COMMANDS[argv[0]][0]}"
    assert module in imported
    assert not {f"byok_core.cli.{m}" for m, _ in COMMANDS.values()} - {module} & imported


def test_gen_key_needs_no_database(tmp_path):
    code, out, _, imported, *_ = byok("gen-key", cwd=str(tmp_path))
    assert code == 0 and re.fullmatch(r"[0-9a-f]{64}\n", out)
    assert not imported & DATABASE and not imported & {"pandas", "httpx"}
    assert not (tmp_path / "data").exists()


def test_an_unknown_command_lists_the_commands(tmp_path):
    code, _, err, imported, *_ = byok("chta", "hi", cwd=str(tmp_path))
    assert code == 2 and "invalid choice: 'chta'" in err and "'chat'" in err
    assert not imported & HEAVY


@pytest.fixture(scope="module")
def chat_process(tmp_path_factory):
    """`byok chat` run as a process on a migrated SQLite database: (its Run, its environment). One run
    for the module: its tests read different facts of the same run (two processes each: ~1.5 s)."""
    tmp_path = tmp_path_factory.mktemp("chat-process")
    env = {"BYOK_DATA_DIR": str(tmp_path / "data"), "ENCRYPTION_KEY": gen_key(), "OPENAI_API_KEY": "sk-fake.start-0"}
    assert byok("doctor", env=env, cwd=str(tmp_path)).code == 0  # migrates the new database
    with FakeProvider(Provider.OPENAI, reply="Hello there", input_tokens=5, output_tokens=2) as server:
        run = byok("chat", "--provider", "openai", "--model", "gpt-4o-mini", "hi", env={**env, **server.env()},
                   cwd=str(tmp_path))
    return run, env


def test_a_chat_process_writes_its_reply_and_its_usage_row(chat_process):
    run, env = chat_process
    assert (run.code, run.out) == (0, "Hello there\n"), run.err
    assert run.collector[0] and run.collector[1] > 100_000  # on again, with what the start made frozen
    rt = open_runtime(env, migrate=False)
    [row] = usage_rows(rt)
    assert (row.status, row.input_tokens, row.output_tokens) == ("ok", 5, 2) and row.cost_usd
    rt.engine.dispose()


def test_chat_imports_neither_pandas_nor_alembic(chat_process):
    run, _ = chat_process
    assert run.code == 0
    assert not {"pandas", "alembic", "byok_core.accounts"} & run.imported


def test_chat_prices_and_counts_the_call_after_its_first_text(chat_process):
    """Before the first text a chat on SQLite loads neither the price table nor the metrics library
    nor the PostgreSQL dialect; afterwards the call is priced (the row's cost) and counted."""
    run, _ = chat_process
    assert run.code == 0 and "byok_core.chat" in run.at_first_output
    assert not {"genai_prices", "prometheus_client", "sqlalchemy.dialects.postgresql"} & run.at_first_output
    assert {"genai_prices", "prometheus_client"} <= run.imported


def test_main_with_arguments_leaves_the_collector_alone(capsys):
    frozen = gc.get_freeze_count()
    assert main(["gen-key"]) == 0 and re.fullmatch(r"[0-9a-f]{64}\n", capsys.readouterr().out)
    assert gc.isenabled() and gc.get_freeze_count() == frozen  # tests call main in their own process


def test_the_command_table_names_what_each_module_sets_up():
    for module in {m for m, _ in COMMANDS.values()}:
        parsers = import_module(f"byok_core.cli.{module}").PARSERS
        assert set(parsers) == {name for name, (m, _) in COMMANDS.items() if m == module}, module


@pytest.mark.parametrize("argv", [
    ["gen-key"], ["rotate-master-key", "--dry-run"], ["users", "disable", "bob"],
    ["keys", "set", "--team", "--provider", "openai", "--name", "ci"], ["usage", "prune", "--before", "2024-01-01"],
    ["usage", "budget", "set", "--user", "bob", "25"], ["chat", "--provider", "anthropic", "--model", "m", "a", "b"],
    ["search", "--provider", "brave", "--limit", "3", "--", "-x", "y"],
])
def test_the_parser_for_one_command_reads_it_as_the_full_parser_does(argv):
    def parsed(parser: argparse.ArgumentParser) -> dict[str, object]:
        return vars(parser.parse_args(argv))

    assert parsed(build_parser(argv)) == parsed(build_parser())
