"""The key watch: every stored key in use is checked once a day with its provider's free test call
(``keytest.check``: a key test, stamped on the key, no usage row), and what it found is kept on the
key, shown on its card, put in a banner for its owner, and sent to the admins' webhook for team keys.

* **Daily, spread out**: each key has its own time of day (from its id), and is checked at the first
  such time at least ``MIN_GAP`` after its last check (a "Check now" included).
* **One at a time per provider**: each round (``tick``) checks at most one key of each provider, one
  after the other; a process checks only while it holds the database lease (``leases``), so several
  replicas never check together.
* **Stopped working** means the provider rejected the key or said it has no quota left; a provider
  that is down, slow or limiting requests says nothing about the key and changes nothing.
* **Expiry**: a key past its expiry date is not used (``keys.resolve``) nor checked; a week before,
  its owner sees a banner and, for a team key, the webhook hears of it once.

Time comes from ``clock.utcnow`` (tests move it on); the UI starts ``run_in_background`` once per
process, and `byok keys check` runs one round for cron users."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import col

from byok_core import alerts, keytest, leases, reconcile, words
from byok_core.clock import utcnow
from byok_core.errors import ByokError, CallStatus
from byok_core.identity import TEAM_ID, Actor, Owner, OwnerKind
from byok_core.keys import KeyInfo, day
from byok_core.keytest import Outcome
from byok_core.models import ApiKey, rowcount, team_or_user
from byok_core.providers import Provider
from byok_core.runtime import Runtime

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
MIN_GAP = timedelta(hours=12)  # a key is checked again no sooner than this after its last check
WARN_BEFORE = timedelta(days=7)  # its owner is told this long before a key expires
LEASE = "keywatch"
LEASE_TTL = timedelta(minutes=10)  # longer than a round can take: each call has its own timeouts
TICK_S = 60.0  # seconds between rounds in the background


def slot(key_id: str) -> timedelta:
    """The key's own time of day for its check: spread evenly over the day by its id."""
    return timedelta(seconds=int(hashlib.sha256(key_id.encode()).hexdigest()[:8], 16) % 86400)


def next_check(key_id: str, created_at: datetime, checked_at: datetime | None) -> datetime:
    """When the key is due: its time of day, first at or after its creation (never checked) or at
    least ``MIN_GAP`` after its last check."""
    earliest = created_at if checked_at is None else checked_at + MIN_GAP
    when = earliest.replace(hour=0, minute=0, second=0, microsecond=0) + slot(key_id)
    return when if when >= earliest else when + DAY


def failing_reason(outcome: Outcome) -> str | None:
    """Why a key test's outcome means the key stopped working, in a word or two; None: it does not."""
    if outcome.status is CallStatus.KEY_REJECTED:
        return "rejected"
    if outcome.status is CallStatus.RATE_LIMITED and outcome.quota:
        return "out of quota"
    return None


def _whose(owner: Owner) -> str:
    return "The team's" if owner.is_team else "Your"


def _where(owner: Owner) -> str:
    return "under Admin → Team keys" if owner.is_team else "on the Keys page"


def _stopped_alert(provider: Provider, mask: str, since: datetime, reason: str) -> str:
    return (f"BYOK Dashboard: the team's {provider.label} key {mask} stopped working on {day(since.date())} "
            f"({reason}); save a new one under Admin → Team keys.")


def _expiry_alert(provider: Provider, mask: str, expires_on: date) -> str:
    return (f"BYOK Dashboard: the team's {provider.label} key {mask} expires on {day(expires_on)}; save a new one "
            "under Admin → Team keys before then, or change its expiry date.")


def record(rt: Runtime, outcome: Outcome) -> bool:
    """Keep what a check of a stored key found (``outcome.key_id``): a key that works again is no
    longer failing; one that stopped working is failing from now, and for a team key the webhook
    hears of it, once per change (one statement decides, whichever process checked). True: it changed."""
    if outcome.key_id is None or outcome.status is None:
        return False
    reason = failing_reason(outcome)
    now = utcnow()
    which = col(ApiKey.id) == outcome.key_id
    with rt.engine.begin() as conn:
        if outcome.ok:
            return bool(rowcount(conn.execute(sa.update(ApiKey).where(which, col(ApiKey.failing_since).is_not(None))
                                              .values(failing_since=None, failing_reason=None))))
        if reason is None:  # the provider down, slow or limiting requests: nothing known about the key
            return False
        changed = rowcount(conn.execute(sa.update(ApiKey).where(which, col(ApiKey.failing_since).is_(None))
                                        .values(failing_since=now, failing_reason=reason)))
        row = conn.execute(sa.select(col(ApiKey.owner_kind), col(ApiKey.provider), col(ApiKey.mask))
                           .where(which)).first() if changed else None
    if row is not None and row.owner_kind is OwnerKind.TEAM:
        alerts.notify(rt, _stopped_alert(row.provider, row.mask, now, reason))
    return bool(changed)


def check(rt: Runtime, actor: Actor, owner: Owner, provider: Provider,
          client: httpx.Client | None = None, *, connection: str | None = None) -> Outcome:
    """Check the owner's key for ``provider`` (an OpenAI-compatible one: of ``connection``) now
    ("Check now", and each key of a round) and keep what it found. NotFoundError when there is no
    such key in use."""
    outcome = keytest.check(rt, actor, owner, provider, client, connection=connection)
    record(rt, outcome)
    return outcome


@dataclass(frozen=True)
class Checked:
    """A key a round checked, and what it found."""

    key_id: str
    owner: Owner
    provider: Provider
    status: CallStatus | None
    changed: bool


def _in_use(conn: sa.Connection, today: date) -> list[sa.Row[Any]]:
    return list(conn.execute(sa.select(
        col(ApiKey.id), col(ApiKey.owner_kind), col(ApiKey.owner_id), col(ApiKey.provider), col(ApiKey.mask),
        col(ApiKey.created_at), col(ApiKey.checked_at), col(ApiKey.expires_on), col(ApiKey.expiry_warned_on),
        col(ApiKey.connection_id),
    ).where(col(ApiKey.active), col(ApiKey.expires_on).is_(None) | (col(ApiKey.expires_on) >= today))))


def due(rt: Runtime) -> list[sa.Row[Any]]:
    """The keys in use whose check is due now, the longest due first."""
    now = utcnow()
    with rt.engine.connect() as conn:
        rows = _in_use(conn, now.date())
    when = {r.id: next_check(r.id, r.created_at, r.checked_at) for r in rows}
    return sorted((r for r in rows if when[r.id] <= now), key=lambda r: (when[r.id], r.id))


def warn_expiring(rt: Runtime) -> int:
    """Tell the admins' webhook, once per expiry date, of each team key that expires within a week;
    how many were announced."""
    today = utcnow().date()
    with rt.engine.connect() as conn:
        soon = [r for r in _in_use(conn, today) if r.owner_kind is OwnerKind.TEAM and r.expires_on is not None
                and r.expires_on - today <= WARN_BEFORE and r.expiry_warned_on != r.expires_on]
    told = 0
    for r in soon:
        with rt.engine.begin() as conn:
            first = rowcount(conn.execute(sa.update(ApiKey).where(
                col(ApiKey.id) == r.id, col(ApiKey.expires_on) == r.expires_on,
                col(ApiKey.expiry_warned_on).is_(None) | (col(ApiKey.expiry_warned_on) != r.expires_on),
            ).values(expiry_warned_on=r.expires_on)))
        if first:
            alerts.notify(rt, _expiry_alert(r.provider, r.mask, r.expires_on))
            told += 1
    return told


def tick(rt: Runtime, holder: str, client: httpx.Client | None = None) -> list[Checked] | None:
    """One round, if ``holder`` holds (or takes) the lease: warn of team keys about to expire, then
    check the longest-due key of each provider, one after the other. None: another process holds it."""
    if not leases.acquire(rt, LEASE, holder, LEASE_TTL):
        return None
    warn_expiring(rt)
    first: dict[Provider, sa.Row[Any]] = {}
    for row in due(rt):
        first.setdefault(row.provider, row)
    done = []
    for row in first.values():
        owner = Owner(row.owner_kind, row.owner_id)
        try:
            outcome = keytest.check(rt, Actor.operator(), owner, row.provider, client, connection=row.connection_id)
        except ByokError as exc:  # gone meanwhile, or its endpoint is not allowed (any more): nothing was sent
            log.warning("key watch: %s key %s not checked: %s", row.provider.value, row.mask, exc)
            continue
        done.append(Checked(row.id, owner, row.provider, outcome.status, record(rt, outcome)))
    return done


def holder_name() -> str:
    """This process, as a lease holder: host and process id."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}"


def run_in_background(rt: Runtime, *, interval: float = TICK_S,
                      stop: threading.Event | None = None) -> threading.Thread:
    """Start the one daemon thread of this process that runs a round every ``interval`` seconds
    (the first after one interval), and the bill check's (``reconcile.tick``, due once a day); a
    failed round is logged and the next one tried."""
    stop = stop or threading.Event()
    holder = holder_name()

    def loop() -> None:
        while not stop.wait(interval):
            for name, round_ in (("key watch", tick), ("bill check", reconcile.tick)):
                try:
                    round_(rt, holder)
                except Exception as exc:  # never let the watch die; its text could hold anything
                    log.error("%s round failed: %s", name, type(exc).__name__)

    thread = threading.Thread(target=loop, name="byok-keywatch", daemon=True)
    thread.start()
    return thread


# --- what people see: the key card's line and the banner ----------------------------------------

def _when(value: datetime) -> str:
    return f"{day(value.date())}, {value:%H:%M} UTC"


def status_line(info: KeyInfo) -> str:
    """The key card's line on the watch: "Last checked Dec 6, 14:02 UTC: works", "Stopped working on
    Dec 3 (rejected)", "Expired on Dec 10: not used" (plain text, from the app's own words)."""
    parts = []
    if info.expires_on is not None:
        parts.append(f"Expired on {day(info.expires_on)}: not used" if info.expired
                     else f"Expires on {day(info.expires_on)}")
    if info.failing_since is not None:
        parts.append(f"Stopped working on {day(info.failing_since.date())} ({info.failing_reason})")
        if info.checked_at is not None:
            parts.append(f"last checked {_when(info.checked_at)}")
    elif info.checked_at is not None:
        status = info.last_test_status
        result = ("works" if status is CallStatus.OK else f"could not tell ({words.KEY_TEST[status]})" if status
                  else "no outcome")
        parts.append(f"Last checked {_when(info.checked_at)}: {result}")
    else:
        parts.append("Not checked yet: checked once a day")
    return " · ".join(parts)


@dataclass(frozen=True)
class Problem:
    """A key its owner should hear about, once: stopped working, expiring within a week, or expired."""

    key_id: str
    owner: Owner
    token: str  # tells this problem apart from the key's earlier ones (kept when dismissed)
    text: str


def _problem(r: Any, today: date) -> Problem | None:
    """The problem a key row (of ``problems``' query) shows, if any."""
    owner = Owner(r.owner_kind, r.owner_id)
    key = f"{_whose(owner)} {r.provider.label} key {r.mask}"
    if r.expires_on is not None and r.expires_on < today:
        return Problem(r.id, owner, f"expired:{r.expires_on}",
                       f"{key} expired on {day(r.expires_on)} and is no longer used: save a new one {_where(owner)}.")
    if r.failing_since is not None:
        return Problem(r.id, owner, f"failing:{r.failing_since:%Y%m%d%H%M%S}",
                       f"{key} stopped working on {day(r.failing_since.date())} ({r.failing_reason}): save a new "
                       f"one {_where(owner)}.")
    if r.expires_on is not None and r.expires_on - today <= WARN_BEFORE:
        return Problem(r.id, owner, f"expiring:{r.expires_on}",
                       f"{key} expires on {day(r.expires_on)}: save a new one {_where(owner)} before then, or "
                       "change its expiry date.")
    return None


# Built once (the banner on every page run asks): a person's active keys with an expiry date or a
# failure, and the team's when ``team`` is TEAM_ID (an admin; -1 matches no row).
_WATCHED = sa.select(
    col(ApiKey.id), col(ApiKey.owner_kind), col(ApiKey.owner_id), col(ApiKey.provider), col(ApiKey.mask),
    col(ApiKey.failing_since), col(ApiKey.failing_reason), col(ApiKey.expires_on), col(ApiKey.notice_dismissed),
).where(col(ApiKey.active),
        team_or_user(col(ApiKey.owner_kind), col(ApiKey.owner_id), team_id=sa.bindparam("team")),
        col(ApiKey.failing_since).is_not(None) | col(ApiKey.expires_on).is_not(None))


def problems(rt: Runtime, actor: Actor) -> list[Problem]:
    """The problems with ``actor``'s own keys in use (and, for an admin, the team's) that were not
    dismissed: what the banner shows, on any page, until dismissed."""
    if actor.user_id is None and not actor.is_admin:
        return []
    with rt.engine.connect() as conn:
        rows = conn.execute(_WATCHED, {"user_id": -1 if actor.user_id is None else actor.user_id,
                                       "team": TEAM_ID if actor.is_admin else -1}).all()
    today = utcnow().date()
    found = [(p, r.notice_dismissed) for r in rows if (p := _problem(r, today)) is not None]
    return sorted((p for p, dismissed in found if p.token != dismissed), key=lambda p: (p.owner.is_team, p.text))


def dismiss(rt: Runtime, actor: Actor, problem: Problem) -> None:
    """Hide the banner of this problem for good (a later problem with the key shows again)."""
    actor.check_may_manage(problem.owner)
    with rt.engine.begin() as conn:
        conn.execute(sa.update(ApiKey).where(
            col(ApiKey.id) == problem.key_id, col(ApiKey.owner_kind) == problem.owner.kind,
            col(ApiKey.owner_id) == problem.owner.id,
        ).values(notice_dismissed=problem.token))

