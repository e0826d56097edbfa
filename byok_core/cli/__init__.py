"""`byok`: the operator's command line over the same core as the UI.

Each module in COMMANDS adds its subcommands with ``register(subparsers)`` and sets ``func``.
Every failure is one sentence on stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import import_module

from byok_core.errors import ByokError

COMMANDS = ["vault", "users", "keys", "usage", "calls"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="byok", description="BYOK Dashboard: keys, users, chat, search and usage.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        import_module(f"byok_core.cli.{name}").register(sub)
    return parser


def _debug() -> bool:
    from byok_core.cli.common import settings

    try:
        return settings().debug
    except ByokError:
        return False


def main(argv: list[str] | None = None) -> int:
    from byok_core.cli.common import settings

    settings.cache_clear()  # read the environment afresh for each command (tests run several in one process)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except ByokError as exc:
        print(f"byok: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("byok: interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback (which could hold a key) unless asked for
        if _debug():
            raise
        print(f"byok: unexpected {type(exc).__name__}; rerun with BYOK_DEBUG=1 for details.", file=sys.stderr)
        return 2
