"""`byok usage export|prune|budget|prices|reconcile|billing-key`: the usage log, its retention, budgets, search
prices, and the check against the providers' bills."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import date

from byok_core.cli.common import Parsers, add_owner_args, owner_of, print_table, read_secret, runtime
from byok_core.errors import ValidationError
from byok_core.identity import Actor, KeySource
from byok_core.providers import Provider, ProviderKind


def usage_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_subparsers(dest="action", required=True)

    p = group.add_parser("export", help="write the usage rows of a filter to stdout, oldest first")
    p.add_argument("--format", default="csv", help="csv (the only format)")
    p.add_argument("--user", metavar="NAME", help="only this user's calls")
    p.add_argument("--since", metavar="YYYY-MM-DD", help="from this UTC day on")
    p.add_argument("--until", metavar="YYYY-MM-DD", help="up to and including this UTC day")
    for flag, what in (("--provider", "provider id"), ("--model", "model"),
                       ("--key-source", "user, team or env"), ("--status", "ok or an error kind")):
        p.add_argument(flag, action="append", default=[], metavar=flag[2:].upper().replace("-", "_"),
                       help=f"only this {what} (repeatable)")
    p.set_defaults(func=cmd_export)

    p = group.add_parser("prune", help="delete usage rows logged before a UTC day")
    p.add_argument("--before", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    p.set_defaults(func=cmd_prune)

    budget = group.add_parser("budget", help="monthly budgets on shared keys").add_subparsers(
        dest="budget_action", required=True)
    p = budget.add_parser("set", help="set a user's or the team's monthly budget in USD")
    add_owner_args(p)
    p.add_argument("usd", metavar="USD")
    p.set_defaults(func=cmd_budget_set)
    budget.add_parser("show", help="budgets and this month's shared-key spend").set_defaults(func=cmd_budget_show)
    p = budget.add_parser("clear", help="remove a user's or the team's budget")
    add_owner_args(p)
    p.set_defaults(func=cmd_budget_clear)

    p = group.add_parser("prices", help="show (or --set) the USD price per request of search providers")
    p.add_argument("--set", nargs=2, metavar=("PROVIDER", "USD"))
    p.set_defaults(func=cmd_prices)

    p = group.add_parser("reconcile", help="check what was logged against the providers' bills (billing keys)")
    p.add_argument("--since", metavar="YYYY-MM-DD", help="from this UTC day on (default: the last 7 full days)")
    p.set_defaults(func=cmd_reconcile)
    p = group.add_parser("billing-key", help="save (read from stdin) or --remove a provider's Admin key for "
                                             "reading its bill")
    p.add_argument("provider", metavar="PROVIDER", help="openai or anthropic")
    p.add_argument("--remove", action="store_true")
    p.set_defaults(func=cmd_billing_key)


PARSERS: Parsers = {"usage": usage_args}


def _day(value: str, flag: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{flag} takes a date as YYYY-MM-DD, not “{value}”.") from None


def _usd(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValidationError(f"“{value}” is not an amount in USD (for example 25 or 0.005).") from None


def _key_source(value: str) -> str:
    try:
        return KeySource(value).value
    except ValueError:
        raise ValidationError(f"Unknown key source “{value}”; use user, team or env.") from None


def cmd_export(args: argparse.Namespace) -> int:
    from byok_core import accounts, usage

    if args.format != "csv":
        raise ValidationError(f"Unknown format “{args.format}”; only csv is supported.")
    flt = usage.UsageFilter(
        since=None if args.since is None else _day(args.since, "--since"),
        until=None if args.until is None else _day(args.until, "--until"),
        providers=[Provider.parse(p).value for p in args.provider], models=args.model,
        key_sources=[_key_source(s) for s in args.key_source], statuses=args.status,
    )
    rt = runtime()
    if args.user:
        flt = replace(flt, user_ids=[accounts.get_user(rt, args.user).id])
    usage.write_csv(rt, Actor.operator(), flt, sys.stdout)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from byok_core import usage

    before = _day(args.before, "--before")
    count = usage.prune(runtime(), before, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {count} usage row{'s' * (count != 1)} logged before {before.isoformat()} (UTC)")
    return 0


def cmd_budget_set(args: argparse.Namespace) -> int:
    from byok_core import budgets

    usd = _usd(args.usd)
    rt = runtime()
    budgets.set_budget(rt, Actor.operator(), owner_of(rt, args), usd)
    print(f"monthly budget for {'the team' if args.team else args.user}: ${usd:,.2f} on shared keys")
    return 0


def cmd_budget_show(args: argparse.Namespace) -> int:
    from byok_core import budgets

    print_table(["who", "monthly budget", "spent this month", "calls in flight", "left", "used"], [
        [line.name, "none" if line.budget_usd is None else f"${line.budget_usd:,.2f}", f"${line.spent_usd:,.2f}",
         f"${line.reserved_usd:,.2f}", "" if line.left_usd is None else f"${line.left_usd:,.2f}",
         "" if line.used is None else f"{line.used:.0%}"]
        for line in budgets.spend_report(runtime())
    ])
    return 0


def cmd_budget_clear(args: argparse.Namespace) -> int:
    from byok_core import budgets

    rt = runtime()
    who = "the team" if args.team else args.user
    removed = budgets.clear_budget(rt, Actor.operator(), owner_of(rt, args))
    print(f"removed the monthly budget for {who}" if removed else f"{who} had no budget")
    return 0


def cmd_prices(args: argparse.Namespace) -> int:
    from byok_core import pricing

    rt = runtime()
    if args.set:
        provider, usd = Provider.parse(args.set[0]), _usd(args.set[1])
        pricing.set_search_price(rt, Actor.operator(), provider, usd)
    print_table(["provider", "usd per request", "default"], [
        [p.value, f"{pricing.search_price(rt, p):.4f}", f"{p.spec.price_per_request:.4f}"]
        for p in Provider.of_kind(ProviderKind.SEARCH)
    ])
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from byok_core import reconcile

    results = reconcile.run(runtime(), None if args.since is None else _day(args.since, "--since"))
    if not results:
        print("no billing key is saved: save one with `byok usage billing-key openai` (or anthropic)")
        return 1
    for result in results:
        print(result.headline)
        for line in result.lines:
            if line.verdict.loud:
                print(f"  {line.reason}")
    return 1 if any(r.problem for r in results) else 0


def cmd_billing_key(args: argparse.Namespace) -> int:
    from byok_core import reconcile

    provider, rt = Provider.parse(args.provider), runtime()
    if args.remove:
        reconcile.delete_key(rt, Actor.operator(), provider)
        print(f"removed the {provider.label} billing key")
        return 0
    info = reconcile.save_key(rt, Actor.operator(), provider, read_secret(f"{provider.label} Admin key: "))
    print(f"saved the {provider.label} billing key {info.mask}: it worked")
    return 0
