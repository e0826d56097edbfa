"""Helpers shared by the CLI modules: opening the runtime, reading secrets, picking an owner.

Light to import: the core modules are imported by the functions that use them."""

from __future__ import annotations

import argparse
import functools
import gc
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from byok_core.errors import ValidationError

if TYPE_CHECKING:
    from byok_core.identity import Owner
    from byok_core.runtime import Runtime, Settings

# each command module's PARSERS: command name -> what adds its arguments and sets ``func``
Parsers = dict[str, Callable[[argparse.ArgumentParser], None]]


@functools.cache
def settings() -> Settings:
    """The environment, read once per command."""
    from byok_core.runtime import Settings

    return Settings.from_env()


_opened: list[Runtime] = []
_collector_paused = False


def pause_collector() -> None:
    """For the `byok` process: no collection of cyclic garbage while the command starts. Its imports make
    hundreds of thousands of objects that live until the process ends, and each full collection on the
    way rescans them all (~50 ms in all before `byok chat` prints its first text). Opening the runtime
    ends the start."""
    global _collector_paused
    gc.disable()
    _collector_paused = True


def runtime(*, migrate: bool = True, starting_over: bool = False) -> Runtime:
    """The runtime for this command; ``close_runtimes`` closes its database connections at the end."""
    from byok_core.startup import open_runtime

    global _collector_paused
    rt = open_runtime(settings=settings(), migrate=migrate, starting_over=starting_over)
    _opened.append(rt)
    if _collector_paused:  # started: what exists now lives until the end, so later collections skip it
        _collector_paused = False
        gc.freeze()
        gc.enable()
    return rt


def close_runtimes() -> None:
    """Close the connections of every runtime opened (each write has been committed by then)."""
    while _opened:
        _opened.pop().engine.dispose()


def read_secret(prompt: str) -> str:
    """A secret from stdin (one line), or a hidden prompt when stdin is a terminal."""
    if sys.stdin is None:
        raise ValidationError("Pipe the value on standard input.")
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\r\n")


def add_owner_args(parser: argparse.ArgumentParser, *, team: bool = True) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--user", metavar="NAME", help="a user's keys")
    if team:
        group.add_argument("--team", action="store_true", help="the team's shared keys")


def owner_of(rt: Runtime, args: argparse.Namespace) -> Owner:
    from byok_core import accounts
    from byok_core.identity import Owner

    if getattr(args, "team", False):
        return Owner.team()
    return Owner.user(accounts.get_user(rt, args.user).id)


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
