"""The vault: how a stored key is sealed to its row, and the chores over all of it (the start-up check
that the master key opens what is stored, ``byok doctor``'s scan, ``byok rotate-master-key``, and
``byok forget-unreadable-keys``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from byok_core import audit, crypto
from byok_core.audit import AuditAction
from byok_core.crypto import Keyring
from byok_core.errors import DecryptionError, MasterKeyError
from byok_core.identity import OwnerKind
from byok_core.masterkey import FORGET_HINT, KeyringSource
from byok_core.models import ApiKey, AppSetting, BillingKey
from byok_core.providers import Provider

if TYPE_CHECKING:
    from byok_core.runtime import Runtime

# Settings sealed by the master key (alerts.SETTING, first_format.PENDING; tests/test_vault.py ties them)
SEALED_SETTINGS = ("alerts.webhook_url", "keys.rebind_v1")


class MasterKeyMismatch(MasterKeyError):
    """The configured master keys open none of the values the database holds."""


class Stored(Protocol):
    """A stored key's row (a table row, or a row of a query over its columns)."""

    id: str
    owner_kind: OwnerKind
    owner_id: int
    provider: Provider
    ciphertext: str
    base_url: str | None


def context(owner_kind: OwnerKind, owner_id: int, provider: Provider, row_id: str,
            base_url: str | None, version: str = crypto.VERSION) -> str:
    """Where a value belongs, bound into its associated data: owner, provider, row and, from format
    v2 on, the base URL its key may be sent to (so writing another URL into the row breaks it)."""
    where = f"{owner_kind.value}:{owner_id}|{provider.value}|{row_id}"
    return where if version == "v1" else f"{where}|{base_url or ''}"


def open_value(keyring: Keyring, row: Stored) -> str:
    """The plaintext of a stored value in the current format, or DecryptionError."""
    if crypto.version_of(row.ciphertext) != crypto.VERSION:
        raise DecryptionError("sealed in the first format without its base URL, and not re-sealed yet: it is "
                              "re-sealed at the first start that has the master key it names")
    return keyring.decrypt(row.ciphertext, context(row.owner_kind, row.owner_id, row.provider, row.id, row.base_url))


def seal_value(keyring: Keyring, plain: str, row: Stored) -> str:
    return keyring.encrypt(plain, context(row.owner_kind, row.owner_id, row.provider, row.id, row.base_url))


def where(row: Stored) -> str:
    return f"{row.owner_kind.value}:{row.owner_id} {row.provider.value}"


# --- what the database holds, checked at start ----------------------------------------------------


def sealed_key_ids(engine: Engine) -> Counter[str]:
    """How many values each master key id sealed (stored keys and sealed settings), read from the
    values' headers without decrypting; empty for a database with no tables yet. Columns of the first
    schema only, so it works before the migrations."""
    ids: Counter[str] = Counter()
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(ApiKey.__tablename__):
            return ids
        for key_id, count in conn.execute(sa.select(col(ApiKey.key_id), sa.func.count())
                                          .group_by(col(ApiKey.key_id))):
            ids[key_id] += count
        if sa.inspect(conn).has_table(BillingKey.__tablename__):  # 0019: admins' billing keys
            for key_id, count in conn.execute(sa.select(col(BillingKey.key_id), sa.func.count())
                                              .group_by(col(BillingKey.key_id))):
                ids[key_id] += count
        for value in conn.execute(sa.select(col(AppSetting.value))
                                  .where(col(AppSetting.name).in_(SEALED_SETTINGS))).scalars():
            try:
                ids[crypto.key_id_of(value)] += 1
            except DecryptionError:
                continue  # not a sealed value (migration 0003's marker): nothing a key must open
    return ids


def check_opens(engine: Engine, source: KeyringSource) -> None:
    """MasterKeyMismatch when the database holds sealed values and none names a configured key: a
    start with a wrong or new key is refused before it changes anything."""
    held = sealed_key_ids(engine)
    if not held or set(held) & set(source.keyring.key_ids):
        return
    raise MasterKeyMismatch(
        f"The master key from {source.description} (id {source.keyring.primary.key_id}) opens none of the "
        f"{sum(held.values())} stored keys: they were sealed with master key {', '.join(sorted(held))}. Start with "
        "that key (ENCRYPTION_KEY, ENCRYPTION_KEY_FILE or the data folder's master.key from your backup); an "
        f"older one can be added to ENCRYPTION_KEY_FALLBACKS. Nothing was changed. {FORGET_HINT}")


# --- whole-vault operations for `byok doctor` and `byok rotate-master-key` -------------------


@dataclass
class VaultReport:
    per_key_id: Counter[str] = field(default_factory=Counter)  # stored values per master key id
    unreadable: list[tuple[str, str, str]] = field(default_factory=list)  # (row id, where, why)
    rotated: int = 0
    current: int = 0


def rotate(rt: Runtime, dry_run: bool = False) -> VaultReport:
    """Re-encrypt every stored key under the current master key, one transaction per row; with
    ``dry_run``, open every value (so the report is ``byok doctor``'s) and write nothing.

    Safe to rerun (rows already current are counted, not written) and to interrupt (each row is
    either fully old or fully new). Rows no configured key can decrypt are reported and left untouched."""
    report = VaultReport()
    primary = rt.keyring.primary.key_id
    with Session(rt.engine) as session:
        row_ids = list(session.exec(select(ApiKey.id).order_by(col(ApiKey.created_at))))
    for row_id in row_ids:
        with Session(rt.engine) as session, session.begin():
            row = session.get(ApiKey, row_id)
            if row is None:
                continue  # deleted meanwhile
            report.per_key_id[row.key_id] += 1
            try:
                plain = open_value(rt.keyring, row)
            except DecryptionError as exc:
                report.unreadable.append((row.id, where(row), str(exc)))
                continue
            if row.key_id == primary and not rt.keyring.needs_rotation(row.ciphertext):
                report.current += 1
                continue
            if not dry_run:
                row.ciphertext = seal_value(rt.keyring, plain, row)
                audit.record(session, "operator", AuditAction.KEY_ROTATE, audit.Target.key(row, row.mask),
                             detail=f"from master key {row.key_id} to {primary}")
                row.key_id = primary
            report.rotated += 1
    return report


def scan(rt: Runtime) -> VaultReport:
    """Try to decrypt every stored key; report counts per master key id and what failed. Writes nothing."""
    return rotate(rt, dry_run=True)


def forget_unreadable(rt: Runtime, *, dry_run: bool = False) -> list[tuple[str, str]]:
    """Delete (and audit) the stored keys no configured master key can open: (row id, where) of each.
    Only for an operator who has lost the master key and chooses to start over."""
    report = scan(rt)
    if dry_run:
        return [(row_id, place) for row_id, place, _ in report.unreadable]
    gone: list[tuple[str, str]] = []
    for row_id, place, why in report.unreadable:
        with Session(rt.engine) as session, session.begin():
            deleted = session.execute(sa.delete(ApiKey).where(col(ApiKey.id) == row_id).returning(
                col(ApiKey.id), col(ApiKey.owner_kind), col(ApiKey.owner_id), col(ApiKey.provider), col(ApiKey.mask),
            )).first()
            if deleted is not None:
                audit.record(session, "operator", AuditAction.KEY_DELETE, audit.Target.key(deleted, deleted.mask),
                             detail=f"forgotten: no configured master key opens it ({why})")
                gone.append((row_id, place))
    return gone
