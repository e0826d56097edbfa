"""`byok usage ...` end to end: export, prune, budgets, prices, and one-sentence errors."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from byok_core import pricing
from byok_core.cli import main
from byok_core.models import UsageRecord, User
from byok_core.providers import Provider


@pytest.fixture
def cli(rt, environ, monkeypatch, capsys):
    """Run `byok ARGS...` against the test database; returns (exit code, stdout, stderr)."""
    for name, value in environ.items():
        monkeypatch.setenv(name, value)

    def run(*argv: str):
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def logged(rt):
    """alice (id 1) and bob, and four calls over two days."""
    def call(day, user_id, provider, model, cost):
        return UsageRecord(ts=datetime(2026, 5, day, 9, 30, tzinfo=UTC), user_id=user_id, kind=provider.kind.value,
                           provider=provider.value, model=model, key_source="team", input_tokens=None if not model
                           else 100, output_tokens=None if not model else 20, latency_ms=250, cost_usd=cost)

    with Session(rt.engine) as session, session.begin():
        session.add_all([User(username="alice", password_hash="-"), User(username="bob", password_hash="-")])
        session.flush()
        session.add_all([call(1, 1, Provider.OPENAI, "gpt-4o", 0.5), call(1, 2, Provider.BRAVE, "", None),
                         call(2, 1, Provider.ANTHROPIC, "claude-x", 0.25), call(2, None, Provider.BRAVE, "", 0.005)])


def test_export_csv_with_filters(cli, logged):
    code, out, err = cli("usage", "export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert (code, err) == (0, "")
    assert list(rows[0]) == ["timestamp", "user", "provider", "model", "key_source", "input_tokens",
                             "output_tokens", "latency_ms", "status", "cost_usd",
                             "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "connection", "priced_usd"]
    assert [(r["user"], r["provider"], r["cost_usd"]) for r in rows] == [
        ("alice", "openai", "0.5"), ("bob", "brave", ""), ("alice", "anthropic", "0.25"), ("", "brave", "0.005")]
    assert rows[1]["input_tokens"] == "" and rows[0]["timestamp"] == "2026-05-01T09:30:00+00:00"

    _, out, _ = cli("usage", "export", "--user", "alice", "--since", "2026-05-02")
    assert [r["provider"] for r in csv.DictReader(io.StringIO(out))] == ["anthropic"]
    _, out, _ = cli("usage", "export", "--until", "2026-05-01", "--provider", "brave", "--provider", "openai")
    assert [r["user"] for r in csv.DictReader(io.StringIO(out))] == ["alice", "bob"]


def test_prune_and_dry_run(cli, logged):
    assert cli("usage", "prune", "--before", "2026-05-02", "--dry-run")[1] == (
        "would remove 2 usage rows logged before 2026-05-02 (UTC)\n")
    assert cli("usage", "prune", "--before", "2026-05-02")[1] == "removed 2 usage rows logged before 2026-05-02 (UTC)\n"
    assert cli("usage", "prune", "--before", "2026-05-02")[1].startswith("removed 0 usage rows")
    _, out, _ = cli("usage", "export")
    assert len(out.splitlines()) == 3  # header and the two calls of May 2


def test_budget_set_show_clear(cli, logged):
    assert cli("usage", "budget", "set", "--team", "100")[0] == 0
    assert cli("usage", "budget", "set", "--user", "alice", "2.5")[1] == (
        "monthly budget for alice: $2.50 on shared keys\n")
    code, out, _ = cli("usage", "budget", "show")
    assert code == 0 and out.splitlines()[1].split() == ["team", "$100.00", "$0.00", "$0.00", "$100.00", "0%"]
    assert out.splitlines()[2].split() == ["alice", "$2.50", "$0.00", "$0.00", "$2.50", "0%"]
    code, _, err = cli("usage", "budget", "set", "--user", "alice", "0.005")
    assert code == 1 and "whole cents" in err
    assert cli("usage", "budget", "clear", "--user", "alice")[1] == "removed the monthly budget for alice\n"
    assert cli("usage", "budget", "clear", "--user", "alice")[1] == "alice had no budget\n"


def test_search_prices(cli, rt):
    code, out, _ = cli("usage", "prices", "--set", "brave", "0.02")
    assert code == 0 and ["brave", "0.0200", "0.0050"] in [line.split() for line in out.splitlines()]
    assert pricing.search_price(rt, Provider.BRAVE) == 0.02


@pytest.mark.parametrize("argv", [
    ["usage", "export", "--since", "yesterday"],
    ["usage", "export", "--until", ""],
    ["usage", "export", "--format", "xlsx"],
    ["usage", "export", "--provider", "nope"],
    ["usage", "export", "--key-source", "boss"],
    ["usage", "export", "--user", "nobody"],
    ["usage", "prune", "--before", "2026-02-30"],
    ["usage", "budget", "set", "--team", "ten"],
    ["usage", "budget", "set", "--team", "-5"],
    ["usage", "budget", "clear", "--user", "nobody"],
    ["usage", "prices", "--set", "openai", "0.1"],
    ["usage", "prices", "--set", "brave", "1000"],
])
def test_errors_are_one_sentence_and_non_zero(cli, argv):
    code, out, err = cli(*argv)
    assert code != 0 and out == ""
    assert err.startswith("byok: ") and err.endswith(".\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
