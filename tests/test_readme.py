"""The README's tables say what the code does: the Configuration table lists every environment
variable the app reads (and no other), with the defaults ``Settings`` uses; the Command line table
lists every command and subcommand of ``byok`` (and no other), with the options each has."""

from __future__ import annotations

import argparse
import ast
import re
from dataclasses import fields
from itertools import takewhile
from pathlib import Path

from byok_core.cli import COMMANDS, build_parser
from byok_core.runtime import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
VARIABLE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")  # how an environment variable's name looks
NAME = re.compile(r"[a-z][a-z-]*")  # a subcommand in the Command line table (arguments are in capitals)
NOT_VARIABLES = {"SEARCH_PROVIDER": "a metavar of byok chat --search"}


def _table(heading: str) -> list[list[str]]:
    """The cells of the first table under ``heading``, without its header and rule rows."""
    lines = README.split(f"\n{heading}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = list(takewhile(lambda line: line.startswith("|"), lines[start:]))[2:]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


def _code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# --- environment variables -----------------------------------------------------------------------


def _configuration() -> dict[str, tuple[str, str]]:
    """Each variable in the Configuration table: (its documented default, its meaning)."""
    found = {}
    for names, defaults, meaning in _table("## Configuration"):
        names = _code(names)
        defaults = [d.strip().strip("`") for d in defaults.split(",")]
        assert len(defaults) in (1, len(names)), f"one default for each of {names}, or one for all"
        for i, name in enumerate(names):
            found[name] = (defaults[i if len(defaults) > 1 else 0], meaning)
    return found


def _variables_named_in(paths: list[Path]) -> set[str]:
    """Every string in the code shaped like an environment variable's name, but for the names in a
    module's ``__all__`` (which are Python names, such as a constant's)."""
    found = set()
    for path in paths:
        tree = ast.parse(path.read_text())
        exported = {id(node) for stmt in tree.body if isinstance(stmt, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "__all__" for t in stmt.targets)
                    for node in ast.walk(stmt.value)}
        found |= {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and id(node) not in exported
                  and isinstance(node.value, str) and VARIABLE.fullmatch(node.value)}
    return found


def _variables_tests_read() -> set[str]:
    code = "".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
    return set(re.findall(r"(?:environ\.get\(|environ\[|getenv\()\s*\"([A-Z0-9_]+)\"", code))


def test_the_configuration_table_lists_every_variable_the_app_reads_and_no_other():
    product = [p for d in ("byok_core", "byok_ui", "pages") for p in (ROOT / d).rglob("*.py")
               if "migrations" not in p.parts] + [ROOT / "streamlit_app.py"]
    read = _variables_named_in(product) - set(NOT_VARIABLES)
    table = _configuration()
    for_tests = {name for name, (_, meaning) in table.items() if meaning.startswith("tests only")}
    assert {"ENCRYPTION_KEY", "BYOK_METRICS_TOKEN", "SERPER_BASE_URL"} <= read  # sanity: the scan finds them
    assert read == set(table) - for_tests
    assert for_tests == _variables_tests_read() - read


def _shown(value: object) -> str:
    """A Settings value as the Configuration table writes its default."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def test_the_documented_defaults_are_the_ones_settings_uses():
    """Each variable Settings reads (setting it changes a field) is documented with that field's default."""
    default = Settings.from_env({})
    checked = []
    for name, (documented, _) in _configuration().items():
        given = Settings.from_env({name: "1"})
        changed = [f.name for f in fields(Settings) if f.name != "environ"
                   and getattr(given, f.name) != getattr(default, f.name)]
        if not changed:
            continue  # read elsewhere (the master key, single sign-on, metrics) or by the tests
        before, after = getattr(default, changed[0]), getattr(given, changed[0])
        if isinstance(before, dict):  # per provider: the entry the variable set
            provider = next(p for p in after if after[p] != before.get(p))
            before = before.get(provider)
        documented = documented.replace("$BYOK_DATA_DIR", str(default.data_dir))
        assert _shown(before) == documented, name
        checked.append(name)
    assert {"BYOK_DATA_DIR", "DATABASE_URL", "BYOK_READ_TIMEOUT", "OPENAI_BASE_URL", "OPENAI_API_KEY",
            "BYOK_DEBUG"} <= set(checked)


# --- commands --------------------------------------------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next((dict(a.choices) for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings if o.startswith("--") and o != "--help"}


def _documented_commands() -> dict[tuple[str, ...], set[str] | None]:
    """Each command (or command and subcommand) the Command line table names: the options it shows,
    or None where it only names alternatives (``byok usage export \\| prune``, documented elsewhere)."""
    found: dict[tuple[str, ...], set[str] | None] = {}
    for cell, _ in _table("## Command line"):
        command = None
        for span in _code(cell):
            words = span.split()
            if words[0] == "byok":
                command, words = words[1], words[2:]
            assert command is not None, f"{span!r} follows no `byok COMMAND`"
            options = set(re.findall(r"--[a-z-]+", span))
            subs = [w for i, w in enumerate(words) if NAME.fullmatch(w) and (i == 0 or words[i - 1] == "\\|")]
            if len(subs) > 1:
                found |= dict.fromkeys([(command, sub) for sub in subs])
            elif subs:
                found[(command, subs[0])] = options
            else:
                found[(command,)] = options
    return found


def _cli_commands() -> dict[tuple[str, ...], set[str]]:
    found = {}
    for name, parser in _subparsers(build_parser()).items():
        subs = _subparsers(parser)
        found |= {(name, sub): _options(p) for sub, p in subs.items()} if subs else {(name,): _options(parser)}
    return found


def test_the_command_line_table_lists_every_command_and_subcommand_and_no_other():
    cli, table = _cli_commands(), _documented_commands()
    assert {c[0] for c in cli} == set(COMMANDS)  # sanity: every command of the table in byok_core.cli
    assert ("users", "set-role") in cli and ("usage", "prices") in cli
    assert sorted(table) == sorted(cli)


def test_the_command_line_table_shows_each_commands_options():
    cli = _cli_commands()
    shown = {command: options for command, options in _documented_commands().items() if options is not None}
    assert ("keys", "set") in shown and ("chat",) in shown  # sanity
    assert {command: cli[command] for command in shown} == shown
