"""Estimated cost of a call: genai-prices for chat tokens, a per-request price for searches.

Unknown stays unknown (None), never a made-up zero."""

from __future__ import annotations

import functools

from genai_prices import Usage, calc_price
from sqlmodel import Session

from byok_core.errors import ValidationError
from byok_core.models import AppSetting
from byok_core.providers import Provider, ProviderKind
from byok_core.runtime import Runtime

# genai-prices provider ids for the chat providers it can price.
_GENAI_PRICES_IDS = {Provider.OPENAI: "openai", Provider.ANTHROPIC: "anthropic", Provider.GOOGLE: "google"}

# USD per search request on each provider's entry-level paid plan (late 2026); admins can override.
DEFAULT_SEARCH_PRICES = {
    Provider.FIRECRAWL: 0.01,  # 2 credits per search of up to 10 results, ~$0.005 a credit
    Provider.BRAVE: 0.005,  # $5 per 1,000 requests
    Provider.TAVILY: 0.008,  # 1 credit per basic search, $0.008 a credit pay-as-you-go
    Provider.SERPER: 0.001,  # $50 per 50,000 queries
}


@functools.lru_cache(maxsize=512)
def chat_cost(provider: Provider, model: str, input_tokens: int | None, output_tokens: int | None) -> float | None:
    """USD for one chat call, or None when genai-prices does not know the model or tokens are missing."""
    provider_id = _GENAI_PRICES_IDS.get(provider)
    if provider_id is None or not model or input_tokens is None or output_tokens is None:
        return None
    try:
        price = calc_price(Usage(input_tokens=input_tokens, output_tokens=output_tokens),
                           model_ref=model, provider_id=provider_id)
    except LookupError:
        return None
    return float(price.total_price)


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
    return DEFAULT_SEARCH_PRICES.get(provider)


def set_search_price(rt: Runtime, provider: Provider, usd: float) -> None:
    if provider.kind is not ProviderKind.SEARCH or not 0 <= usd < 100:
        raise ValidationError("Search prices are USD per request, from 0 up to 100.")
    with Session(rt.engine) as session, session.begin():
        session.merge(AppSetting(name=_setting_name(provider), value=repr(float(usd))))
