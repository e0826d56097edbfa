"""Spend checked against the provider's own bill: admins' billing credentials, and the daily check.

* **Billing keys** (an OpenAI or Anthropic Admin key): admins only; sealed under the master key
  like the alert webhook (bound to ``billing_key:<provider>``), shown as a mask, tried with a cheap
  read before they are saved, and used only by ``adapters.billing`` — never for chat.
* **The check** (``check_now``, ``run``, ``tick``): for each provider with a billing key, the usage
  log summed per day, stored key and model beside the provider's report (``billcheck.compare``);
  its lines replace the last ones for those days in ``bill_checks``, so the Usage page reads them
  at once. A key used outside this app is told to the admins' webhook once per day and key.
* **Once a day**: ``tick`` runs it under the database lease ``billcheck`` (``leases``), as the key
  watch does, so several replicas never check together; `byok usage reconcile` runs it for cron.
* **A billing key the provider refuses** (revoked, 401) is kept, as are the last lines: the check
  says so in plain words, and the admin saves a new one.

* **OpenRouter** needs no billing credential: each OpenRouter connection's key reads its own count
  (``GET /key``: what it spent this UTC month), set beside what this app logged on that key this
  month, whose per-call cost is OpenRouter's own (``run_openrouter``, kept under the
  OpenAI-compatible provider, once a day with the others). Its count has no days or models, so the
  line is for the month so far.

Google has no API that reports usage per API key: Gemini spend cannot be checked."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import Session, col, select

from byok_core import alerts, audit, billcheck, calls, connections, keys, leases
from byok_core.adapters import billing
from byok_core.audit import AuditAction
from byok_core.billcheck import Line, Logged, OurKey, Verdict
from byok_core.calls import client_for
from byok_core.clock import utcnow
from byok_core.credential import Credential
from byok_core.errors import ByokError, DecryptionError, KeyRejected, ProviderError, ValidationError
from byok_core.identity import Actor, OwnerKind
from byok_core.models import ApiKey, BillCheck, BillingKey, Connection, UsageRecord, User, rowcount
from byok_core.providers import Provider
from byok_core.runtime import Runtime
from byok_core.secret import Secret, is_printable_ascii, mask

log = logging.getLogger(__name__)

LEASE = "billcheck"
LEASE_TTL = timedelta(minutes=10)
EVERY = timedelta(hours=20)  # a provider's bill is checked again no sooner than this
DAYS = 7  # the daily check covers the last full days
MAX_DAYS = 92  # the longest period one check reads
OPENROUTER = Provider.OPENAI_COMPATIBLE  # OpenRouter connections' lines are kept under it
ADMIN_KEYS_AT = {Provider.OPENAI: "platform.openai.com → Settings → Organization → Admin keys",
                 Provider.ANTHROPIC: "console.anthropic.com → Settings → Admin keys"}


def _context(provider: Provider) -> str:
    return f"billing_key:{provider.value}"


def _readable(provider: Provider) -> None:
    if provider not in billing.READS:
        raise ValidationError(f"{provider.label}'s bill cannot be read: only OpenAI's and Anthropic's can.")


@dataclass(frozen=True)
class BillingKeyInfo:
    """What may be shown of a billing key and its last check: never the key."""

    provider: Provider
    mask: str
    saved_at: datetime
    checked_at: datetime | None
    checked_from: date | None
    checked_to: date | None
    problem: str | None


def _info(row: BillingKey) -> BillingKeyInfo:
    return BillingKeyInfo(row.provider, row.mask, row.saved_at, row.checked_at, row.checked_from, row.checked_to,
                          row.problem)


def _credential(rt: Runtime, provider: Provider, plain: str) -> Credential:
    return Credential(Secret(plain), (rt.settings.base_urls.get(provider) or "").rstrip("/"))


def save_key(rt: Runtime, actor: Actor, provider: Provider, raw: str,
             client: httpx.Client | None = None) -> BillingKeyInfo:
    """Save (or replace) the billing key for ``provider``, after a cheap read with it works. Admins
    only. ValidationError, with nothing saved, when the provider refuses it."""
    actor.check_admin("save billing keys")
    _readable(provider)
    plain, _ = keys.unwrap(raw)
    if not plain or len(plain) > keys.MAX_KEY_LENGTH or not is_printable_ascii(plain):
        raise ValidationError(f"Paste the {provider.label} Admin key itself (from {ADMIN_KEYS_AT[provider]}).")
    cred = _credential(rt, provider, plain)
    try:
        billing.probe(client or client_for(rt), provider, cred)
    except KeyRejected:
        raise ValidationError(f"{provider.label} refused the key {cred.mask}: it needs an Admin key, from "
                              f"{ADMIN_KEYS_AT[provider]}. Nothing was saved.") from None
    except ProviderError as exc:
        raise ValidationError(f"{exc} Nothing was saved.") from None
    with Session(rt.engine) as session, session.begin():
        row = session.get(BillingKey, provider) or BillingKey(provider=provider, ciphertext="", key_id="", mask="",
                                                              saved_by=actor.name)
        row.ciphertext = rt.keyring.encrypt(plain, _context(provider))
        row.key_id, row.mask, row.saved_at, row.saved_by = rt.keyring.primary.key_id, mask(plain), utcnow(), actor.name
        row.problem = None
        session.add(row)
        audit.record(session, actor.name, AuditAction.BILLING_KEY_SET,
                     audit.Target(provider=provider, mask=row.mask))
        return _info(row)


def reseal(rt: Runtime, dry_run: bool = False) -> dict[Provider, str]:
    """For `byok rotate-master-key` (and, with ``dry_run``, `byok doctor`): re-encrypt each billing
    key under the current master key. What was found per provider: "current", "rotated" (or would
    be) or "unreadable" (left as it is)."""
    found: dict[Provider, str] = {}
    with Session(rt.engine) as session:
        providers = [r.provider for r in session.exec(select(BillingKey))]
    for provider in providers:
        with Session(rt.engine) as session, session.begin():
            row = session.get(BillingKey, provider)
            if row is None:
                continue
            if row.key_id == rt.keyring.primary.key_id and not rt.keyring.needs_rotation(row.ciphertext):
                found[provider] = "current"
                continue
            try:
                plain = rt.keyring.decrypt(row.ciphertext, _context(provider))
            except DecryptionError:
                found[provider] = "unreadable"
                continue
            if not dry_run:
                row.ciphertext, row.key_id = rt.keyring.encrypt(plain, _context(provider)), rt.keyring.primary.key_id
            found[provider] = "rotated"
    return found


def delete_key(rt: Runtime, actor: Actor, provider: Provider) -> None:
    """Remove the billing key for ``provider`` (the last check's lines stay). Admins only."""
    actor.check_admin("remove billing keys")
    with Session(rt.engine) as session, session.begin():
        if rowcount(session.execute(sa.delete(BillingKey).where(col(BillingKey.provider) == provider))):
            audit.record(session, actor.name, AuditAction.BILLING_KEY_SET, audit.Target(provider=provider))


def billing_keys(rt: Runtime, actor: Actor) -> list[BillingKeyInfo]:
    """The billing keys saved, with their last check. Admins only."""
    actor.check_admin("see billing keys")
    with Session(rt.engine) as session:
        return [_info(r) for r in session.exec(select(BillingKey).order_by(col(BillingKey.provider)))]


def lines(rt: Runtime, actor: Actor, provider: Provider) -> list[BillCheck]:
    """The last check's lines for ``provider``, newest day first, loud ones first. Admins only."""
    actor.check_admin("see the bill check")
    with Session(rt.engine) as session:
        rows = list(session.exec(select(BillCheck).where(col(BillCheck.provider) == provider)))
    return sorted(rows, key=lambda r: (-r.day.toordinal(), not Verdict(r.verdict).loud, r.id or 0))


@dataclass(frozen=True)
class Report:
    """What the Usage page shows of a provider's bill check: the headline (or the problem), and the
    lines that need a look."""

    provider: Provider
    key: BillingKeyInfo | None
    headline: str | None  # None: never checked
    loud: tuple[BillCheck, ...]


def report(rt: Runtime, actor: Actor, provider: Provider) -> Report:
    """The last check of ``provider``'s bill, as the Usage page shows it. Admins only."""
    found = lines(rt, actor, provider)
    if provider is OPENROUTER:  # no billing key: its lines are the month so far, as of their day
        latest = [r for r in found if r.day == found[0].day]
        return Report(provider, None, _openrouter_headline(found[0].day, latest) if found else None,
                      tuple(r for r in latest if Verdict(r.verdict).loud))
    key = next((k for k in billing_keys(rt, actor) if k.provider is provider), None)
    loud = tuple(r for r in found if Verdict(r.verdict).loud)
    if key is not None and key.problem:
        return Report(provider, key, key.problem, loud)
    if key is None or key.checked_from is None or key.checked_to is None:
        return Report(provider, key, None, loud)
    return Report(provider, key, billcheck.headline(provider, key.checked_from, key.checked_to, len(loud)), loud)


# --- the check ------------------------------------------------------------------------------------

def _logged(rt: Runtime, provider: Provider, since: date, until: date) -> list[Logged]:
    start = datetime.combine(since, time(), UTC)
    end = datetime.combine(until + timedelta(days=1), time(), UTC)
    u = UsageRecord
    sums: dict[tuple[date, str | None, str], list[float | None]] = defaultdict(lambda: [0, 0, 0, 0.0])
    with rt.engine.connect() as conn:
        for r in conn.execute(sa.select(col(u.ts), col(u.key_row_id), col(u.model), col(u.input_tokens),
                                        col(u.output_tokens), col(u.cost_usd)).where(
                col(u.provider) == provider, col(u.ts) >= start, col(u.ts) < end,
                col(u.input_tokens).is_not(None) | col(u.output_tokens).is_not(None))):
            s = sums[r.ts.date(), r.key_row_id, r.model]
            s[0] = (s[0] or 0) + 1
            s[1] = (s[1] or 0) + (r.input_tokens or 0)
            s[2] = (s[2] or 0) + (r.output_tokens or 0)
            s[3] = None if s[3] is None or r.cost_usd is None else s[3] + r.cost_usd
    return [Logged(d, k, m, int(s[0] or 0), int(s[1] or 0), int(s[2] or 0), s[3]) for (d, k, m), s in sums.items()]


def _our_keys(rt: Runtime, provider: Provider) -> list[OurKey]:
    with rt.engine.connect() as conn:
        rows = conn.execute(sa.select(col(ApiKey.id), col(ApiKey.mask), col(ApiKey.owner_kind), col(User.username))
                            .select_from(ApiKey).outerjoin(User, col(User.id) == col(ApiKey.owner_id))
                            .where(col(ApiKey.provider) == provider)).all()
    return [_our_key(r) for r in rows]


def _our_key(row: Any) -> OurKey:
    """A stored key as the check's lines name it, from a row with its id, mask, owner kind and username."""
    if row.owner_kind is OwnerKind.TEAM:
        return OurKey(row.id, row.mask, "the team key", "under Admin → Team keys")
    return OurKey(row.id, row.mask, f"{row.username}'s key")


def _store(rt: Runtime, provider: Provider, since: date, until: date, found: list[Line],
           keep: frozenset[str] = frozenset()) -> list[Line]:
    """Replace the lines of those days (but those of the keys in ``keep``, which could not be read);
    the outside uses not told to the webhook yet, to tell now."""
    bc = BillCheck
    with Session(rt.engine) as session, session.begin():
        told = {(r.day, r.key_row_id) for r in session.exec(select(bc).where(
            col(bc.provider) == provider, col(bc.alerted)))}
        session.execute(sa.delete(bc).where(col(bc.provider) == provider, col(bc.day) >= since, col(bc.day) <= until,
                                            col(bc.key_row_id).is_(None) | col(bc.key_row_id).not_in(keep)))
        fresh: list[Line] = []
        for line in found:
            outside = line.verdict is Verdict.OUTSIDE
            if outside and (line.day, line.key_row_id) not in told:
                fresh.append(line)
                told.add((line.day, line.key_row_id))
            session.add(BillCheck(provider=provider, day=line.day, key_row_id=line.key_row_id, key_mask=line.key_mask,
                                  model=line.model[:120], verdict=line.verdict.value, our_tokens=line.our_tokens,
                                  billed_tokens=line.billed_tokens, our_usd=line.our_usd, billed_usd=line.billed_usd,
                                  reason=line.reason[:500], alerted=outside))
        row = session.get(BillingKey, provider)
        if row is not None:
            row.checked_at, row.checked_from, row.checked_to, row.problem = utcnow(), since, until, None
    return fresh


def _problem(rt: Runtime, provider: Provider, text: str) -> str:
    with Session(rt.engine) as session, session.begin():
        row = session.get(BillingKey, provider)
        if row is not None:
            row.checked_at, row.problem = utcnow(), text[:300]
    return text


@dataclass(frozen=True)
class Result:
    """What one check of one provider's bill found: its lines and headline, or the problem."""

    provider: Provider
    since: date
    until: date
    lines: tuple[Line, ...] = ()
    problem: str | None = None

    @property
    def headline(self) -> str:
        if self.provider is OPENROUTER:
            return " ".join(filter(None, (_openrouter_headline(self.until, list(self.lines)) if self.lines else None,
                                          self.problem))) or "No OpenRouter connection has a key to check."
        return self.problem or billcheck.headline(self.provider, self.since, self.until,
                                                  sum(line.verdict.loud for line in self.lines))


def period(since: date | None = None, until: date | None = None) -> tuple[date, date]:
    """The days a check covers: by default the last ``DAYS`` full days (UTC)."""
    today = utcnow().date()
    until = min(until or today - timedelta(days=1), today)
    since = since or until - timedelta(days=DAYS - 1)
    if since > until:
        raise ValidationError(f"The first day ({since:%Y-%m-%d}) is after the last ({until:%Y-%m-%d}); pick an "
                              "earlier one.")
    if (until - since).days >= MAX_DAYS:
        raise ValidationError(f"A check covers at most {MAX_DAYS} days; pick a later first day.")
    return since, until


def run_one(rt: Runtime, provider: Provider, since: date, until: date,
            client: httpx.Client | None = None) -> Result:
    """Check ``provider``'s bill for those days with its billing key, keep and return what it found."""
    with Session(rt.engine) as session:
        row = session.get(BillingKey, provider)
    if row is None:
        return Result(provider, since, until, problem=f"No {provider.label} billing key is saved.")
    try:
        cred = _credential(rt, provider, rt.keyring.decrypt(row.ciphertext, _context(provider)))
    except DecryptionError:
        return Result(provider, since, until, problem=_problem(rt, provider, (
            f"The {provider.label} billing key {row.mask} cannot be opened with this master key; save it again.")))
    try:
        bill = billing.read(client or client_for(rt), provider, cred, since, until)
    except KeyRejected:
        return Result(provider, since, until, problem=_problem(rt, provider, (
            f"{provider.label} refused the billing key {row.mask}: it may have been revoked. Save a new Admin key "
            f"(from {ADMIN_KEYS_AT[provider]}); the last check's results are kept.")))
    except ProviderError as exc:
        return Result(provider, since, until, problem=_problem(rt, provider, f"The bill was not read: {exc}"))
    found = billcheck.compare(provider, since, until, _logged(rt, provider, since, until), bill,
                              _our_keys(rt, provider))
    for line in _store(rt, provider, since, until, found):
        alerts.notify(rt, f"BYOK Dashboard: {line.reason}")
    return Result(provider, since, until, tuple(found))


def run(rt: Runtime, since: date | None = None, until: date | None = None,
        client: httpx.Client | None = None) -> list[Result]:
    """Check every provider that has a billing key (`byok usage reconcile`, and the daily round)."""
    since, until = period(since, until)
    with Session(rt.engine) as session:
        providers = [r.provider for r in session.exec(select(BillingKey))]
    done = [run_one(rt, p, since, until, client) for p in sorted(providers)]
    return done + ([run_openrouter(rt, client)] if _openrouter_keys(rt) else [])


def check_now(rt: Runtime, actor: Actor, provider: Provider, since: date | None = None,
              client: httpx.Client | None = None) -> Result:
    """"Check now" on the Usage page. Admins only."""
    actor.check_admin("check the bill")
    if provider is OPENROUTER:
        return run_openrouter(rt, client)
    _readable(provider)
    first, last = period(since)
    return run_one(rt, provider, first, last, client)


def due(rt: Runtime) -> list[Provider]:
    """The providers whose bill was not checked in the last ``EVERY``."""
    now = utcnow()
    with Session(rt.engine) as session:
        rows = list(session.exec(select(BillingKey)))
    return sorted(r.provider for r in rows if r.checked_at is None or r.checked_at + EVERY <= now)


def tick(rt: Runtime, holder: str, client: httpx.Client | None = None) -> list[Result] | None:
    """One round, if ``holder`` holds (or takes) the lease: check each provider that is due. None:
    another process holds it."""
    if not leases.acquire(rt, LEASE, holder, LEASE_TTL):
        return None
    since, until = period()
    done = []
    for provider in due(rt):
        try:
            done.append(run_one(rt, provider, since, until, client))
        except ByokError as exc:
            log.warning("bill check of %s failed: %s", provider.value, exc)
    with Session(rt.engine) as session:  # OpenRouter: once a day, as its lines' day says
        checked = session.exec(select(sa.func.max(col(BillCheck.day))).where(col(BillCheck.provider) == OPENROUTER))
        last = checked.one()
    if (last is None or last < utcnow().date()) and _openrouter_keys(rt):
        done.append(run_openrouter(rt, client))
    return done


# --- OpenRouter: each key's own count -------------------------------------------------------------

def _openrouter_keys(rt: Runtime) -> list[Any]:
    """The keys in use on OpenRouter connections (by preset, or by OpenRouter's address)."""
    query: Any = (sa.select(col(ApiKey.id), col(ApiKey.mask), col(ApiKey.owner_kind), col(ApiKey.owner_id),
                            col(Connection.id).label("connection"), col(Connection.preset), col(Connection.base_url),
                            col(User.username))
                  .join(Connection, col(Connection.id) == col(ApiKey.connection_id))
                  .outerjoin(User, col(User.id) == col(ApiKey.owner_id))
                  .where(col(ApiKey.active), col(ApiKey.provider) == OPENROUTER))
    with rt.engine.connect() as conn:
        rows: list[Any] = list(conn.execute(query))
    return [r for r in rows if connections.pricing_id(r.preset, r.base_url) == "openrouter"]


def _spent_this_month(rt: Runtime, key_row_id: str, today: date) -> float:
    start = datetime.combine(today.replace(day=1), time(), UTC)
    u = UsageRecord
    with rt.engine.connect() as conn:
        return float(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(col(u.cost_usd)), 0.0)).where(
            col(u.key_row_id) == key_row_id, col(u.ts) >= start)).scalar() or 0.0)


def run_openrouter(rt: Runtime, client: httpx.Client | None = None) -> Result:
    """Each OpenRouter key's own count of this month's spend beside what this app logged on it; kept
    (the day's lines replaced) and a key used outside this app told to the admins' webhook once a day."""
    today = utcnow().date()
    found: list[Line] = []
    problems: list[str] = []
    unread: set[str] = set()
    for r in _openrouter_keys(rt):
        ours = _our_key(r)
        try:
            user_id = None if r.owner_kind is OwnerKind.TEAM else r.owner_id
            key = calls.checked(rt, keys.resolve(rt, user_id, OPENROUTER, r.connection))
            if key.row_id != r.id:
                continue
            with calls.http(rt, key, client) as http:
                spend = billing.openrouter_spend(http, key.credential)
        except ByokError as exc:  # refused (revoked), unreachable: said, nothing else changes
            problems.append(f"OpenRouter's count for {ours.name} ({r.mask}) could not be read, so its last line is "
                            f"kept: {exc}")
            unread.add(r.id)
            continue
        found.append(billcheck.key_spend_line(today, ours, _spent_this_month(rt, r.id, today), spend.month_usd))
    for line in _store(rt, OPENROUTER, today, today, found, frozenset(unread)):
        alerts.notify(rt, f"BYOK Dashboard: {line.reason}")
    return Result(OPENROUTER, today.replace(day=1), today, tuple(found), " ".join(problems) or None)


def _openrouter_headline(day: date, latest: list[Any]) -> str:
    loud = sum(Verdict(r.verdict).loud for r in latest)
    if loud:
        return (f"Checked against OpenRouter's own count on {keys.day(day)}: "
                f"{'1 key needs' if loud == 1 else f'{loud} keys need'} a look.")
    return f"Checked against OpenRouter's own count on {keys.day(day)}: this month's spend matches on every key."
