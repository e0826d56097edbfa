"""The registry: one entry per provider, the single definition that the database, forms, CLI,
key checks, pricing and adapters share. No provider name travels as a loose string.

Adding a provider: one adapter module in ``byok_core/adapters/`` and one member here."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from enum import StrEnum

from byok_core.errors import UnknownProviderError


class ProviderKind(StrEnum):
    CHAT = "chat"
    SEARCH = "search"


@dataclass(frozen=True)
class ProviderSpec:
    label: str  # the name people see
    kind: ProviderKind
    adapter: str  # "module:Class" in byok_core.adapters (imported on first use)
    key_env: str | None = None  # server-wide fallback key variable
    base_url_env: str | None = None  # operator's override of the default endpoint
    default_base_url: str | None = None  # None: the owner of the key supplies the URL
    key_hint: str = ""  # what a key usually looks like, shown next to the form
    pricing_id: str | None = None  # chat: genai-prices' provider id (None: not priced)
    price_per_request: float | None = None  # search: default USD per request (admins may change it)
    key_url: str | None = None  # where a person gets a key (None: it depends on the endpoint)


class Provider(StrEnum):
    _value_: str
    spec: ProviderSpec

    def __new__(cls, value: str, spec: ProviderSpec) -> Provider:
        member = str.__new__(cls, value)
        member._value_ = value
        member.spec = spec
        return member

    OPENAI = "openai", ProviderSpec(
        "OpenAI", ProviderKind.CHAT, "openai:OpenAIAdapter", "OPENAI_API_KEY", "OPENAI_BASE_URL",
        "https://api.openai.com/v1", "starts with sk-", pricing_id="openai",
        key_url="https://platform.openai.com/api-keys")
    ANTHROPIC = "anthropic", ProviderSpec(
        "Anthropic", ProviderKind.CHAT, "anthropic:AnthropicAdapter", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
        "https://api.anthropic.com", "starts with sk-ant-", pricing_id="anthropic",
        key_url="https://console.anthropic.com/settings/keys")
    GOOGLE = "google", ProviderSpec(
        "Google Gemini", ProviderKind.CHAT, "google:GoogleAdapter", "GOOGLE_GENERATIVE_AI_API_KEY",
        "GOOGLE_GEMINI_BASE_URL", "https://generativelanguage.googleapis.com", "starts with AIza", pricing_id="google",
        key_url="https://aistudio.google.com/apikey")
    OPENAI_COMPATIBLE = "openai-compatible", ProviderSpec(
        "OpenAI-compatible", ProviderKind.CHAT, "openai:OpenAICompatibleAdapter",
        key_hint="your endpoint's key (OpenRouter, Groq, Ollama, vLLM, ...)")
    FIRECRAWL = "firecrawl", ProviderSpec(
        "Firecrawl", ProviderKind.SEARCH, "firecrawl:FirecrawlAdapter", "FIRECRAWL_API_KEY", "FIRECRAWL_BASE_URL",
        "https://api.firecrawl.dev", "starts with fc-", key_url="https://www.firecrawl.dev/app/api-keys",
        price_per_request=0.01)  # 2 credits per search of up to 10 results, ~$0.005 a credit
    BRAVE = "brave", ProviderSpec(
        "Brave Search", ProviderKind.SEARCH, "brave:BraveAdapter", "BRAVE_API_KEY", "BRAVE_BASE_URL",
        "https://api.search.brave.com", "starts with BSA", key_url="https://api-dashboard.search.brave.com/app/keys",
        price_per_request=0.005)  # $5 per 1,000 requests
    TAVILY = "tavily", ProviderSpec(
        "Tavily", ProviderKind.SEARCH, "tavily:TavilyAdapter", "TAVILY_API_KEY", "TAVILY_BASE_URL",
        "https://api.tavily.com", "starts with tvly-", key_url="https://app.tavily.com/home",
        price_per_request=0.008)  # 1 credit per basic search, $0.008 a credit pay-as-you-go
    SERPER = "serper", ProviderSpec(
        "Serper", ProviderKind.SEARCH, "serper:SerperAdapter", "SERPER_API_KEY", "SERPER_BASE_URL",
        "https://google.serper.dev", "40 digits and letters from a to f",
        key_url="https://serper.dev/api-key", price_per_request=0.001)  # $50 per 50,000 queries

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def kind(self) -> ProviderKind:
        return self.spec.kind

    @property
    def user_supplies_url(self) -> bool:
        return self.spec.default_base_url is None

    @classmethod
    def parse(cls, value: str) -> Provider:
        """Provider from its id, with a message listing the valid ids."""
        try:
            return cls(value.strip().lower())  # type: ignore[call-arg]  # by value: members carry their spec
        except ValueError:
            valid = ", ".join(p.value for p in cls)
            raise UnknownProviderError(f"Unknown provider {value!r}; use one of: {valid}.") from None

    @classmethod
    def arg(cls, value: str) -> Provider:
        """``parse`` for argparse, which shows an ArgumentTypeError's message as is."""
        try:
            return cls.parse(value)
        except UnknownProviderError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    @classmethod
    def of_kind(cls, kind: ProviderKind) -> list[Provider]:
        """The providers of one kind in registry order (chat: the default-provider order)."""
        return [p for p in cls if p.kind is kind]
