"""Estimated cost of a call: genai-prices for chat tokens, a per-request price for searches.

Unknown stays unknown (None), never a made-up zero."""

from __future__ import annotations

import functools

from genai_prices import Usage, calc_price
from sqlmodel import Session

from byok_core.errors import ValidationError
from byok_core.models import AppSetting
from byok_core.providers import Provider, ProviderKind
from byok_core.record import CallRecord
from byok_core.runtime import Runtime


@functools.lru_cache(maxsize=512)
def chat_cost(provider: Provider, model: str, input_tokens: int | None, output_tokens: int | None) -> float | None:
    """USD for one chat call, or None when genai-prices does not know the model or tokens are missing."""
    provider_id = provider.spec.pricing_id
    if provider_id is None or not model or input_tokens is None or output_tokens is None:
        return None
    try:
        price = calc_price(Usage(input_tokens=input_tokens, output_tokens=output_tokens),
                           model_ref=model, provider_id=provider_id)
    except LookupError:
        return None
    return float(price.total_price)


def call_cost(rt: Runtime, record: CallRecord) -> float | None:
    """The estimated cost of a finished call: its tokens' price (chat), or the price per request
    of a search that was answered (a refused search costs nothing known)."""
    if record.provider.kind is ProviderKind.CHAT:
        return chat_cost(record.provider, record.model, record.input_tokens, record.output_tokens)
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
