"""`byok gen-key`, `byok doctor`, `byok rotate-master-key`, `byok forget-unreadable-keys`,
`byok reseal-first-format`."""

from __future__ import annotations

import argparse

from byok_core.cli.common import Parsers, runtime


def _rotate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    p.set_defaults(func=cmd_rotate)


def _forget_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="delete them (without it, only list them)")
    p.set_defaults(func=cmd_forget)


def _reseal_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="re-seal them (without it, only list them)")
    p.set_defaults(func=cmd_reseal_first_format)


PARSERS: Parsers = {
    "gen-key": lambda p: p.set_defaults(func=cmd_gen_key),
    "doctor": lambda p: p.set_defaults(func=cmd_doctor),
    "rotate-master-key": _rotate_args,
    "forget-unreadable-keys": _forget_args,
    "reseal-first-format": _reseal_args,
}


def cmd_gen_key(args: argparse.Namespace) -> int:
    from byok_core.crypto import gen_key

    print(gen_key())
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from byok_core import accounts, alerts, budgets, db, first_format, vault

    unstarted = runtime(migrate=False)
    before = db.current_revision(unstarted.engine)
    try:
        rt = runtime()  # applies pending migrations, exactly as the app does at start
    except vault.MasterKeyMismatch as exc:  # refused before anything changed: say what the database holds
        print(f"master key:  {unstarted.keyring_source.description} (id {unstarted.keyring.primary.key_id})")
        print(f"PROBLEM: {exc}")
        for key_id, count in sorted(vault.sealed_key_ids(unstarted.engine).items()):
            print(f"stored keys: {count} under master key {key_id} (NOT CONFIGURED)")
        return 1
    problems = 0
    print(f"master key:  {rt.keyring_source.description} (id {rt.keyring.primary.key_id})")
    if rt.keyring_source.warning:
        problems += 1
        print(f"PROBLEM: {rt.keyring_source.warning}")
    fallbacks = [k for k in rt.keyring.key_ids if k != rt.keyring.primary.key_id]
    if fallbacks:
        print(f"fallbacks:   {', '.join(fallbacks)} (decrypt only)")
    print(f"database:    {rt.engine.url.render_as_string(hide_password=True)}")
    head = db.head_revision()
    if db.current_revision(rt.engine) != head:
        print(f"migrations:  PROBLEM: the schema is not at {head}")
        return 1
    upgraded = f"upgraded {before or 'empty database'} -> {head}"
    print(f"migrations:  up to date ({head})" if before == head else f"migrations:  {upgraded}")
    report = vault.scan(rt)
    waiting = first_format.manifest(rt)
    if waiting is None:
        problems += 1
        print("PROBLEM: the list of first-format keys waiting to be re-sealed cannot be opened with the configured "
              "master keys (it was sealed by another one, or planted); those keys stay unreadable")
    elif waiting:
        print(f"stored keys: {len(waiting)} in the first format wait for the master key that sealed them; they are "
              "re-sealed at the first start that has it (set ENCRYPTION_KEY_FALLBACKS to it)")
    for key_id, count in sorted(report.per_key_id.items()):
        note = "current" if key_id == rt.keyring.primary.key_id else (
            "fallback: run `byok rotate-master-key`" if key_id in rt.keyring.key_ids else "NOT CONFIGURED")
        print(f"stored keys: {count} under master key {key_id} ({note})")
    if not report.per_key_id:
        print("stored keys: none yet")
    for row_id, where, why in report.unreadable:
        problems += 1
        print(f"PROBLEM: key {row_id} ({where}) cannot be decrypted: {why}. It is kept; "
              "set ENCRYPTION_KEY_FALLBACKS to the master key that sealed it, or save the key again.")
    webhook = alerts.reseal(rt, dry_run=True)
    problems += webhook == "unreadable"
    print("alert webhook: " + {
        "none": "none set", "current": "sealed with the current master key",
        "rotated": "sealed with a fallback master key: run `byok rotate-master-key`",
        "unreadable": "PROBLEM: it cannot be decrypted with any configured master key; it is kept, but no "
                      "alert is sent until it is saved again on the Budgets page",
    }[webhook])
    clashes = accounts.name_clashes(rt)
    for clash in clashes:
        problems += 1
        print(f"PROBLEM: {clash.sentence(' with `byok users rename NAME NEW_NAME` or on the Admin page')}")
    if not clashes:
        print("usernames:   every account has a name of its own")
    drifts = budgets.reconcile(rt)  # the usage log is the truth; the running figures follow it
    for d in drifts:
        print(f"budgets:     {d.owner} {d.month}: running spend was ${d.recorded_usd:,.4f}, the usage log says "
              f"${d.logged_usd:,.4f}; set to the log's")
    print(f"budgets:     running monthly spend matches the usage log{' now' if drifts else ''}")
    print("healthy" if not problems else f"{problems} problem(s) found")
    return 1 if problems else 0


def cmd_rotate(args: argparse.Namespace) -> int:
    from byok_core import alerts, first_format, reconcile, vault

    rt = runtime()
    report = vault.rotate(rt, dry_run=args.dry_run)
    verb = "would re-encrypt" if args.dry_run else "re-encrypted"
    for key_id, count in sorted(report.per_key_id.items()):
        print(f"master key {key_id}: {count} stored key(s)")
    print(f"{verb} {report.rotated}; already current {report.current}; unreadable {len(report.unreadable)}")
    for row_id, where, why in report.unreadable:
        print(f"unreadable: key {row_id} ({where}): {why}; left untouched")
    webhook = alerts.reseal(rt, dry_run=args.dry_run)
    print("alert webhook: " + {
        "none": "none set", "current": "already current", "rotated": verb,
        "unreadable": "cannot be decrypted with any configured master key; left untouched (save it again on "
                      "the Budgets page, or set ENCRYPTION_KEY_FALLBACKS to the key that sealed it)",
    }[webhook])
    billing_keys = reconcile.reseal(rt, dry_run=args.dry_run)
    for provider, outcome in billing_keys.items():
        print(f"{provider.label} billing key: " + {
            "current": "already current", "rotated": verb,
            "unreadable": "cannot be decrypted with any configured master key; left untouched (save it again on "
                          "the Usage page)"}[outcome])
    waiting = first_format.reseal_manifest(rt, dry_run=args.dry_run)
    if waiting != "none":
        print("first-format keys waiting to be re-sealed: their list is " + {
            "current": "already current", "rotated": verb, "unreadable": "sealed by a key that is not configured",
        }[waiting])
    return 1 if report.unreadable or "unreadable" in (webhook, waiting, *billing_keys.values()) else 0


def cmd_forget(args: argparse.Namespace) -> int:
    from byok_core import alerts, first_format, reconcile, vault
    from byok_core.identity import Actor

    rt = runtime(starting_over=True)
    gone = vault.forget_unreadable(rt, dry_run=not args.yes)
    if alerts.reseal(rt, dry_run=True) == "unreadable":
        print(f"{'forgot' if args.yes else 'would forget'}: the alert webhook (set it again on the Budgets page)")
        if args.yes:
            alerts.set_webhook(rt, Actor.operator(), None)
    for provider, outcome in reconcile.reseal(rt, dry_run=True).items():
        if outcome == "unreadable":
            print(f"{'forgot' if args.yes else 'would forget'}: the {provider.label} billing key (save it again on "
                  "the Usage page)")
            if args.yes:
                reconcile.delete_key(rt, Actor.operator(), provider)
    if args.yes and first_format.manifest(rt) is None:
        first_format.forget_manifest(rt)
    for row_id, place in gone:
        print(f"{'forgot' if args.yes else 'would forget'}: key {row_id} ({place})")
    if not args.yes:
        print(f"{len(gone)} stored key(s) no configured master key opens; rerun with --yes to delete them "
              "(their owners save them again on the Keys page)")
        return 0
    print(f"forgot {len(gone)} stored key(s); the app starts with master key {rt.keyring.primary.key_id}")
    return 0


def cmd_reseal_first_format(args: argparse.Namespace) -> int:
    from byok_core import first_format

    rt = runtime()
    found = first_format.reseal_trusting_the_database(rt, dry_run=not args.yes)
    for row_id, place, base_url, opens in found:
        bound = f", bound to {base_url}" if base_url else ""
        verb = ("re-sealed" if args.yes else "would re-seal") if opens else "cannot open (left as it is)"
        print(f"{verb}: key {row_id} ({place}){bound}")
    if not found:
        print("no stored key is in the first format")
    elif not args.yes:
        print("check that each base URL above is one you trust with its key, then rerun with --yes")
    return 1 if any(not opens for *_, opens in found) else 0
