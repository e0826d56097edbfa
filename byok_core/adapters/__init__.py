"""Provider adapters. Adding a provider = one module here and one entry in ADAPTERS."""

from __future__ import annotations

from byok_core.adapters.anthropic import AnthropicAdapter
from byok_core.adapters.base import ChatAdapter, SearchAdapter
from byok_core.adapters.brave import BraveAdapter
from byok_core.adapters.firecrawl import FirecrawlAdapter
from byok_core.adapters.google import GoogleAdapter
from byok_core.adapters.openai import OpenAIAdapter, OpenAICompatibleAdapter
from byok_core.adapters.serper import SerperAdapter
from byok_core.adapters.tavily import TavilyAdapter
from byok_core.providers import Provider

ADAPTERS: dict[Provider, ChatAdapter | SearchAdapter] = {
    Provider.OPENAI: OpenAIAdapter(),
    Provider.ANTHROPIC: AnthropicAdapter(),
    Provider.GOOGLE: GoogleAdapter(),
    Provider.OPENAI_COMPATIBLE: OpenAICompatibleAdapter(),
    Provider.FIRECRAWL: FirecrawlAdapter(),
    Provider.BRAVE: BraveAdapter(),
    Provider.TAVILY: TavilyAdapter(),
    Provider.SERPER: SerperAdapter(),
}
