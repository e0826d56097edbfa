"""OpenAI Chat Completions, and any OpenAI-compatible endpoint (OpenRouter, Groq, Ollama, vLLM, ...).

Streams with ``stream_options.include_usage``: the last JSON chunk carries only the usage, then
``data: [DONE]`` ends the stream. Key test: GET /models (free)."""

from __future__ import annotations

from typing import Any, ClassVar

from byok_core.adapters.base import ChatAdapter, ChatMessage, Reply
from byok_core.credential import Credential
from byok_core.providers import Provider


class OpenAIAdapter(ChatAdapter):
    provider = Provider.OPENAI
    default_model: ClassVar[str | None] = "gpt-4o-mini"
    fallback_models: ClassVar[tuple[str, ...]] = ("gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini",
                                                  "o3-mini", "o4-mini")
    end_marker_data = "[DONE]"
    usage_provider, usage_flavor = "openai", "chat"
    cap_field: ClassVar[str] = "max_completion_tokens"  # OpenAI's name; reasoning models refuse max_tokens

    def headers(self, cred: Credential) -> dict[str, str]:
        return {"Authorization": f"Bearer {cred.secret.reveal()}"}

    def chat_request(self, cred: Credential, model: str, messages: list[ChatMessage]) -> tuple[str, dict[str, Any]]:
        return f"{cred.base_url}/chat/completions", {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            self.cap_field: self.max_output_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    def on_event(self, event: str, data: dict[str, Any], reply: Reply) -> str | None:
        if isinstance(data.get("usage"), dict):  # the last chunk (stream_options.include_usage)
            reply.usage_object = {"usage": data["usage"]}
        choices = data.get("choices") or [{}]
        return (choices[0].get("delta") or {}).get("content") or None

    def models_url(self, cred: Credential) -> str:
        return f"{cred.base_url}/models"

    def parse_models(self, body: Any) -> list[str]:
        return [m["id"] for m in body.get("data", []) if isinstance(m, dict) and m.get("id")]


class OpenAICompatibleAdapter(OpenAIAdapter):
    """The same wire format at the key owner's own base URL; no default model or static list."""

    provider = Provider.OPENAI_COMPATIBLE
    default_model = None
    fallback_models = ()
    cap_field = "max_tokens"  # the name compatible servers (Ollama, vLLM, Groq, OpenRouter) all accept
