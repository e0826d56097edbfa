"""The key service: store, replace, restore, delete, list and resolve API keys (``vault`` seals them).

Plaintext keys exist only as ``Secret`` values between ``resolve`` and the outbound call; the
database holds ciphertext bound to (owner, provider, row id) and a short mask.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from byok_core import audit, connections, db, netguard, vault
from byok_core.audit import AuditAction
from byok_core.clock import utcnow
from byok_core.connections import ConnectionInfo
from byok_core.credential import Credential
from byok_core.errors import (
    CallStatus,
    DecryptionError,
    KeyUnreadableError,
    NoKeyError,
    NotFoundError,
    ValidationError,
)
from byok_core.identity import Actor, KeySource, Owner, OwnerKind
from byok_core.models import ApiKey, Connection, OwnKeyCap, rowcount, table, team_or_user
from byok_core.providers import Provider
from byok_core.secret import Secret, is_printable_ascii, mask

if TYPE_CHECKING:
    from byok_core.runtime import Runtime

MAX_KEY_LENGTH = 512
KEEP_REPLACED = timedelta(days=30)  # a replaced key can be restored this long, then it is purged
T = TypeVar("T")


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a stored key: never the key itself."""

    id: str
    provider: Provider
    label: str
    mask: str
    base_url: str | None
    active: bool
    created_at: datetime
    last_used_at: datetime | None
    last_test_status: CallStatus | None
    replaced_at: datetime | None = None  # when a newer key (or a restored one) took its place; None: active
    checked_at: datetime | None = None  # its last check (a test, or the key watch's)
    failing_since: datetime | None = None  # since when it stopped working; None: it works (or was never checked)
    failing_reason: str | None = None  # why, in a word or two: "rejected", "out of quota"
    expires_on: date | None = None  # the last day it is used; None: it does not expire
    connection_id: str | None = None  # an OpenAI-compatible key's connection

    @classmethod
    def of(cls, row: ApiKey) -> KeyInfo:
        return cls(row.id, row.provider, row.label, row.mask, row.base_url, row.active,
                   row.created_at, row.last_used_at, row.last_test_status,
                   None if row.active else row.updated_at, row.checked_at, row.failing_since, row.failing_reason,
                   row.expires_on, row.connection_id)

    @property
    def expired(self) -> bool:
        return expired(self.expires_on)

    @property
    def name(self) -> str:
        """What people call the key's provider (``display_name``)."""
        return display_name(self.provider, self.label, self.base_url)


def display_name(provider: Provider, label: str = "", base_url: str | None = None) -> str:
    """What people call a key's provider: an OpenAI-compatible endpoint by the key's label (else its
    host name), every other provider by its own name."""
    if provider.user_supplies_url:
        return label or (urlsplit(base_url).hostname if base_url else None) or provider.label
    return provider.label


class CapTerms(NamedTuple):
    """A cap on an own key as the key lookup reads it (``budgets.caps`` holds calls to it)."""

    id: int
    monthly_usd: float
    stop: bool


def expired(expires_on: date | None, today: date | None = None) -> bool:
    """Whether a key with this expiry date is past it (it is used through that day, UTC)."""
    return expires_on is not None and expires_on < (today or utcnow().date())


def day(value: date) -> str:
    """A day as the app says it: "Dec 3" ("Dec 3, 2027" when not this year)."""
    year = "" if value.year == utcnow().year else f", {value.year}"
    return f"{value:%b} {value.day}{year}"


def check_expiry(value: date | None) -> date | None:
    """An expiry date that can be set: today or later (None: no expiry)."""
    if value is not None and value < utcnow().date():
        raise ValidationError(f"The expiry date {value:%Y-%m-%d} has passed; pick today or a later day, or none.")
    return value


@dataclass(frozen=True)
class ResolvedKey:
    """The key that will pay for one call: the credential to send, and where it came from."""

    provider: Provider
    credential: Credential
    source: KeySource
    row_id: str | None = None  # None for server (environment) keys
    cap: CapTerms | None = None  # the cap its owner set on this own key (read with it; None: none)
    note: str = ""  # why a key earlier in the order was passed over ("Your OpenAI key expired on Dec 3.")
    connection: ConnectionInfo | None = None  # an OpenAI-compatible key's connection

    @property
    def pricing_id(self) -> str | None:
        """genai-prices' provider for calls with this key: its connection's, else the provider's own."""
        return self.connection.pricing_id if self.connection is not None else self.provider.spec.pricing_id


# opening quote: its closing one (plain, backtick, typographic double and single, guillemets)
_QUOTES = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019", "\u00ab": "\u00bb"}
_BEARER = "bearer "


def unwrap(raw: str) -> tuple[str, list[str]]:
    """The key as pasted, without what is often copied with it: white space around it, matching
    quotes around it ("sk-…", 'sk-ant-…') and an Authorization header's ``Bearer `` before it; and
    what was removed besides white space, in words ("the quotes around", "the “Bearer” before")."""
    value, removed = (raw or "").strip(), list[str]()
    while True:
        if len(value) >= 2 and value[-1] == _QUOTES.get(value[0]):
            value, what = value[1:-1].strip(), "the quotes around"
        elif value[:len(_BEARER)].lower() == _BEARER and value[len(_BEARER):].strip():
            value, what = value[len(_BEARER):].strip(), f"the “{value[:len(_BEARER) - 1]}” before"
        else:
            return value, removed
        if what not in removed:
            removed.append(what)


def paste_note(raw: str) -> str:
    """One sentence on what ``unwrap`` removed from a pasted key besides white space ("" when nothing):
    "The quotes around the key and the “Bearer” before it were removed."."""
    removed = unwrap(raw)[1]
    if not removed:
        return ""
    said = " and ".join([f"{removed[0]} the key", *(f"{what} it" for what in removed[1:])])
    plural = len(removed) > 1 or "quotes" in removed[0]
    return f"{said[0].upper()}{said[1:]} {'were' if plural else 'was'} removed."


def validate_key(raw: str) -> str:
    """The key without what ``unwrap`` removes, or ValidationError saying what is wrong."""
    if raw is None or raw == "":
        raise ValidationError("The key is empty: paste the API key from your provider's dashboard.")
    value = unwrap(raw)[0]
    if not value:
        raise ValidationError("The key is only white space: paste the API key from your provider's dashboard.")
    if len(value) > MAX_KEY_LENGTH:
        raise ValidationError(f"The key is longer than {MAX_KEY_LENGTH} characters; check that you pasted only "
                              "the key.")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in value):
        raise ValidationError("The key contains control characters; copy it again from your provider's dashboard.")
    if any(ch.isspace() for ch in value):
        raise ValidationError("The key contains spaces; API keys never do, so check that you pasted only the key.")
    if value[:1] in _QUOTES or value[-1:] in _QUOTES.values():
        raise ValidationError("The key has a quotation mark at one end only; API keys never have one, so paste "
                              "only the key.")
    if "…" in value:
        raise ValidationError("That looks like the masked key shown after saving (it has '…'); paste the whole key "
                              "from your provider's dashboard.")
    if not is_printable_ascii(value):
        raise ValidationError("The key contains a character API keys never have (they are printable ASCII "
                              "letters, digits and symbols); copy it again from your provider's dashboard.")
    return value


def _validate_label(label: str) -> str:
    label = (label or "").strip()
    if len(label) > 100 or any(unicodedata.category(ch) == "Cc" for ch in label):
        raise ValidationError("The label must be at most 100 printable characters.")
    return label


def _owned(owner: Owner) -> sa.ColumnElement[bool]:
    return (col(ApiKey.owner_kind) == owner.kind) & (col(ApiKey.owner_id) == owner.id)


def _write_with_retry(rt: Runtime, work: Callable[[Session], T]) -> T:
    """Run ``work(session)`` in a transaction, retrying when a concurrent writer got there first;
    a database that cannot be written (disk full, read-only, down) is said at once, in plain words."""
    last: Exception | None = None
    for _ in range(20):
        try:
            with Session(rt.engine, expire_on_commit=False) as session, session.begin():
                return work(session)
        except IntegrityError as exc:  # the unique index: a concurrent save got there first
            last = exc
        except OperationalError as exc:
            problem = db.storage_error(exc)
            if problem is None:
                raise
            if problem.kind != "locked":
                raise problem from None
            last = exc  # SQLite's write lock, held by another writer: try again
    raise db.busy() from last


def check_new(rt: Runtime, provider: Provider, raw_key: str, label: str = "",
              base_url: str | None = None, connection: ConnectionInfo | None = None) -> tuple[str, str, str | None]:
    """A new key as it would be stored: (key, label, base URL), or ValidationError saying what to change.
    A connection's key takes its connection's base URL. Nothing is resolved or sent: the endpoint's
    addresses are checked right before each call."""
    value = validate_key(raw_key)
    label = _validate_label(label)
    if connection is not None:
        if provider is not Provider.OPENAI_COMPATIBLE:
            raise ValidationError(f"{provider.label} keys belong to no connection.")
        if base_url and netguard.check_url_syntax(base_url) != connection.base_url:
            raise ValidationError(f"The connection {connection.name} sends to {connection.base_url}; leave the base "
                                  "URL empty, or add a connection for the other address.")
        return value, label, connection.base_url
    if provider.user_supplies_url:
        if not base_url:
            raise ValidationError(f"{provider.label} keys need the endpoint's base URL, e.g. https://openrouter.ai/api/v1.")
        base_url = netguard.check_endpoint(base_url, rt.settings.allow_private_endpoints, resolve=False)
    elif base_url:
        raise ValidationError(f"{provider.label} keys use the server's endpoint; leave the base URL empty.")
    return value, label, base_url


def connection_for(rt: Runtime, actor: Actor, owner: Owner, provider: Provider, base_url: str | None,
                   connection: str | None, label: str = "") -> ConnectionInfo | None:
    """The owner's connection a new OpenAI-compatible key goes to: ``connection`` (an id), else the
    one with ``base_url``, else a new one for it (named by ``label``, else its host); None for the
    other providers."""
    if provider is not Provider.OPENAI_COMPATIBLE:
        if connection is not None:
            raise ValidationError(f"{provider.label} keys belong to no connection.")
        return None
    if connection is not None:
        return connections.get(rt, actor, owner, connection)
    url = check_new(rt, provider, "x", label, base_url)[2] or ""
    mine = connections.list_connections(rt, actor, owner)
    same = next((c for c in mine if c.base_url == url), None)
    if same is not None:
        return same
    name, n, taken = (label or urlsplit(url).hostname or provider.label)[:70], 2, {c.name.lower() for c in mine}
    free = name
    while free.lower() in taken:
        free, n = f"{name} ({n})", n + 1
    return connections.create(rt, actor, owner, free, url)


def _in_place_of(row_provider: Provider, connection_id: str | None) -> sa.ColumnElement[bool]:
    """The keys one key takes the place of: its connection's, else its provider's outside connections."""
    if connection_id is not None:
        return col(ApiKey.connection_id) == connection_id
    return (col(ApiKey.provider) == row_provider) & col(ApiKey.connection_id).is_(None)


def store(rt: Runtime, actor: Actor, owner: Owner, provider: Provider, raw_key: str,
          label: str = "", base_url: str | None = None, *, tested: CallStatus | None = None,
          expires_on: date | None = None, connection: str | None = None) -> KeyInfo:
    """Save a key; it replaces (deactivates) the owner's active key for the provider (an
    OpenAI-compatible one: for its connection, ``connection_for``) atomically.

    The replaced key is kept, encrypted and inactive, for ``KEEP_REPLACED`` (see ``restore``); a key
    saved without a label takes the replaced key's. ``tested``: the outcome of a key test made just
    before (stamped as the key's last check, not as a use). ``expires_on``: the last day it is used."""
    actor.check_may_manage(owner)
    validate_key(raw_key), _validate_label(label)  # a key that cannot be saved makes no connection
    expires_on = check_expiry(expires_on)
    conn = connection_for(rt, actor, owner, provider, base_url, connection, label)
    value, label, base_url = check_new(rt, provider, raw_key, label, base_url, conn)
    conn_id = conn.id if conn is not None else None

    def work(session: Session) -> KeyInfo:
        now = utcnow()
        _purge(session, owner, now)
        if conn_id is not None and session.get(Connection, conn_id) is None:
            raise NotFoundError("That connection was deleted meanwhile; add it again.")
        old = session.exec(select(ApiKey).where(_owned(owner), _in_place_of(provider, conn_id),
                                                col(ApiKey.active))).first()
        if old is not None:
            session.execute(sa.update(ApiKey).where(col(ApiKey.id) == old.id).values(active=False, updated_at=now))
        row_id = uuid.uuid4().hex
        row = ApiKey(
            id=row_id, owner_kind=owner.kind, owner_id=owner.id, provider=provider,
            label=label or (old.label if old is not None else ""),
            ciphertext=rt.keyring.encrypt(value, vault.context(owner.kind, owner.id, provider, row_id, base_url)),
            key_id=rt.keyring.primary.key_id, mask=mask(value), base_url=base_url, created_at=now, updated_at=now,
            last_test_status=tested, checked_at=now if tested is not None else None, expires_on=expires_on,
            connection_id=conn_id,
        )
        session.add(row)
        session.flush()
        audit.record(session, actor.name, AuditAction.KEY_REPLACE if old is not None else AuditAction.KEY_STORE,
                     audit.Target.key(row, row.mask))
        return KeyInfo.of(row)

    return _write_with_retry(rt, work)


def set_expiry(rt: Runtime, actor: Actor, owner: Owner, key_row_id: str, expires_on: date | None) -> KeyInfo:
    """Set (None: remove) the last day the owner's active key is used; audited. Someone else's id
    fails exactly like one that does not exist."""
    actor.check_may_manage(owner)
    expires_on = check_expiry(expires_on)

    def work(session: Session) -> KeyInfo:
        row = session.exec(select(ApiKey).where(col(ApiKey.id) == key_row_id, _owned(owner),
                                                col(ApiKey.active))).first()
        if row is None:
            raise NotFoundError("No such key.")
        row.expires_on, row.expiry_warned_on = expires_on, None
        session.add(row)
        audit.record(session, actor.name, AuditAction.KEY_EXPIRY, audit.Target.key(row, row.mask),
                     detail=f"{expires_on:%Y-%m-%d}" if expires_on else "")
        session.flush()
        return KeyInfo.of(row)

    return _write_with_retry(rt, work)


def restore(rt: Runtime, actor: Actor, owner: Owner, key_row_id: str) -> KeyInfo:
    """Make a replaced key active again (kept ``KEEP_REPLACED`` after it was replaced); the key in
    use now becomes the replaced one, restorable in its turn. Someone else's id, an active key and
    one replaced too long ago all fail alike."""
    actor.check_may_manage(owner)

    def work(session: Session) -> KeyInfo:
        now = utcnow()
        row = session.exec(select(ApiKey).where(
            col(ApiKey.id) == key_row_id, _owned(owner), ~col(ApiKey.active),
            col(ApiKey.updated_at) >= now - KEEP_REPLACED)).first()
        if row is None or not _still_connected(session, row):
            raise NotFoundError("That key can no longer be restored: save it again instead.")
        current = session.exec(select(ApiKey).where(_owned(owner), _in_place_of(row.provider, row.connection_id),
                                                    col(ApiKey.active))).first()
        if current is not None:
            session.execute(sa.update(ApiKey).where(col(ApiKey.id) == current.id)
                            .values(active=False, updated_at=now))
        session.execute(sa.update(ApiKey).where(col(ApiKey.id) == row.id).values(active=True, updated_at=now))
        session.flush()
        audit.record(session, actor.name, AuditAction.KEY_REPLACE, audit.Target.key(row, row.mask),
                     detail="a replaced key, restored")
        session.refresh(row)
        return KeyInfo.of(row)

    return _write_with_retry(rt, work)


def _still_connected(session: Session, row: ApiKey) -> bool:
    """A connection's key is usable only with its own owner's connection, at the URL bound into it."""
    if row.connection_id is None:
        return not row.provider.user_supplies_url
    conn = session.get(Connection, row.connection_id)
    return conn is not None and _matches(conn, row)


def _matches(conn: Any, row: Any) -> bool:
    return (conn.owner_kind, conn.owner_id, conn.base_url) == (row.owner_kind, row.owner_id, row.base_url)


def _purge(session: Session, owner: Owner | None, now: datetime) -> int:
    """Delete (and audit) replaced keys kept longer than ``KEEP_REPLACED``, in ``session``'s transaction."""
    expired = (~col(ApiKey.active)) & (col(ApiKey.updated_at) < now - KEEP_REPLACED)
    where = expired if owner is None else expired & _owned(owner)
    rows = session.execute(sa.select(col(ApiKey.id), col(ApiKey.owner_kind), col(ApiKey.owner_id),
                                     col(ApiKey.provider), col(ApiKey.mask)).where(where)).all()
    purged = 0
    for row in rows:
        if rowcount(session.execute(sa.delete(ApiKey).where(col(ApiKey.id) == row.id, expired))):
            purged += 1  # a concurrent purge may have got there first: one audit event per deleted row
            audit.record(session, "system", AuditAction.KEY_DELETE, audit.Target.key(row, row.mask),
                         detail=f"replaced more than {KEEP_REPLACED.days} days ago")
    return purged


def purge_replaced(rt: Runtime, owner: Owner | None = None) -> int:
    """Delete the replaced keys (of ``owner``, or everyone's) kept longer than ``KEEP_REPLACED``, each
    audited; how many. Saving and listing keys do it for their owner; safe to run at any time."""
    return _write_with_retry(rt, lambda session: _purge(session, owner, utcnow()))


def delete(rt: Runtime, actor: Actor, owner: Owner, key_row_id: str) -> KeyInfo | None:
    """Remove a key. Someone else's id fails exactly like an id that does not exist. Returns the
    replaced key of the same provider that can still be restored (the most recently replaced), if
    any: deleting a key leaves the keys it replaced restorable until ``KEEP_REPLACED`` ends."""
    actor.check_may_manage(owner)
    with Session(rt.engine) as session, session.begin():
        row = session.exec(select(ApiKey).where(col(ApiKey.id) == key_row_id, _owned(owner))).first()
        if row is None:
            raise NotFoundError("No such key.")
        session.delete(row)
        audit.record(session, actor.name, AuditAction.KEY_DELETE, audit.Target.key(row, row.mask))
        session.flush()
        left = session.exec(select(ApiKey).where(
            _owned(owner), _in_place_of(row.provider, row.connection_id), ~col(ApiKey.active),
            col(ApiKey.updated_at) >= utcnow() - KEEP_REPLACED).order_by(col(ApiKey.updated_at).desc())).first()
        return KeyInfo.of(left) if left is not None else None


def restorable_until(info: KeyInfo) -> datetime | None:
    """When a replaced key stops being restorable (and is purged); None for a key in use."""
    return None if info.replaced_at is None else info.replaced_at + KEEP_REPLACED


def list_keys(rt: Runtime, actor: Actor, owner: Owner) -> list[KeyInfo]:
    """The owner's keys: active ones first, then replaced ones, most recently replaced first; masks
    and metadata only. Replaced keys past ``KEEP_REPLACED`` are purged first (a write only when
    there are some)."""
    actor.check_may_manage(owner)
    with Session(rt.engine) as session:
        rows = list(session.exec(select(ApiKey).where(_owned(owner)).order_by(
            col(ApiKey.active).desc(), col(ApiKey.updated_at).desc(), col(ApiKey.created_at).desc())))
    cutoff = utcnow() - KEEP_REPLACED
    if any(not r.active and r.updated_at < cutoff for r in rows):
        purge_replaced(rt, owner)
        rows = [r for r in rows if r.active or r.updated_at >= cutoff]
    return [KeyInfo.of(r) for r in rows]


# Built once: the active user and team rows for one provider (with their connections and caps), in one
# indexed query.
_C = table(Connection).c
_CAP = table(OwnKeyCap)
_CANDIDATES = sa.select(
    col(ApiKey.id), col(ApiKey.owner_kind), col(ApiKey.owner_id), col(ApiKey.provider), col(ApiKey.ciphertext),
    col(ApiKey.base_url), col(ApiKey.expires_on), col(ApiKey.connection_id), _C.owner_kind.label("c_owner_kind"),
    _C.owner_id.label("c_owner_id"), _C.base_url.label("c_base_url"), _C.name.label("c_name"),
    _C.preset.label("c_preset"), _C.created_at.label("c_created_at"),
    _CAP.c.id.label("cap_id"), _CAP.c.monthly_usd.label("cap_usd"), _CAP.c.stop.label("cap_stop"),
).outerjoin(table(Connection), _C.id == col(ApiKey.connection_id)).outerjoin(
    _CAP, (col(ApiKey.owner_kind) == OwnerKind.USER) & (_CAP.c.user_id == col(ApiKey.owner_id))
    & (_CAP.c.provider == col(ApiKey.provider))).where(
    col(ApiKey.provider) == sa.bindparam("provider"),
    col(ApiKey.active),
    team_or_user(col(ApiKey.owner_kind), col(ApiKey.owner_id)),
)


def _source_of(row: Any) -> KeySource:
    return KeySource.USER if row.owner_kind is OwnerKind.USER else KeySource.TEAM


def _candidates(rt: Runtime, user_id: int | None, provider: Provider, connection: str | None,
                skip: frozenset[KeySource] = frozenset()) -> list[Any]:
    """Active rows for the provider, the user's before the team's (none whose source is in ``skip``).
    OpenAI-compatible keys: those of ``connection``, or, without one, the person's only one (else
    the team's only one); ValidationError when there are several to choose from."""
    with rt.engine.connect() as conn:
        params = {"provider": provider.value, "user_id": -1 if user_id is None else user_id}
        rows = sorted((r for r in conn.execute(_CANDIDATES, params).all() if _source_of(r) not in skip),
                      key=lambda r: r.owner_kind is not OwnerKind.USER)
    if not provider.user_supplies_url:
        return rows
    if connection is not None:
        return [r for r in rows if r.connection_id == connection]
    for kind in (OwnerKind.USER, OwnerKind.TEAM):
        theirs = [r for r in rows if r.owner_kind is kind]
        if len(theirs) > 1:
            names = ", ".join(sorted(r.c_name for r in theirs))
            raise ValidationError(f"Choose one of the connections ({names}): with `byok`, add --connection NAME.")
        if theirs:
            return theirs
    return []


def _whose(source: KeySource) -> str:
    return "Your" if source is KeySource.USER else "The team's"


def _connection_of(row: Any) -> ConnectionInfo | None:
    if row.connection_id is None:
        return None
    return ConnectionInfo(row.connection_id, Owner(row.c_owner_kind, row.c_owner_id), row.c_name, row.c_base_url,
                          row.c_preset, row.c_created_at)


def resolve(rt: Runtime, user_id: int | None, provider: Provider, connection: str | None = None, *,
            skip: frozenset[KeySource] = frozenset()) -> ResolvedKey:
    """User's active key → team's active key → server environment variable → NoKeyError; a key past
    its expiry date is passed over (the key used, or the error, says so). ``skip``: sources not to use.
    For OpenAI-compatible keys: the key of ``connection`` (an id of the user's own or the team's) or
    the one connection there is (``_candidates``); never the server's key."""
    passed_over = ""
    for row in _candidates(rt, user_id, provider, connection, skip):
        source = _source_of(row)
        if expired(row.expires_on):
            passed_over = passed_over or f"{_whose(source)} {provider.label} key expired on {day(row.expires_on)}"
            continue
        try:
            if provider.user_supplies_url and (row.c_owner_kind, row.c_owner_id, row.c_base_url) != (
                    row.owner_kind, row.owner_id, row.base_url):  # changed in the database: never sent
                raise DecryptionError("it does not match its connection (owner or base URL)")
            plain = vault.open_value(rt.keyring, row)
        except DecryptionError as exc:
            _record_unreadable(rt, row, str(exc))
            whose = _whose(source)
            raise KeyUnreadableError(
                f"{whose} saved {provider.label} key cannot be decrypted with the server's master key; "
                f"save it again on the Keys page, or ask an admin to run `byok doctor`."
            ) from None
        # only a user-supplied endpoint is stored with its key (bound into it); every other key goes to the operator's
        base_url = (row.base_url if provider.user_supplies_url else rt.settings.base_urls[provider]) or ""
        cap = None if row.cap_id is None else CapTerms(row.cap_id, float(row.cap_usd), bool(row.cap_stop))
        conn = _connection_of(row)
        return ResolvedKey(provider, connections.credential(Secret(plain), base_url, conn), source, row.id, cap,
                           f"{passed_over}." if passed_over else "", conn)
    env_key = rt.settings.env_keys.get(provider)
    if env_key is not None and KeySource.ENV not in skip:
        return ResolvedKey(provider, Credential(env_key, rt.settings.base_urls[provider] or ""), KeySource.ENV,
                           note=f"{passed_over}." if passed_over else "")
    raise NoKeyError(provider, passed_over)


def sources(rt: Runtime, user_id: int | None) -> dict[Provider, KeySource | None]:
    """Where each provider's key would come from right now, without decrypting anything."""
    return {p: source for p, (source, _) in payers(rt, user_id).items()}


# Built once (every page run asks): the active, unexpired user and team rows, without their secrets.
_PAYERS = sa.select(col(ApiKey.provider), col(ApiKey.owner_kind), col(ApiKey.id)).where(
    col(ApiKey.active),
    col(ApiKey.expires_on).is_(None) | (col(ApiKey.expires_on) >= sa.bindparam("today")),
    team_or_user(col(ApiKey.owner_kind), col(ApiKey.owner_id)),
)


def payers(rt: Runtime, user_id: int | None) -> dict[Provider, tuple[KeySource | None, int | None]]:
    """Each provider's key as ``sources`` says, with the stored key's id (None: the server's key,
    or none): in one query, without decrypting anything."""
    with rt.engine.connect() as conn:
        rows = conn.execute(_PAYERS, {"today": utcnow().date(), "user_id": -1 if user_id is None else user_id}).all()
    found = {(r.provider, r.owner_kind): r.id for r in rows}
    result: dict[Provider, tuple[KeySource | None, int | None]] = {}
    for p in Provider:
        if (p, OwnerKind.USER) in found:
            result[p] = KeySource.USER, found[p, OwnerKind.USER]
        elif (p, OwnerKind.TEAM) in found:
            result[p] = KeySource.TEAM, found[p, OwnerKind.TEAM]
        else:
            result[p] = (KeySource.ENV if p in rt.settings.env_keys else None), None
    return result


def stamp_used(conn: sa.Connection, key: ResolvedKey, test_status: CallStatus | None = None) -> None:
    """Stamp last use on the stored row behind ``key`` (a key test: its outcome and time instead, as
    the daily checks would otherwise make every key look used), in ``conn``'s transaction."""
    if key.row_id is None:
        return
    values: dict[str, Any] = {"last_used_at": utcnow()} if test_status is None else \
        {"last_test_status": test_status, "checked_at": utcnow()}
    conn.execute(sa.update(ApiKey).where(col(ApiKey.id) == key.row_id).values(**values))


def _record_unreadable(rt: Runtime, row: vault.Stored, reason: str) -> None:
    with Session(rt.engine) as session, session.begin():
        audit.record(session, "system", AuditAction.KEY_DECRYPT_FAILED, audit.Target.key(row), detail=reason)
