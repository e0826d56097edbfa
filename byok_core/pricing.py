"""Estimated cost of a call: genai-prices for chat tokens, a per-request price for searches.

Unknown stays unknown (None), never a made-up zero."""

from __future__ import annotations

from genai_prices import Usage, calc_price
from sqlmodel import Session

from byok_core.errors import ValidationError
from byok_core.models import AppSetting
from byok_core.providers import Provider, ProviderKind
from byok_core.record import CallRecord
from byok_core.runtime import Runtime


def usage_cost(provider: Provider, model: str, usage: Usage) -> float | None:
    """USD for the usage a provider billed (cache reads and writes, thinking, server-side tools
    included), or None when genai-prices does not know the model."""
    if provider.spec.pricing_id is None or not model:
        return None
    try:
        return float(calc_price(usage, model_ref=model, provider_id=provider.spec.pricing_id).total_price)
    except LookupError:
        return None


def call_cost(rt: Runtime, record: CallRecord) -> float | None:
    """The estimated cost of a finished call. A call the provider refused before replying costs a
    known $0 (providers do not bill refused requests). A chat is priced from the usage it billed,
    unknown when it reported none; a search that was answered costs its price per request."""
    if record.refused:
        return 0.0
    if record.provider.kind is ProviderKind.CHAT:
        return None if record.billed is None else usage_cost(record.provider, record.model, record.billed)
    return search_price(rt, record.provider) if record.ok else None


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


def set_search_price(rt: Runtime, provider: Provider, usd: float) -> None:
    if provider.kind is not ProviderKind.SEARCH or not 0 <= usd < 100:
        raise ValidationError("Search prices are USD per request, from 0 up to 100.")
    with Session(rt.engine) as session, session.begin():
        session.merge(AppSetting(name=_setting_name(provider), value=repr(float(usd))))
