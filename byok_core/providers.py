"""The one definition of every provider the app knows: id, kind, env fallbacks and base URL."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from typing import Mapping

from byok_core.errors import UnknownProviderError


class ProviderKind(StrEnum):
    CHAT = "chat"
    SEARCH = "search"


@dataclass(frozen=True)
class ProviderSpec:
    label: str
    kind: ProviderKind
    key_env: str | None  # server-wide fallback key variable
    base_url_env: str | None  # operator's override of the default endpoint
    default_base_url: str | None  # None: the owner of the key supplies the URL
    key_hint: str = ""  # what a key usually looks like, shown next to the form


class Provider(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GOOGLE = "google"
    OPENAI_COMPATIBLE = "openai-compatible"
    FIRECRAWL = "firecrawl"
    BRAVE = "brave"
    TAVILY = "tavily"
    SERPER = "serper"

    @property
    def spec(self) -> ProviderSpec:
        return _SPECS[self]

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def kind(self) -> ProviderKind:
        return self.spec.kind

    @property
    def user_supplies_url(self) -> bool:
        return self.spec.default_base_url is None

    def base_url(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The operator's endpoint for this provider: the override variable, else the default."""
        env = os.environ if environ is None else environ
        spec = self.spec
        if spec.base_url_env and env.get(spec.base_url_env, "").strip():
            return env[spec.base_url_env].strip().rstrip("/")
        return spec.default_base_url

    def env_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        env = os.environ if environ is None else environ
        if not self.spec.key_env:
            return None
        value = env.get(self.spec.key_env, "").strip()
        return value or None

    @classmethod
    def parse(cls, value: str) -> "Provider":
        """Provider from its id, with a message listing the valid ids."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            valid = ", ".join(p.value for p in cls)
            raise UnknownProviderError(f"Unknown provider {value!r}; use one of: {valid}.") from None

    @classmethod
    def arg(cls, value: str) -> "Provider":
        """``parse`` for argparse, which shows an ArgumentTypeError's message as is."""
        import argparse

        try:
            return cls.parse(value)
        except UnknownProviderError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    @classmethod
    def of_kind(cls, kind: ProviderKind) -> list["Provider"]:
        return [p for p in cls if p.kind is kind]


_SPECS: dict[Provider, ProviderSpec] = {
    Provider.OPENAI: ProviderSpec(
        "OpenAI", ProviderKind.CHAT, "OPENAI_API_KEY", "OPENAI_BASE_URL",
        "https://api.openai.com/v1", "starts with sk-",
    ),
    Provider.ANTHROPIC: ProviderSpec(
        "Anthropic", ProviderKind.CHAT, "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
        "https://api.anthropic.com", "starts with sk-ant-",
    ),
    Provider.GOOGLE: ProviderSpec(
        "Google Gemini", ProviderKind.CHAT, "GOOGLE_GENERATIVE_AI_API_KEY", "GOOGLE_GEMINI_BASE_URL",
        "https://generativelanguage.googleapis.com", "starts with AIza",
    ),
    Provider.OPENAI_COMPATIBLE: ProviderSpec(
        "OpenAI-compatible", ProviderKind.CHAT, None, None, None,
        "your endpoint's key (OpenRouter, Groq, Ollama, vLLM, ...)",
    ),
    Provider.FIRECRAWL: ProviderSpec(
        "Firecrawl", ProviderKind.SEARCH, "FIRECRAWL_API_KEY", "FIRECRAWL_BASE_URL",
        "https://api.firecrawl.dev", "starts with fc-",
    ),
    Provider.BRAVE: ProviderSpec(
        "Brave Search", ProviderKind.SEARCH, "BRAVE_API_KEY", "BRAVE_BASE_URL",
        "https://api.search.brave.com",
    ),
    Provider.TAVILY: ProviderSpec(
        "Tavily", ProviderKind.SEARCH, "TAVILY_API_KEY", "TAVILY_BASE_URL",
        "https://api.tavily.com", "starts with tvly-",
    ),
    Provider.SERPER: ProviderSpec(
        "Serper", ProviderKind.SEARCH, "SERPER_API_KEY", "SERPER_BASE_URL",
        "https://google.serper.dev",
    ),
}
