"""`byok gen-key`, `byok doctor`, `byok rotate-master-key`."""

from __future__ import annotations

import argparse

from byok_core.cli.common import Parsers, runtime


def _rotate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    p.set_defaults(func=cmd_rotate)


PARSERS: Parsers = {
    "gen-key": lambda p: p.set_defaults(func=cmd_gen_key),
    "doctor": lambda p: p.set_defaults(func=cmd_doctor),
    "rotate-master-key": _rotate_args,
}


def cmd_gen_key(args: argparse.Namespace) -> int:
    from byok_core.crypto import gen_key

    print(gen_key())
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from byok_core import accounts, alerts, budgets, db, keys

    before = db.current_revision(runtime(migrate=False).engine)
    rt = runtime()  # applies pending migrations, exactly as the app does at start
    problems = 0
    print(f"master key:  {rt.keyring_source.description} (id {rt.keyring.primary.key_id})")
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
    report = keys.scan(rt)
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
    from byok_core import alerts, keys

    rt = runtime()
    report = keys.rotate(rt, dry_run=args.dry_run)
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
    return 1 if report.unreadable or webhook == "unreadable" else 0
