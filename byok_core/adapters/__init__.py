"""Provider adapters, one module each, found through the registry (``Provider.spec.adapter``).

Two typed maps, so nobody re-checks a provider's kind at run time: ``CHAT_ADAPTERS`` and
``SEARCH_ADAPTERS``. ``chat_adapter`` / ``search_adapter`` turn a wrong kind into a clear error."""

from __future__ import annotations

from importlib import import_module

from byok_core.adapters.base import ChatAdapter, SearchAdapter
from byok_core.errors import ValidationError
from byok_core.providers import Provider, ProviderKind


def _load(provider: Provider) -> object:
    module, name = provider.spec.adapter.split(":")
    adapter = getattr(import_module(f"byok_core.adapters.{module}"), name)()
    if adapter.provider is not provider:
        raise TypeError(f"{provider.spec.adapter} is not the adapter for {provider.value}")
    return adapter


CHAT_ADAPTERS: dict[Provider, ChatAdapter] = {}
SEARCH_ADAPTERS: dict[Provider, SearchAdapter] = {}
for _provider in Provider:
    _adapter = _load(_provider)
    if _provider.kind is ProviderKind.CHAT and isinstance(_adapter, ChatAdapter):
        CHAT_ADAPTERS[_provider] = _adapter
    elif _provider.kind is ProviderKind.SEARCH and isinstance(_adapter, SearchAdapter):
        SEARCH_ADAPTERS[_provider] = _adapter
    else:
        raise TypeError(f"{_provider.spec.adapter} is not a {_provider.kind.value} adapter")


def chat_adapter(provider: Provider) -> ChatAdapter:
    if provider not in CHAT_ADAPTERS:
        raise ValidationError(f"{provider.label} is a search provider; pick a chat provider.")
    return CHAT_ADAPTERS[provider]


def search_adapter(provider: Provider) -> SearchAdapter:
    if provider not in SEARCH_ADAPTERS:
        raise ValidationError(f"{provider.label} is not a search provider.")
    return SEARCH_ADAPTERS[provider]
