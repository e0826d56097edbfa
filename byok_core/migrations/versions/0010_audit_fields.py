"""audit events name what they are about in columns (owner, account, role, provider, key row, mask,
model, amount) instead of a target text that the audit log parsed back into sentences

Revision ID: 0010
Revises: 0009

The texts the earlier releases wrote are read into the columns once, here ("team brave <row id>" and
"mask sk-…ab12", "user 5" or "user:5", "role:member openai", "search brave" and "0.0075", ...). A row
whose target or detail is in no form a release wrote keeps that target in ``old_target`` and its
detail as it was: no row is lost, and the audit log shows its action's plain words, as before.
"""

import math
import re
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The ids and forms as the earlier releases wrote them (copied: a migration must not change when the app does).
_PROVIDER = "(?P<provider>openai|anthropic|google|openai-compatible|firecrawl|brave|tavily|serper)"
_OWNER = r"(?:(?P<team>team)(?::\d+)?|user[ :](?P<user>\d+))"
_KEY = re.compile(rf"{_OWNER} {_PROVIDER}(?: (?P<row>\w{{1,32}}))?")
_MASK = re.compile(r"mask (?P<mask>\S{1,16}?)(?: \((?P<note>.*)\)|, (?P<rest>.*))?", re.S)
_ROLE = re.compile(r"role (?P<role>admin|member)(?: \((?P<note>.*)\))?", re.S)
_NO_CLAIM = re.compile(r"single sign-on: no (?P<claim>.+) claim", re.S)
_SUBJECT = re.compile(rf"(?:role:(?P<role>admin|member)|user:(?P<user>\d+)) {_PROVIDER}")
_SEARCH_PRICE = re.compile(rf"search {_PROVIDER}")
_MODEL_PRICE = re.compile(rf"model {_PROVIDER} (?P<model>.{{1,120}})", re.S)
_BUDGET = re.compile(r"\$(?P<usd>[\d,]+\.\d\d) a month")
_REKEYED = re.compile(r"re-encrypted under master key (?P<key>\S+)")
_FIELDS = ("owner_kind", "owner_id", "username", "role", "provider", "key_row_id", "mask", "model", "usd")


def _columns() -> list[sa.Column[Any]]:
    return [sa.Column("owner_kind", sa.String(8)), sa.Column("owner_id", sa.Integer()),
            sa.Column("username", sa.String(64)), sa.Column("role", sa.String(16)),
            sa.Column("provider", sa.String(32)), sa.Column("key_row_id", sa.String(32)),
            sa.Column("mask", sa.String(16)), sa.Column("model", sa.String(120)), sa.Column("usd", sa.Float())]


_EVENTS = sa.table("audit_events", *(sa.column(name) for name in ("id", "action", "old_target", "detail", *_FIELDS)))


def _owner(match: re.Match[str]) -> dict[str, Any]:
    return {"owner_kind": "team", "owner_id": 0} if match["team"] else {"owner_kind": "user",
                                                                        "owner_id": int(match["user"])}


def _amount(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _fields(action: str, target: str, detail: str) -> dict[str, Any] | None:
    """The columns (``detail`` and ``action`` among them) of an event an earlier release wrote, or None."""
    if action.startswith("key."):
        key = _KEY.fullmatch(target)
        if key is None:
            return None
        fields = {**_owner(key), "provider": key["provider"], "key_row_id": key["row"], "detail": detail}
        mask = _MASK.fullmatch(detail)
        if mask is not None:
            fields.update(mask=mask["mask"], detail=mask["note"] or mask["rest"] or "")
        return fields
    if action.startswith("user."):
        return _account(action, target, detail) if re.fullmatch(r"\S{1,64}", target) else None
    return _setting(action, target, detail)


def _account(action: str, name: str, detail: str) -> dict[str, Any] | None:
    fields: dict[str, Any] = {"username": name, "detail": detail}
    role = _ROLE.fullmatch(detail)
    if action == "user.role" and role is None:
        return None
    if action in ("user.create", "user.role") and role is not None:
        note = role["note"] or ""
        if action == "user.role" and note:  # single sign-on's reason, as the sentence says it
            no_claim = _NO_CLAIM.fullmatch(note)
            note = (f"because their single sign-on sent no {no_claim['claim']} claim" if no_claim
                    else "from their single sign-on groups" if note == "single sign-on groups" else f"({note})")
        fields.update(role=role["role"], detail=note)
    elif action == "user.throttled":
        tries = re.fullmatch(r"(\d+) failures", detail)
        if tries is None:
            return None
        fields["detail"] = f"{tries[1]} failed tries"
    elif action == "user.rename":
        old = re.fullmatch(r"from (\S{1,64})", detail)
        if old is None:
            return None
        fields["detail"] = old[1]
    return fields


def _setting(action: str, target: str, detail: str) -> dict[str, Any] | None:
    owner = re.fullmatch(_OWNER, target)
    if action == "budget.set":
        budget = _BUDGET.fullmatch(detail)
        if owner is None or budget is None:
            return None
        return {**_owner(owner), "usd": float(budget["usd"].replace(",", "")), "detail": ""}
    if action == "budget.clear":
        return None if owner is None else {**_owner(owner), "detail": detail}
    if action == "limits.set" and target == "shared keys":
        return {"detail": detail}
    if action == "models.set":
        subject = _SUBJECT.fullmatch(target)
        if subject is None or not detail:
            return None
        whose = {"owner_kind": "user", "owner_id": int(subject["user"])} if subject["user"] else {}
        return {**whose, "role": subject["role"], "provider": subject["provider"],
                "detail": "" if detail == "any model" else detail}
    if action == "price.set":
        search, model, usd = _SEARCH_PRICE.fullmatch(target), _MODEL_PRICE.fullmatch(target), _amount(detail)
        priced = search or model
        if priced is None or (usd is None and (search is not None or detail != "removed")):
            return None
        return {"provider": priced["provider"], "model": model and model["model"], "usd": usd, "detail": ""}
    if action == "alerts.set" and target == "webhook" and detail:
        rekeyed = _REKEYED.fullmatch(detail)
        if rekeyed is not None:
            return {"action": "alerts.rotate", "detail": f"to master key {rekeyed['key']}"}
        return {"detail": "" if detail == "removed" else detail}
    return None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        for column in _columns():
            batch.add_column(column)
        batch.alter_column("target", new_column_name="old_target", existing_type=sa.String(200), nullable=True)
    conn = op.get_bind()
    read = []
    for row in conn.execute(sa.select(_EVENTS.c.id, _EVENTS.c.action, _EVENTS.c.old_target, _EVENTS.c.detail)):
        fields = _fields(row.action, row.old_target, row.detail)
        if fields is not None:
            read.append({"event": row.id} | {f"new_{n}": None for n in _FIELDS} | {"new_action": row.action}
                        | {f"new_{n}": v for n, v in fields.items()})
    if read:  # the rest keep their target in old_target, and their detail
        names = (*_FIELDS, "action", "detail")
        conn.execute(_EVENTS.update().where(_EVENTS.c.id == sa.bindparam("event")).values(
            {n: sa.bindparam(f"new_{n}") for n in names} | {"old_target": None}), read)


def _target(row: Any) -> str:
    """The target text 0009 reads, from the columns."""
    owner = "team" if row.owner_kind == "team" else f"user {row.owner_id}"
    if row.action.startswith("key."):
        return f"{owner} {row.provider}" + (f" {row.key_row_id}" if row.key_row_id else "")
    if row.action.startswith("user."):
        return row.username or ""
    if row.action == "models.set":
        return f"role:{row.role} {row.provider}" if row.role else f"user:{row.owner_id} {row.provider}"
    if row.action == "price.set":
        return f"model {row.provider} {row.model}" if row.model else f"search {row.provider}"
    return {"budget.set": owner, "budget.clear": owner, "limits.set": "shared keys"}.get(row.action, "webhook")


def _detail(row: Any) -> str:
    """The detail text 0009 reads, from the columns."""
    detail, action = row.detail or "", row.action
    if row.mask:
        return f"mask {row.mask}" + (f" ({detail})" if detail else "")
    if action == "user.role" or (action == "user.create" and row.role):
        if action == "user.role":  # single sign-on's reason as 0009 wrote it
            no_claim = re.fullmatch(r"because their single sign-on sent no (.+) claim", detail, re.S)
            detail = (f"single sign-on: no {no_claim[1]} claim" if no_claim else "single sign-on groups"
                      if detail == "from their single sign-on groups" else detail.removeprefix("(").removesuffix(")"))
        return f"role {row.role}" + (f" ({detail})" if detail else "")
    return {
        "user.throttled": detail.replace(" failed tries", " failures"),
        "user.rename": f"from {detail}",
        "budget.set": f"${row.usd or 0:,.2f} a month",
        "price.set": "removed" if row.usd is None else repr(float(row.usd)),
        "models.set": detail or "any model",
        "alerts.set": detail or "removed",
        "alerts.rotate": detail.replace("to master key", "re-encrypted under master key"),
    }.get(action, detail)


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_EVENTS).where(_EVENTS.c.old_target.is_(None))).all()
    if rows:
        conn.execute(_EVENTS.update().where(_EVENTS.c.id == sa.bindparam("event")).values(
            {n: sa.bindparam(f"new_{n}") for n in ("action", "old_target", "detail")}),
            [{"event": r.id, "new_action": "alerts.set" if r.action == "alerts.rotate" else r.action,
              "new_old_target": _target(r), "new_detail": _detail(r)} for r in rows])
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("old_target", new_column_name="target", existing_type=sa.String(200), nullable=False)
        for name in _FIELDS:
            batch.drop_column(name)
