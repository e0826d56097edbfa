"""The start: open the runtime, refuse a master key that opens nothing stored, migrate, and do the
chores that need the master key or a running app. The UI, the CLI and the tests call it; no core
module imports it (so the chores' modules may use the runtime without a cycle)."""

from __future__ import annotations

from collections.abc import Mapping

from byok_core import db, first_format, keys, usage_log, vault
from byok_core.runtime import Runtime, Settings, connect


def open_runtime(environ: Mapping[str, str] | None = None, *, settings: Settings | None = None,
                 migrate: bool = True, starting_over: bool = False) -> Runtime:
    """Load the master key, connect to the database and, with ``migrate``, start: refuse a master key
    that opens none of the stored values, apply pending migrations, and do the start-up chores.

    ``settings`` (already read) or ``environ`` (default: this process's environment). ``starting_over``:
    the operator gave up the values no configured key opens (`byok forget-unreadable-keys`): a missing
    key file may be made anew and the master key is not checked."""
    rt = connect(settings or Settings.from_env(environ), starting_over=starting_over)
    if migrate:
        if not starting_over:
            vault.check_opens(rt.engine, rt.keyring_source)  # before anything is written
        db.upgrade(rt.engine, lambda conn, before: first_format.reseal_at_upgrade(conn, rt.keyring, before))
        first_format.reseal_pending(rt)  # values an earlier start could not open
        keys.purge_replaced(rt)  # replaced keys kept longer than 30 days
        usage_log.close_abandoned(rt)  # usage rows of calls whose process died mid-call
    return rt
