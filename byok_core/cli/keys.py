"""`byok keys set|list|delete|test|check`: keys are read from stdin, never from arguments."""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import date, datetime
from typing import TYPE_CHECKING

from byok_core.cli.common import Parsers, add_owner_args, owner_of, print_table, read_secret, runtime
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider

if TYPE_CHECKING:
    from byok_core import keys
    from byok_core.runtime import Runtime


def _fmt(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M") if dt else "never"


def keys_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_subparsers(dest="action", required=True)
    p = group.add_parser("set", help="store a key read from stdin (replaces the active one)")
    add_owner_args(p)
    p.add_argument("--provider", required=True, type=Provider.arg, metavar="P", help=", ".join(Provider))
    p.add_argument("--name", default="", metavar="LABEL", help="optional label")
    p.add_argument("--base-url", default=None, metavar="URL", help="endpoint for openai-compatible keys")
    p.add_argument("--connection", default=None, metavar="NAME", help="the openai-compatible connection it is for")
    p.add_argument("--no-test", action="store_true",
                   help="save without first testing the key with the provider's cheapest authenticated call")
    p.add_argument("--expires", default=None, type=_day, metavar="YYYY-MM-DD",
                   help="the last day the key is used (a contractor's, a trial's)")
    p.set_defaults(func=cmd_set)
    p = group.add_parser("list", help="list keys (masks only)")
    add_owner_args(p)
    p.set_defaults(func=cmd_list)
    p = group.add_parser("delete", help="delete a key by id")
    p.add_argument("id")
    add_owner_args(p)
    p.set_defaults(func=cmd_delete)
    p = group.add_parser("test", help="check a stored key with the provider's cheapest authenticated call")
    add_owner_args(p)
    p.add_argument("--provider", required=True, type=Provider.arg, metavar="P", help=", ".join(Provider))
    p.add_argument("--connection", default=None, metavar="NAME", help="the openai-compatible connection to test")
    p.set_defaults(func=cmd_test)
    p = group.add_parser("check", help="one round of the daily key watch (for cron): checks the keys that are due")
    p.set_defaults(func=cmd_check)


PARSERS: Parsers = {"keys": keys_args}


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day written YYYY-MM-DD, such as 2026-12-31") from None


def _connection(rt: Runtime, owner: Owner, name: str | None) -> str | None:
    """The id of the owner's connection called ``name`` (None: none asked for)."""
    from byok_core import connections
    from byok_core.errors import NotFoundError

    if name is None:
        return None
    wanted = " ".join(name.split()).lower()
    found = next((c for c in connections.list_connections(rt, Actor.operator(), owner) if c.name.lower() == wanted),
                 None)
    if found is None:
        raise NotFoundError(f"{owner} has no connection named {name!r}; add it on the Keys page first.")
    return found.id


def cmd_set(args: argparse.Namespace) -> int:
    """Test the key, then save it (``--no-test``: save it untested), as the Keys page does."""
    from byok_core import keys, keytest

    rt = runtime()
    owner = owner_of(rt, args)
    raw = read_secret(f"{args.provider.label} key: ")
    outcome = keytest.save(rt, Actor.operator(), owner, args.provider, raw, label=args.name, base_url=args.base_url,
                           test=not args.no_test, expires_on=args.expires,
                           connection=_connection(rt, owner, args.connection))
    if outcome.saved is None:
        hint = " (--no-test saves it without testing)" if outcome.can_save_untested else ""
        print(f"byok: {outcome.message}{hint}", file=sys.stderr)
        return 1
    info = outcome.saved
    print(f"stored {info.provider.value} key {info.mask} for {owner} (id {info.id})")
    said = outcome.message if outcome.status is not None else keys.paste_note(raw)  # untested: nothing to add
    if said:
        print(said, file=sys.stderr)
    return 0


def _works(key: keys.KeyInfo) -> str:
    """What the last check (a test, or the daily key watch) found, in a word or a few."""
    from byok_core.errors import CallStatus

    if key.failing_since is not None:
        return f"no, since {key.failing_since:%Y-%m-%d} ({key.failing_reason})"
    if key.checked_at is None:
        return "not checked"
    return "yes" if key.last_test_status is CallStatus.OK else "could not tell"


def cmd_list(args: argparse.Namespace) -> int:
    from byok_core import connections, keys

    rt = runtime()
    owner = owner_of(rt, args)
    rows = keys.list_keys(rt, Actor.operator(), owner)
    named = {c.id: c.name for c in connections.list_connections(rt, Actor.operator(), owner)}
    print_table(["id", "provider", "connection", "label", "mask", "active", "works", "expires", "created",
                 "last used"], [
        [k.id, k.provider.value, named.get(k.connection_id or "", ""), k.label, k.mask, "yes" if k.active else "no",
         _works(k), f"{k.expires_on:%Y-%m-%d}" + (" (expired)" if k.expired else "") if k.expires_on else "never",
         _fmt(k.created_at), _fmt(k.last_used_at)]
        for k in rows
    ])
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from byok_core import keys

    rt = runtime()
    owner = owner_of(rt, args)
    left = keys.delete(rt, Actor.operator(), owner, args.id)
    print(f"deleted key {args.id}")
    until = keys.restorable_until(left) if left is not None else None
    if left is not None and until is not None:
        team = "--team" if owner.is_team else f"--user {shlex.quote(args.user)}"
        print(f"The key {left.mask} it replaced (id {left.id}) can still be restored on the Keys page until "
              f"{until:%Y-%m-%d}; `byok keys delete {left.id} {team}` deletes it now.", file=sys.stderr)
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from byok_core import keytest

    rt = runtime()
    owner = owner_of(rt, args)
    outcome = keytest.check(rt, Actor.operator(), owner, args.provider,
                            connection=_connection(rt, owner, args.connection))
    if outcome.ok:
        print(outcome.message)
        return 0
    print(f"byok: {outcome.message}", file=sys.stderr)
    return 1


def cmd_check(args: argparse.Namespace) -> int:
    """One round of the key watch, as the app's background thread runs it (under the same lease)."""
    from byok_core import keywatch

    rt = runtime()
    checked = keywatch.tick(rt, keywatch.holder_name())
    if checked is None:
        print("byok: another process is checking keys right now; try again in a few minutes.", file=sys.stderr)
        return 1
    for c in checked:
        print(f"{c.provider.value} key {c.key_id} ({c.owner}): {c.status.value if c.status else 'not checked'}"
              + (" (changed)" if c.changed else ""))
    if not checked:
        print("no key is due for its daily check", file=sys.stderr)
    return 0
