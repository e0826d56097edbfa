"""Re-sealing the values the first release stored (format ``v1``: associated data without the base URL)
so that each is bound to its row's base URL.

It happens once, in the transaction of the upgrade that crosses migration 0003, where this process
holds the master key: each value the configured keys open is re-sealed there; the others are listed,
with a hash of the value and the base URL they had then, in a manifest sealed by the master key
(``PENDING``), and re-sealed at the first start whose keys open them. Nothing in the database alone
can start a re-sealing: a ``v1`` value that no authentic manifest lists (one planted from an old
dump, with a base URL of an attacker's choosing) is refused for good."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import col

from byok_core import crypto
from byok_core.crypto import Keyring
from byok_core.errors import DecryptionError
from byok_core.models import ApiKey, AppSetting
from byok_core.vault import context, seal_value, where

if TYPE_CHECKING:
    from byok_core.runtime import Runtime

log = logging.getLogger(__name__)

PENDING = "keys.rebind_v1"  # migration 0003 writes a plain marker here; the upgrade replaces it by the manifest
MIGRATION_MARKER = "pending"
_CONTEXT = "app_setting:" + PENDING
BINDING_REVISION = "0003"  # the migration after which values are bound to their base URL
_COLUMNS = (col(ApiKey.id), col(ApiKey.owner_kind), col(ApiKey.owner_id), col(ApiKey.provider),
            col(ApiKey.ciphertext), col(ApiKey.base_url))


def crosses_binding(before: str | None) -> bool:
    """Whether an upgrade from revision ``before`` (None: an empty database) runs migration 0003."""
    return before is None or before < BINDING_REVISION


def _digest(ciphertext: str) -> str:
    return hashlib.sha256(ciphertext.encode()).hexdigest()


def _opens(keyring: Keyring, row: Any) -> str | None:
    """The plaintext of a first-format value, or None when the keys do not open it."""
    try:
        return keyring.decrypt(row.ciphertext, context(row.owner_kind, row.owner_id, row.provider, row.id,
                                                       row.base_url, "v1"))
    except DecryptionError:
        return None


def _reseal(conn: sa.Connection, keyring: Keyring, row: Any) -> bool:
    """Re-seal one first-format row if the keys open it (compare-and-set on its value); whether done."""
    plain = _opens(keyring, row)
    if plain is None:
        return False
    return bool(conn.execute(sa.update(ApiKey).where(col(ApiKey.id) == row.id,
                                                     col(ApiKey.ciphertext) == row.ciphertext)
                             .values(ciphertext=seal_value(keyring, plain, row), key_id=keyring.primary.key_id))
                .rowcount)


def _save_manifest(conn: sa.Connection, keyring: Keyring, entries: dict[str, list[str | None]]) -> None:
    conn.execute(sa.delete(AppSetting).where(col(AppSetting.name) == PENDING))
    if entries:
        conn.execute(sa.insert(AppSetting).values(name=PENDING, value=keyring.encrypt(json.dumps(entries), _CONTEXT)))


def reseal_at_upgrade(conn: sa.Connection, keyring: Keyring, before: str | None) -> None:
    """In the upgrade's transaction, when it crossed migration 0003: re-seal every first-format value
    the keys open; list the others in a manifest sealed by the current master key."""
    if not crosses_binding(before):
        return
    pending: dict[str, list[str | None]] = {}
    for row in conn.execute(sa.select(*_COLUMNS).where(col(ApiKey.ciphertext).startswith("v1:"))).all():
        if not _reseal(conn, keyring, row):
            pending[row.id] = [_digest(row.ciphertext), row.base_url]
    _save_manifest(conn, keyring, pending)
    if pending:
        log.warning("%d stored key(s) were sealed by a master key that is not configured; they are kept and "
                    "re-sealed at the first start that has it (see `byok doctor`)", len(pending))


def _sealed_manifest(conn: sa.Connection) -> str | None:
    """The stored manifest, or None; migration 0003's plain marker is no manifest: it vouches for nothing."""
    value = conn.execute(sa.select(col(AppSetting.value)).where(col(AppSetting.name) == PENDING)).scalar()
    return None if value == MIGRATION_MARKER else value


def manifest(rt: Runtime) -> dict[str, list[str | None]] | None:
    """The values still waiting to be re-sealed (row id -> [value's hash, base URL]); None when the
    manifest is there but no configured key opens it (or it is not authentic); {} when there is none."""
    with rt.engine.connect() as conn:
        value = _sealed_manifest(conn)
    if value is None:
        return {}
    try:
        entries: dict[str, list[str | None]] = json.loads(rt.keyring.decrypt(value, _CONTEXT))
    except DecryptionError:
        return None
    return entries


def reseal_pending(rt: Runtime) -> int:
    """At a start: re-seal the listed values the keys open now, if each is still the value and base
    URL listed; drop entries whose row changed or is gone. How many were re-sealed."""
    entries = manifest(rt)
    if not entries:
        if entries is None:
            log.warning("the list of stored keys waiting to be re-sealed cannot be opened with the configured "
                        "master keys; they stay unreadable (see `byok doctor`)")
        return 0
    done = 0
    with rt.engine.begin() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(*_COLUMNS).where(col(ApiKey.id).in_(entries))).all()}
        left: dict[str, list[str | None]] = {}
        for row_id, (digest, base_url) in entries.items():
            row = rows.get(row_id)
            if row is None or crypto.version_of(row.ciphertext) != "v1" or _digest(row.ciphertext) != digest \
                    or row.base_url != base_url:
                continue  # deleted, saved again, or changed since the upgrade: nothing to re-seal
            if _reseal(conn, rt.keyring, row):
                done += 1
            else:
                left[row_id] = [digest, base_url]
        if left != entries:
            _save_manifest(conn, rt.keyring, left)
    return done


def reseal_manifest(rt: Runtime, dry_run: bool = False) -> str:
    """For `byok rotate-master-key`: the manifest under the current master key. "none", "current",
    "rotated" (or would be) or "unreadable"."""
    with rt.engine.begin() as conn:
        value = _sealed_manifest(conn)
        if value is None:
            return "none"
        try:
            plain = rt.keyring.decrypt(value, _CONTEXT)
        except DecryptionError:
            return "unreadable"
        if not rt.keyring.needs_rotation(value):
            return "current"
        if not dry_run:
            conn.execute(sa.update(AppSetting).where(col(AppSetting.name) == PENDING)
                         .values(value=rt.keyring.encrypt(plain, _CONTEXT)))
    return "rotated"


def reseal_trusting_the_database(rt: Runtime, dry_run: bool = False) -> list[tuple[str, str, str | None, bool]]:
    """For `byok reseal-first-format`, an operator's decision: re-seal every first-format value the keys
    open, bound to the base URL its row has now (for an install whose first start after the upgrade
    ran an older version of this step, which gave up on the values it could not open). (row id,
    where, base URL, re-sealed or, with ``dry_run``, would be) for each first-format value."""
    done: list[tuple[str, str, str | None, bool]] = []
    with rt.engine.begin() as conn:
        for row in conn.execute(sa.select(*_COLUMNS).where(col(ApiKey.ciphertext).startswith("v1:"))).all():
            opens = _opens(rt.keyring, row) is not None
            if opens and not dry_run:
                opens = _reseal(conn, rt.keyring, row)
            done.append((row.id, where(row), row.base_url, opens))
    return done


def forget_manifest(rt: Runtime) -> None:
    """For `byok forget-unreadable-keys`: drop a manifest no configured key opens."""
    with rt.engine.begin() as conn:
        conn.execute(sa.delete(AppSetting).where(col(AppSetting.name) == PENDING))
