"""Helpers shared by the CLI modules: opening the runtime, reading secrets, picking an owner."""

from __future__ import annotations

import argparse
import functools
import getpass
import sys
from typing import TYPE_CHECKING, TypeAlias

from byok_core import accounts
from byok_core.errors import ValidationError
from byok_core.identity import Owner
from byok_core.runtime import Runtime, Settings, open_runtime


@functools.cache
def settings() -> Settings:
    """The environment, read once per command."""
    return Settings.from_env()


def runtime(*, migrate: bool = True) -> Runtime:
    return open_runtime(settings=settings(), migrate=migrate)


def read_secret(prompt: str) -> str:
    """A secret from stdin (one line), or a hidden prompt when stdin is a terminal."""
    if sys.stdin is None:
        raise ValidationError("Pipe the value on standard input.")
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\r\n")


# what ``add_subparsers`` returns: each command module registers its commands on it
if TYPE_CHECKING:
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction


def add_owner_args(parser: argparse.ArgumentParser, *, team: bool = True) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--user", metavar="NAME", help="a user's keys")
    if team:
        group.add_argument("--team", action="store_true", help="the team's shared keys")


def owner_of(rt: Runtime, args: argparse.Namespace) -> Owner:
    if getattr(args, "team", False):
        return Owner.team()
    return Owner.user(accounts.get_user(rt, args.user).id)


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
