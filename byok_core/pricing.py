"""Estimated cost of a call: genai-prices for chat tokens, a per-request price for searches, and
an admin's per-call price for a chat model genai-prices does not know.

Unknown stays unknown (None), never a made-up zero. ``CostBound`` is a call's worst case, reserved
against shared-key budgets before it is made (``budgets``)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import Session, col

from byok_core import audit
from byok_core.audit import AuditAction
from byok_core.errors import CallStatus, ValidationError
from byok_core.identity import Actor
from byok_core.models import AppSetting, rowcount
from byok_core.providers import Provider, ProviderKind
from byok_core.record import CallRecord
from byok_core.runtime import Runtime

if TYPE_CHECKING:
    from genai_prices import Usage

MESSAGE_OVERHEAD_TOKENS = 8  # role markers and separators per message, generously
_MODEL_PRICE = "model_price."


def usage_cost(provider: Provider, model: str, usage: Usage, pricing_id: str | None = None) -> float | None:
    """USD for the usage a provider billed (cache reads and writes, thinking, server-side tools
    included), or None when genai-prices does not know the model. ``pricing_id``: genai-prices'
    provider when it is not the provider's own (an OpenAI-compatible connection's)."""
    pricing_id = pricing_id or provider.spec.pricing_id
    if pricing_id is None or not model:
        return None
    from genai_prices import calc_price  # its price table takes ~45 ms to load: only when a call is priced

    try:
        return float(calc_price(usage, model_ref=model, provider_id=pricing_id).total_price)
    except LookupError:
        return None


def call_cost(rt: Runtime, record: CallRecord, bound: CostBound | None = None) -> float | None:
    """The estimated cost of a finished call. A call the provider refused before replying costs a
    known $0 (providers do not bill refused requests). A chat is priced from the usage it billed
    (unknown when it reported none), or at the admin's per-call price for a model genai-prices does
    not know; a search that was answered costs its price per request (``bound``'s, when the call
    was bounded with ``search_bound``, so the price is read once). Where the provider reported what
    it billed (OpenRouter), that is the cost, and genai-prices' figure is kept beside it
    (``record.priced_usd``)."""
    if record.refused:
        return 0.0
    if record.provider.kind is ProviderKind.CHAT:
        known = None if record.billed is None else usage_cost(record.provider, record.priced_model or record.model,
                                                              record.billed, record.pricing_id)
        if record.reported_usd is not None:
            record.priced_usd = known
            return record.reported_usd
        return known if known is not None else model_price(rt, record.provider, record.model)
    if not record.ok:
        return None
    return bound.usd if bound is not None else search_price(rt, record.provider)


# --- the worst case of a call, and what it counts against a budget ------------------------------


def prompt_tokens_bound(texts: list[str]) -> int:
    """At most how many tokens ``texts`` make as a prompt: byte-level tokenizers never make more
    than one token per UTF-8 byte, plus a few per message for roles and separators."""
    return sum(len(text.encode()) + MESSAGE_OVERHEAD_TOKENS for text in texts)


class CostBound:
    """The most a call can cost (``usd``; None when its price is unknown), and what it was built from.

    ``usd`` and ``per_call`` are worked out by ``price`` on first use: a call that counts against no
    budget and ends complete never needs them, and pricing loads genai-prices' table (~45 ms)."""

    def __init__(self, usd: float | None = None, *, input_tokens: int = 0, output_cap: int = 0,
                 per_call: bool = False, price: Callable[[], tuple[float | None, bool]] | None = None) -> None:
        self.input_tokens, self.output_cap = input_tokens, output_cap
        self._price = price or (lambda: (usd, per_call))

    @functools.cached_property
    def _priced(self) -> tuple[float | None, bool]:
        return self._price()

    @property
    def usd(self) -> float | None:
        return self._priced[0]

    @property
    def per_call(self) -> bool:
        """Priced per request (searches, admin-priced models), not per token."""
        return self._priced[1]

    def charge(self, record: CallRecord) -> float:
        """What a finished call counts against budgets: its cost when the provider reported it whole,
        else a bound. A stream that ended early (stopped, cut off, timed out) with some of the
        provider's usage counts the prompt's bound plus the text received (one token per byte at
        most), or that usage's cost if more; with none of it, the whole worst case: a reasoning
        model bills its hidden reasoning, up to the output cap, before and between the words seen."""
        if record.refused:
            return 0.0
        complete = record.status not in (CallStatus.CUT_OFF, CallStatus.STOPPED, CallStatus.TIMEOUT)
        if record.cost_usd is not None and (complete or self.per_call):
            return record.cost_usd
        if self.per_call or self.usd is None or record.billed is None:
            return record.cost_usd if record.cost_usd is not None else (self.usd or 0.0)
        output = min(self.output_cap, record.output_bytes)
        estimate = usage_cost(record.provider, record.priced_model or record.model, _usage(self.input_tokens, output),
                              record.pricing_id)
        return max(record.cost_usd or 0.0, estimate if estimate is not None else self.usd)


def _usage(input_tokens: int, output_tokens: int) -> Usage:
    from genai_prices import Usage

    return Usage(input_tokens=input_tokens, output_tokens=output_tokens)


def chat_bound(rt: Runtime, provider: Provider, model: str, texts: list[str], output_cap: int,
               file_tokens: int = 0, pricing_id: str | None = None) -> CostBound:
    """The worst case of a chat call: the prompt's token bound (its attached files' ``file_tokens``
    included) and the output cap at genai-prices' rates (with long-context tiers; ``pricing_id`` as in
    ``usage_cost``), or the admin's per-call price; ``usd`` None when neither is known."""
    input_tokens = prompt_tokens_bound(texts) + file_tokens

    def price() -> tuple[float | None, bool]:
        worst = usage_cost(provider, model, _usage(input_tokens, output_cap), pricing_id)
        if worst is not None:
            return worst, False
        per_call = model_price(rt, provider, model)
        return per_call, per_call is not None

    return CostBound(input_tokens=input_tokens, output_cap=output_cap, price=price)


def search_bound(rt: Runtime, provider: Provider) -> CostBound:
    return CostBound(price=lambda: (search_price(rt, provider), True))


# --- admin-set prices ---------------------------------------------------------------------------


def _setting_name(provider: Provider) -> str:
    return f"search_price_usd.{provider.value}"


def search_price(rt: Runtime, provider: Provider) -> float | None:
    """The admin's per-request price for a search provider, else the documented default."""
    if provider.kind is not ProviderKind.SEARCH:
        raise ValueError(f"{provider.value} is not a search provider")
    with Session(rt.engine) as session:
        row = session.get(AppSetting, _setting_name(provider))
    if row is not None:
        return float(row.value)
    return provider.spec.price_per_request


def set_search_price(rt: Runtime, actor: Actor, provider: Provider, usd: float) -> None:
    """Set the USD per request of a search provider. Admins only; audited."""
    actor.check_admin("set search prices")
    if provider.kind is not ProviderKind.SEARCH or not 0 <= usd < 100:
        raise ValidationError("Search prices are USD per request, from 0 up to 100.")
    with Session(rt.engine) as session, session.begin():
        session.merge(AppSetting(name=_setting_name(provider), value=repr(float(usd))))
        audit.record(session, actor.name, AuditAction.PRICE_SET, audit.Target(provider=provider), usd=float(usd))


def _model_setting(provider: Provider, model: str) -> str:
    return _MODEL_PRICE + hashlib.sha256(f"{provider.value}/{model}".encode()).hexdigest()[:32]


def model_price(rt: Runtime, provider: Provider, model: str) -> float | None:
    """The admin's per-call price for a chat model genai-prices does not know, if one is set."""
    with Session(rt.engine) as session:
        row = session.get(AppSetting, _model_setting(provider, model))
    return None if row is None else float(json.loads(row.value)["usd"])


def model_prices(rt: Runtime) -> list[tuple[Provider, str, float]]:
    """Every per-call model price the admins set: (provider, model, USD)."""
    with rt.engine.connect() as conn:
        values = conn.execute(sa.select(col(AppSetting.value))
                              .where(col(AppSetting.name).startswith(_MODEL_PRICE))).scalars().all()
    entries = [json.loads(value) for value in values]
    return sorted((Provider.parse(e["provider"]), e["model"], float(e["usd"])) for e in entries)


def set_model_price(rt: Runtime, actor: Actor, provider: Provider, model: str, usd: float | None) -> None:
    """Set (or, with None, remove) the per-call price of a chat model genai-prices cannot price.
    Admins only; audited."""
    actor.check_admin("set model prices")
    if provider.kind is not ProviderKind.CHAT or not model or len(model) > 120 or not model.isprintable():
        raise ValidationError("Per-call prices are for chat models: pick a chat provider and type the model's name.")
    if usd is not None and not 0 <= usd < 100:
        raise ValidationError("A per-call price is in USD, from 0 up to 100.")
    name = _model_setting(provider, model)
    with Session(rt.engine) as session, session.begin():
        if usd is None:
            if not rowcount(session.execute(sa.delete(AppSetting).where(col(AppSetting.name) == name))):
                return  # there was no price: nothing changed, nothing to audit
        else:
            session.merge(AppSetting(name=name, value=json.dumps({"provider": provider.value, "model": model,
                                                                   "usd": float(usd)})))
        audit.record(session, actor.name, AuditAction.PRICE_SET, audit.Target(provider=provider, model=model),
                     usd=None if usd is None else float(usd))
