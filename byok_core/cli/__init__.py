"""`byok`: the operator's command line over the same core as the UI.

COMMANDS names every command, the module that runs it and its one-line help, so that ``byok --help``
imports nothing else. Only the module of the command being run is imported: its ``PARSERS[name]``
adds the command's arguments and sets ``func``; the command functions import the core they use.
Every failure is one sentence on stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from importlib import import_module

from byok_core.errors import ByokError

# command: (its module in byok_core.cli, one-line help), in the order `byok --help` lists them
COMMANDS: dict[str, tuple[str, str]] = {
    "gen-key": ("vault", "print a new random master key (64 hex characters)"),
    "doctor": ("vault", "check configuration, database, migrations and every stored key"),
    "rotate-master-key": ("vault", "re-encrypt every stored key under the current ENCRYPTION_KEY"),
    "forget-unreadable-keys": ("vault", "start over without the stored keys no configured master key opens"),
    "reseal-first-format": ("vault", "bind first-format keys left over by an older upgrade to their base URL"),
    "users": ("users", "manage accounts"),
    "keys": ("keys", "manage stored API keys"),
    "usage": ("usage", "usage log, retention, budgets and search prices"),
    "chat": ("chat_search", "stream a reply to stdout; usage is logged as in the UI"),
    "search": ("chat_search", "run a web search and print the normalized results"),
}


def _command_in(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first positional argument (``byok`` itself takes only -h)."""
    for i, arg in enumerate(argv):
        if arg == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: every command is listed with its help, and only the one ``argv`` names
    gets its arguments (its module is imported). Without ``argv``, every command gets them."""
    chosen = None if argv is None else _command_in(argv)
    parser = argparse.ArgumentParser(prog="byok", description="BYOK Dashboard: keys, users, chat, search and usage.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_line) in COMMANDS.items():
        command = sub.add_parser(name, help=help_line)
        if argv is None or name == chosen:
            import_module(f"byok_core.cli.{module}").PARSERS[name](command)
    return parser


def _debug() -> bool:
    from byok_core.cli.common import settings

    try:
        return settings().debug
    except ByokError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Run one command: ``argv``, or as the `byok` program (no ``argv``) this process's arguments.

    The program keeps the garbage collector off its start (see ``common.pause_collector``) and its exit."""
    if argv is not None:
        return _run_command(argv)
    from byok_core.cli.common import pause_collector

    pause_collector()
    try:
        return _run_command(sys.argv[1:])
    finally:
        # The process ends next, with everything committed (the connections are closed) and atexit and
        # the flushing of stdout still to come. Freezing the collector only spares the interpreter a last
        # full collection of every object the imports made (~0.2 s after `byok chat` has printed its
        # reply), memory that the operating system takes back anyway.
        gc.freeze()


def _run_command(argv: list[str]) -> int:
    from byok_core.cli.common import close_runtimes, settings

    settings.cache_clear()  # read the environment afresh for each command (tests run several in one process)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser(argv).parse_args(argv)
    try:
        return args.func(args) or 0
    except ByokError as exc:
        print(f"byok: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("byok: interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback (which could hold a key) unless asked for
        from byok_core.db import storage_error

        problem = storage_error(exc)  # a full disk, a read-only file, a database that is down
        if problem is not None:
            print(f"byok: {problem}", file=sys.stderr)
            return 1
        if _debug():
            raise
        print(f"byok: unexpected {type(exc).__name__}; rerun with BYOK_DEBUG=1 for details.", file=sys.stderr)
        return 2
    finally:
        close_runtimes()
