"""What people may do with shared (team or server) keys besides spending: how many calls a minute,
and which models. Own keys are never limited.

* Rate limits: calls per minute per user and for the whole team, counted over the last 60 seconds
  of the usage log itself (an exact sliding window), inside ``budgets.ledger.admit``'s serialized
  transaction, so they hold across processes and replicas with no other service. One person's own
  figure (or no limit for them) replaces the per-person one; all are app settings, read by that
  transaction's one statement.
* Model allowlists: per role, and per user (a user's list replaces their role's), per provider;
  ``fnmatch`` patterns such as ``gpt-4o-mini`` or ``claude-haiku-*``. No list: any model."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

import sqlalchemy as sa
from sqlmodel import Session, col, select

from byok_core import audit
from byok_core.audit import AuditAction
from byok_core.errors import PermissionDenied, SharedKeyLimit, ValidationError
from byok_core.identity import Actor, KeySource, Owner, Role
from byok_core.models import AppSetting, ModelAllowlist, UsageRecord, User, table
from byok_core.providers import Provider, ProviderKind
from byok_core.runtime import Runtime

WINDOW = timedelta(minutes=1)
USER_RPM, TEAM_RPM = "limits.user_rpm", "limits.team_rpm"
PERSON_RPM = USER_RPM + ":"  # + a user's id: that person's own figure ("0": no limit for them)
MAX_RPM = 100_000
MAX_PATTERNS = 50
_T = table(UsageRecord)
_SHARED = [s for s in KeySource if s.shared]


# --- rate limits --------------------------------------------------------------------------------


def _setting(name: str) -> sa.ScalarSelect[str | None]:
    return sa.select(col(AppSetting.value)).where(col(AppSetting.name) == name).scalar_subquery()


def _limit(value: str | None) -> int | None:
    return int(value) if value else None


def rate_limits(rt: Runtime) -> tuple[int | None, int | None]:
    """(calls per minute per user, calls per minute for the team); None: no limit."""
    with rt.engine.connect() as conn:
        per_user, per_team = conn.execute(sa.select(_setting(USER_RPM), _setting(TEAM_RPM))).one()
    return _limit(per_user), _limit(per_team)


def _valid(value: int | None) -> None:
    if value is not None and not 0 <= value <= MAX_RPM:
        raise ValidationError(f"A rate limit is a number of calls per minute, from 1 up to {MAX_RPM:,} (0: none).")


def set_rate_limits(rt: Runtime, actor: Actor, per_user: int | None, per_team: int | None) -> None:
    """Set both limits (None or 0: no limit). Admins only."""
    actor.check_admin("change rate limits")
    for value in (per_user, per_team):
        _valid(value)
    with Session(rt.engine) as session, session.begin():
        for name, value in ((USER_RPM, per_user), (TEAM_RPM, per_team)):
            if value:
                session.merge(AppSetting(name=name, value=str(int(value))))
            else:
                session.execute(sa.delete(AppSetting).where(col(AppSetting.name) == name))
        audit.record(session, actor.name, AuditAction.LIMITS_SET,
                     detail=f"{per_user or 'no limit'} per user, {per_team or 'no limit'} for the team, per minute")


def person_limits(rt: Runtime) -> dict[int, int]:
    """The people with a rate limit of their own, by user id: calls per minute (0: no limit for them)."""
    name, value = col(AppSetting.name), col(AppSetting.value)
    with rt.engine.connect() as conn:
        rows = conn.execute(sa.select(name, value).where(name.startswith(PERSON_RPM, autoescape=True))).all()
    return {int(n.removeprefix(PERSON_RPM)): int(v) for n, v in rows}


def set_person_limit(rt: Runtime, actor: Actor, user_id: int, per_minute: int | None) -> None:
    """Give one person a rate limit of their own on shared keys (0: no limit for them), or with
    None the per-person one again. Admins only."""
    actor.check_admin("change rate limits")
    _valid(per_minute)
    name = f"{PERSON_RPM}{user_id}"
    with Session(rt.engine) as session, session.begin():
        if session.get(User, user_id) is None:
            raise ValidationError("There is no such account.")
        if per_minute is None:
            session.execute(sa.delete(AppSetting).where(col(AppSetting.name) == name))
        else:
            session.merge(AppSetting(name=name, value=str(int(per_minute))))
        detail = ("the per-person limit" if per_minute is None else "no limit" if per_minute == 0
                  else f"{per_minute:,} a minute")
        audit.record(session, actor.name, AuditAction.LIMITS_SET, audit.Target(owner=Owner.user(user_id)),
                     detail=detail)


_MINE = _T.c.user_id == sa.bindparam("user_id")  # NULL (the CLI without --user) matches no row
# One statement reads both limits and both counts over the last minute (nothing is counted
# when no limit is set): built once, as it runs before every shared-key call.
_PERSON = sa.select(col(AppSetting.value)).where(col(AppSetting.name) == sa.bindparam("person")).scalar_subquery()
_RECENT = sa.select(
    _setting(USER_RPM), _PERSON, _setting(TEAM_RPM), sa.func.count(sa.case((_MINE, 1))),
    sa.func.min(sa.case((_MINE, _T.c.ts))), sa.func.count(), sa.func.min(_T.c.ts),
).where(_setting(USER_RPM).is_not(None) | _PERSON.is_not(None) | _setting(TEAM_RPM).is_not(None),
        _T.c.ts > sa.bindparam("since"), _T.c.key_source.in_(_SHARED))


def check_rate(conn: sa.Connection, user_id: int | None, now: datetime) -> None:
    """Raise SharedKeyLimit when another shared-key call now would pass a limit. Call it inside the
    transaction that logs the call (``budgets.ledger.admit``), so the count and the new row are one step."""
    per_user, own, per_team, my_count, my_oldest, count, oldest = conn.execute(
        _RECENT, {"user_id": user_id, "person": f"{PERSON_RPM}{user_id}", "since": now - WINDOW}).one()
    checks = [(_limit(per_team), count, oldest, "the team's shared keys are")]
    if user_id is not None:  # their own figure, if they have one ("0": none), else the per-person one
        checks.insert(0, (_limit(per_user if own is None else own), my_count, my_oldest, "you are"))
    for limit, made, first, who in checks:
        if limit and made >= limit:
            wait = max(1, math.ceil((first + WINDOW - now).total_seconds()))
            raise SharedKeyLimit(f"Too many calls on shared keys: {who} limited to {limit} a minute. "
                                 f"Try again in {wait} s, or use your own API key.", retry_after=wait)


# --- model allowlists ---------------------------------------------------------------------------


def _subject(role: Role | None = None, user_id: int | None = None) -> str:
    return f"role:{role.value}" if role is not None else f"user:{user_id}"


def allowlist(rt: Runtime, provider: Provider, *, role: Role | None = None, user_id: int | None = None) -> list[str]:
    """The patterns set for a role or one user on ``provider`` (empty: none set)."""
    with Session(rt.engine) as session:
        row = session.exec(select(ModelAllowlist).where(col(ModelAllowlist.subject) == _subject(role, user_id),
                                                        col(ModelAllowlist.provider) == provider)).first()
    return row.patterns.splitlines() if row else []


def set_allowlist(rt: Runtime, actor: Actor, provider: Provider, patterns: list[str] | str, *,
                  role: Role | None = None, user_id: int | None = None) -> list[str]:
    """Set (empty: remove) a role's or a user's allowed models on ``provider``'s shared keys; the
    patterns kept. Admins only."""
    actor.check_admin("choose the models on shared keys")
    if provider.kind is not ProviderKind.CHAT:
        raise ValidationError("Model lists are for chat providers.")
    if isinstance(patterns, str):
        patterns = patterns.replace(",", "\n").splitlines()
    kept = sorted({p.strip() for p in patterns if p.strip()})
    if len(kept) > MAX_PATTERNS or any(len(p) > 120 or not p.isprintable() for p in kept):
        raise ValidationError(f"List up to {MAX_PATTERNS} model names (or patterns such as claude-haiku-*), "
                              "one per line.")
    subject = _subject(role, user_id)
    with Session(rt.engine) as session, session.begin():
        session.execute(sa.delete(ModelAllowlist).where(col(ModelAllowlist.subject) == subject,
                                                        col(ModelAllowlist.provider) == provider))
        if kept:
            session.add(ModelAllowlist(subject=subject, provider=provider, patterns="\n".join(kept)))
        whose = None if role is not None or user_id is None else Owner.user(user_id)
        audit.record(session, actor.name, AuditAction.MODELS_SET,
                     audit.Target(owner=whose, role=role, provider=provider), detail=", ".join(kept))
    return kept


def _patterns_for(rt: Runtime, user_id: int | None, provider: Provider) -> list[str] | None:
    """The patterns that apply to ``user_id`` on ``provider``: their own list, else their role's;
    None when neither is set (or for the CLI without a user)."""
    if user_id is None:
        return None
    lists, users = table(ModelAllowlist), table(User)
    subjects = [_subject(user_id=user_id), *(_subject(role) for role in Role)]
    with rt.engine.connect() as conn:  # one statement: the user's role and every list that could apply
        rows = conn.execute(sa.select(users.c.role, lists.c.subject, lists.c.patterns).select_from(users.outerjoin(
            lists, (lists.c.provider == provider) & lists.c.subject.in_(subjects))).where(users.c.id == user_id)).all()
    if not rows:
        return []
    found = {subject: patterns for _, subject, patterns in rows if subject is not None}
    patterns = found.get(_subject(user_id=user_id), found.get(_subject(Role(rows[0].role))))
    return None if patterns is None else patterns.splitlines()


def allowed_models(rt: Runtime, user_id: int | None, provider: Provider, source: KeySource,
                   models: list[str]) -> list[str]:
    """The ``models`` ``user_id`` may use when ``source`` pays: all of them on an own key."""
    patterns = _patterns_for(rt, user_id, provider) if source.shared else None
    if patterns is None:
        return models
    return [m for m in models if any(fnmatchcase(m, p) for p in patterns)]


def check_model(rt: Runtime, user_id: int | None, provider: Provider, source: KeySource, model: str) -> None:
    """Raise PermissionDenied when ``user_id`` may not use ``model`` on the key that would pay."""
    if not allowed_models(rt, user_id, provider, source, [model]):
        payer = "the team's" if source is KeySource.TEAM else "the server's"
        raise PermissionDenied(f"{model} is not among the models your admins allow on {payer} {provider.label} "
                               f"key; pick another model, or add your own {provider.label} key on the Keys page.")
