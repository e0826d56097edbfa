"""Google Gemini (generativelanguage API, v1beta) with ``streamGenerateContent?alt=sse``.

There is no end event: the stream simply ends, and it is complete only when its last chunk
carries a finishReason. Tokens come in usageMetadata. Key test: GET /v1beta/models (free).

Parts with ``thought: true`` are the model's thinking, never the reply; ``functionCall`` parts are
tool calls; ``groundingMetadata`` is not read. ``promptFeedback.blockReason`` means the prompt was
blocked (the call fails, its usage kept); a finishReason of MAX_TOKENS is the output cap, SAFETY and
its kin a safety stop.

Parameters: the system prompt in ``systemInstruction``; ``generationConfig.temperature``; the output
cap in ``generationConfig.maxOutputTokens``; a reasoning effort as
``generationConfig.thinkingConfig.thinkingBudget``, only to the models that think (Gemini 2.5 and 3:
``THINKING_MODELS``): the effort's share of the output cap (``EFFORT_SHARE``), since thinking counts
toward it, and at least 512 (what Gemini 2.5 Flash-Lite and Pro accept at the least)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from byok_core.adapters.base import DEFAULT_PARAMS, ChatAdapter, ChatMessage, ChatParams, Reply, Stop, split_system
from byok_core.adapters.files import gemini_parts
from byok_core.credential import Credential
from byok_core.errors import RequestRejected
from byok_core.providers import Provider

_ROLES = {"user": "user", "assistant": "model"}
THINKING_MODELS = re.compile(r"gemini-(2\.5|3)(\b|[-.])")
MIN_THINKING = 512
# finishReason values (besides STOP) the person is told about, lowercased; the rest end a reply as usual
_STOPS = {"max_tokens": Stop.OUTPUT_CAP, "safety": Stop.SAFETY, "recitation": Stop.SAFETY, "blocklist": Stop.SAFETY,
          "prohibited_content": Stop.SAFETY, "spii": Stop.SAFETY, "image_safety": Stop.SAFETY}


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

    def chat_request(self, cred: Credential, model: str, messages: list[ChatMessage],
                     params: ChatParams = DEFAULT_PARAMS) -> tuple[str, dict[str, Any]]:
        system, rest = split_system(messages)
        config: dict[str, Any] = {"maxOutputTokens": self.output_cap(params)}
        if params.temperature is not None:
            config["temperature"] = float(params.temperature)
        thinking = self.thinking_budget(params, MIN_THINKING) if self.reasoning_field(model) else None
        if thinking is not None:
            config["thinkingConfig"] = {"thinkingBudget": thinking}
        body: dict[str, Any] = {
            "contents": [{"role": _ROLES.get(m.role, "user"), "parts": gemini_parts(m.content, m.files)} for m in rest],
            "generationConfig": config}
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
        finish = first.get("finishReason")
        reply.complete = bool(finish)
        if finish:
            reply.stop_reason = str(finish)
            reply.stop = _STOPS.get(reply.stop_reason.lower())
        parts = (first.get("content") or {}).get("parts") or []
        text = []
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, dict):
                continue
            if part.get("thought"):
                reply.thought = True
            elif isinstance(part.get("text"), str):
                text.append(part["text"])
            elif isinstance(part.get("functionCall"), dict) and part["functionCall"].get("name"):
                reply.tools.append(str(part["functionCall"]["name"]))
        return "".join(text) or None

    def reasoning_field(self, model: str) -> str | None:
        return "thinkingConfig.thinkingBudget" if THINKING_MODELS.match(_model_id(model)) else None

    def models_url(self, cred: Credential) -> str:
        return f"{cred.base_url}/v1beta/models?pageSize=1000"

    def parse_models(self, body: Any) -> list[str]:
        return [_model_id(m["name"]) for m in body.get("models", [])
                if isinstance(m, dict) and m.get("name")
                and "generateContent" in (m.get("supportedGenerationMethods") or ["generateContent"])]
