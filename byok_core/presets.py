"""A conversation's settings, and presets: a name for a provider, a model and such settings.

``Settings`` is what a conversation sends with every reply: a system prompt (sent first) and its
parameters (``ChatParams``: temperature, output cap, reasoning effort; None is the provider's
default). Each adapter sends them in its provider's own fields, and only those the model takes.

A preset is one person's own, or the team's. Anyone manages their own; only admins manage the
team's (checked here, and audited); everyone lists the team's and their own, and starts a chat
from one (``conversations.create_from_preset``). Someone else's preset looks exactly like one that
does not exist."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from byok_core import audit
from byok_core.adapters import chat_adapter
from byok_core.adapters.base import ChatParams, Effort
from byok_core.audit import AuditAction
from byok_core.chat import check_model
from byok_core.clock import utcnow
from byok_core.errors import NotFoundError, PermissionDenied, ValidationError
from byok_core.identity import TEAM_ID, Actor, Owner, OwnerKind
from byok_core.models import Preset, saved_id
from byok_core.providers import Provider
from byok_core.runtime import Runtime
from byok_core.text import check_line, check_message

MAX_SYSTEM_PROMPT = 20_000
MAX_NAME = 80
MAX_TEMPERATURE = 2.0
_NOT_FOUND = "No such preset."


class _SettingsRow(Protocol):
    """A row holding settings: a conversation's or a preset's."""

    system_prompt: str
    temperature: float | None
    max_output_tokens: int | None
    reasoning_effort: str | None


@dataclass(frozen=True)
class Settings:
    """A conversation's (or a preset's) system prompt and parameters; the default sends neither."""

    system_prompt: str = ""
    params: ChatParams = field(default_factory=ChatParams)

    @classmethod
    def of(cls, row: _SettingsRow) -> Settings:
        try:
            effort = Effort(row.reasoning_effort) if row.reasoning_effort else None
        except ValueError:  # a value no release wrote: the provider's default
            effort = None
        return cls(row.system_prompt or "", ChatParams(row.temperature, row.max_output_tokens, effort))

    def columns(self) -> dict[str, Any]:
        """The settings as the columns conversations and presets keep them in."""
        p = self.params
        return {"system_prompt": self.system_prompt, "temperature": p.temperature,
                "max_output_tokens": p.max_output_tokens,
                "reasoning_effort": p.reasoning_effort.value if p.reasoning_effort else None}


def check_settings(settings: Settings, provider: Provider | None) -> Settings:
    """``settings`` as they may be kept: the system prompt checked as messages are (it may be empty),
    a temperature from 0 to 2, an output cap from 1 to the adapter's maximum (for ``provider``; for
    any chat provider when None). A ValidationError says what is wrong."""
    prompt = settings.system_prompt or ""
    if prompt.strip():
        try:
            prompt = check_message(prompt, MAX_SYSTEM_PROMPT)
        except ValidationError as exc:
            raise ValidationError(f"The system prompt: {exc}") from None
    else:
        prompt = ""
    p = settings.params
    temperature = p.temperature
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not math.isfinite(temperature) \
                or not 0 <= temperature <= MAX_TEMPERATURE:
            raise ValidationError(f"The temperature is a number from 0 to {MAX_TEMPERATURE:g}.")
        temperature = round(float(temperature), 2)
    cap = p.max_output_tokens
    if cap is not None:
        most = chat_adapter(provider).max_output_tokens if provider is not None else None
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1 or (most is not None and cap > most):
            raise ValidationError("The output cap is a whole number of tokens"
                                  + (f", from 1 to {most:,} for {provider.label}." if provider and most else
                                     ", at least 1."))
    effort = p.reasoning_effort
    if effort is not None and not isinstance(effort, Effort):
        try:
            effort = Effort(str(effort))
        except ValueError:
            raise ValidationError("The reasoning effort is low, medium or high.") from None
    return Settings(prompt, ChatParams(temperature, cap, effort))


@dataclass(frozen=True)
class PresetInfo:
    id: int
    owner: Owner
    name: str
    provider: Provider
    model: str
    settings: Settings

    @classmethod
    def of(cls, row: Preset) -> PresetInfo:
        return cls(saved_id(row.id), Owner(row.owner_kind, row.owner_id), row.name, row.provider, row.model,
                   Settings.of(row))

    @property
    def is_team(self) -> bool:
        return self.owner.is_team


def _visible(user_id: int | None) -> sa.ColumnElement[bool]:
    """The team's presets and the user's own."""
    team = (col(Preset.owner_kind) == OwnerKind.TEAM) & (col(Preset.owner_id) == TEAM_ID)
    if user_id is None:
        return team
    return team | ((col(Preset.owner_kind) == OwnerKind.USER) & (col(Preset.owner_id) == user_id))


def list_for(rt: Runtime, actor: Actor) -> list[PresetInfo]:
    """The presets ``actor`` may pick: the team's first, then their own, each by name."""
    with Session(rt.engine) as session:
        rows = session.exec(select(Preset).where(_visible(actor.user_id)))
        found = [PresetInfo.of(r) for r in rows]
    return sorted(found, key=lambda p: (not p.is_team, p.name.casefold(), p.id))


def get_for(rt: Runtime, user_id: int | None, preset_id: int) -> PresetInfo:
    """A preset the user may pick (the team's or their own); NotFoundError for any other."""
    with Session(rt.engine) as session:
        row = session.exec(select(Preset).where(col(Preset.id) == preset_id, _visible(user_id))).first()
    if row is None:
        raise NotFoundError(_NOT_FOUND)
    return PresetInfo.of(row)


def named(rt: Runtime, user_id: int | None, name: str) -> PresetInfo:
    """The preset called ``name`` (in any case) that the user may pick: their own before the team's;
    NotFoundError when there is none."""
    with Session(rt.engine) as session:
        rows = session.exec(select(Preset).where(_visible(user_id),
                                                 sa.func.lower(col(Preset.name)) == " ".join(name.split()).lower()))
        found = sorted((PresetInfo.of(r) for r in rows), key=lambda p: p.is_team)
    if not found:
        raise NotFoundError(f"There is no preset called {name!r}" + (" of yours or" if user_id is not None else "")
                            + " of the team's; the Presets menu on the Chat page lists them.")
    return found[0]


def _check_may_manage(actor: Actor, owner: Owner) -> None:
    if owner.is_team:
        actor.check_admin("manage team presets")
    elif actor.user_id is None or owner.id != actor.user_id:
        raise PermissionDenied("You can manage only your own presets (and admins the team's).")


def _checked(name: str, provider: Provider, model: str, settings: Settings) -> tuple[str, str, Settings]:
    name = " ".join(check_line(name or "", "The preset's name").split())
    if not name:
        raise ValidationError("A preset needs a name.")
    if len(name) > MAX_NAME:
        raise ValidationError(f"A preset's name can be at most {MAX_NAME} characters.")
    adapter = chat_adapter(provider)
    model = check_model(adapter.canonical_model((model or "").strip()), provider)
    return name, model, check_settings(settings, provider)


def _taken(name: str) -> ValidationError:
    return ValidationError(f"There is already a preset named {name}; pick another name.")


def _audit(session: Session, actor: Actor, action: AuditAction, row: Preset) -> None:
    if row.owner_kind is OwnerKind.TEAM:  # a person's own presets are their own business, as conversations are
        audit.record(session, actor.name, action, audit.Target(owner=Owner.team(), provider=row.provider,
                                                               model=row.model), detail=row.name)


def create(rt: Runtime, actor: Actor, owner: Owner, name: str, provider: Provider, model: str,
           settings: Settings = Settings()) -> PresetInfo:
    """Save a preset for ``owner``: the actor's own, or (admins only; audited) the team's."""
    _check_may_manage(actor, owner)
    name, model, settings = _checked(name, provider, model, settings)
    now = utcnow()
    row = Preset(owner_kind=owner.kind, owner_id=owner.id, name=name, provider=provider, model=model,
                 created_at=now, updated_at=now, **settings.columns())

    def add(session: Session) -> Preset:
        session.add(row)
        return row
    return _saved(rt, actor, name, add)


def _saved(rt: Runtime, actor: Actor, name: str, change: Callable[[Session], Preset]) -> PresetInfo:
    """Make ``change`` and its audit row in one transaction; a name the owner already uses is refused."""
    try:
        with Session(rt.engine, expire_on_commit=False) as session, session.begin():
            row = change(session)
            session.flush()
            _audit(session, actor, AuditAction.PRESET_SET, row)
    except IntegrityError:
        raise _taken(name) from None
    return PresetInfo.of(row)


def _managed(session: Session, actor: Actor, preset_id: int) -> Preset:
    """The preset ``actor`` may change: their own, or the team's (admins); someone else's looks missing."""
    row = session.exec(select(Preset).where(col(Preset.id) == preset_id, _visible(actor.user_id))).first()
    if row is None:
        raise NotFoundError(_NOT_FOUND)
    _check_may_manage(actor, Owner(row.owner_kind, row.owner_id))
    return row


def update(rt: Runtime, actor: Actor, preset_id: int, name: str, provider: Provider, model: str,
           settings: Settings = Settings()) -> PresetInfo:
    """Change a preset: one's own, or (admins only; audited) the team's."""
    with Session(rt.engine) as session:
        _managed(session, actor, preset_id)  # refused before the values are checked
    name, model, settings = _checked(name, provider, model, settings)

    def change(session: Session) -> Preset:
        row = _managed(session, actor, preset_id)
        for column, value in {"name": name, "provider": provider, "model": model, "updated_at": utcnow(),
                              **settings.columns()}.items():
            setattr(row, column, value)
        return row
    return _saved(rt, actor, name, change)


def delete(rt: Runtime, actor: Actor, preset_id: int) -> None:
    """Delete a preset: one's own, or (admins only; audited) the team's. Chats started from it keep
    their settings."""
    with Session(rt.engine) as session, session.begin():
        row = _managed(session, actor, preset_id)
        _audit(session, actor, AuditAction.PRESET_DELETE, row)
        session.delete(row)


def describe(settings: Settings) -> str:
    """The settings in a few words, "" for the provider's defaults: "system prompt · temperature 0.2 ·
    cap 1,000 tokens · effort high"."""
    p = settings.params
    parts = ["system prompt"] if settings.system_prompt else []
    if p.temperature is not None:
        parts.append(f"temperature {p.temperature:g}")
    if p.max_output_tokens is not None:
        parts.append(f"cap {p.max_output_tokens:,} tokens")
    if p.reasoning_effort is not None:
        parts.append(f"effort {p.reasoning_effort.value}")
    return " · ".join(parts)
