"""Google Gemini (generativelanguage API, v1beta) with ``streamGenerateContent?alt=sse``.

There is no end event: the stream simply ends, and it is complete only when its last chunk
carries a finishReason. Tokens come in usageMetadata. Key test: GET /v1beta/models (free)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from byok_core.adapters.base import ChatAdapter, ChatMessage, Reply, split_system
from byok_core.credential import Credential
from byok_core.errors import RequestRejected
from byok_core.providers import Provider

_ROLES = {"user": "user", "assistant": "model"}


def _model_id(model: str) -> str:
    return model.removeprefix("models/")


def _path_segment(model: str) -> str:
    return quote(model, safe="")


class GoogleAdapter(ChatAdapter):
    provider = Provider.GOOGLE
    usage_provider = "google"
    default_model = "gemini-2.5-flash"
    fallback_models = ("gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro", "gemini-2.0-flash")
    stops_at_end_marker = False

    def headers(self, cred: Credential) -> dict[str, str]:
        return {"x-goog-api-key": cred.secret.reveal()}

    def canonical_model(self, model: str) -> str:
        return _model_id(model)  # "models/gemini-2.5-pro" is the same call, price and budget as "gemini-2.5-pro"

    def chat_request(self, cred: Credential, model: str, messages: list[ChatMessage]) -> tuple[str, dict[str, Any]]:
        system, rest = split_system(messages)
        body: dict[str, Any] = {
            "contents": [{"role": _ROLES.get(m.role, "user"), "parts": [{"text": m.content}]} for m in rest],
            "generationConfig": {"maxOutputTokens": self.max_output_tokens}}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        return f"{cred.base_url}/v1beta/models/{_path_segment(model)}:streamGenerateContent?alt=sse", body

    def on_event(self, event: str, data: dict[str, Any], reply: Reply) -> str | None:
        if isinstance(data.get("usageMetadata"), dict):  # cumulative in every chunk: the last one counts
            reply.usage_object = {"usageMetadata": data["usageMetadata"]}
        blocked = (data.get("promptFeedback") or {}).get("blockReason")
        if blocked:
            raise RequestRejected(f"Google Gemini blocked the prompt ({blocked}); rephrase it and try again.")
        candidates = data.get("candidates")
        if not candidates or not isinstance(candidates[0], dict):
            return None  # e.g. a chunk with only usage: completeness stays as the last candidate said
        first = candidates[0]
        reply.complete = bool(first.get("finishReason"))
        parts = (first.get("content") or {}).get("parts") or []
        return "".join(p.get("text", "") for p in parts if isinstance(p, dict) and not p.get("thought")) or None

    def models_url(self, cred: Credential) -> str:
        return f"{cred.base_url}/v1beta/models?pageSize=1000"

    def parse_models(self, body: Any) -> list[str]:
        return [_model_id(m["name"]) for m in body.get("models", [])
                if isinstance(m, dict) and m.get("name")
                and "generateContent" in (m.get("supportedGenerationMethods") or ["generateContent"])]
