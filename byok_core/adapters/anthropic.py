"""Anthropic Messages API.

Events: message_start (input tokens), content_block_start, content_block_delta (text_delta),
content_block_stop, message_delta (output tokens), message_stop (the end marker), ping, error.
Key test: GET /v1/models (free).

Only ``text_delta`` is the reply: ``thinking`` / ``redacted_thinking`` blocks, ``signature_delta``,
``citations_delta`` (the cited text also arrives as text) and tool input (``input_json_delta``) are
not. ``message_delta.delta.stop_reason`` says how it ended: ``max_tokens`` (the output cap),
``refusal``, ``tool_use``.

Parameters: the system prompt in ``system``; ``temperature`` (Anthropic takes 0 to 1: more is sent
as 1); the output cap in ``max_tokens``; a reasoning effort as extended thinking,
``thinking: {type: enabled, budget_tokens}``, only to the models that think (``THINKING_MODELS``):
the budget is the effort's share of the output cap (``EFFORT_SHARE``), at least Anthropic's minimum
of 1,024 and below the cap (with a cap of 1,024 or less, no thinking is asked for). Thinking takes
no temperature, so none is sent with it."""

from __future__ import annotations

import re
from typing import Any

from byok_core.adapters.base import DEFAULT_PARAMS, ChatAdapter, ChatMessage, ChatParams, Reply, Stop, split_system
from byok_core.adapters.files import anthropic_content
from byok_core.credential import Credential
from byok_core.providers import Provider

API_VERSION = "2023-06-01"
THINKING_MODELS = re.compile(r"claude-(3-7-sonnet|(sonnet|opus|haiku)-4)")  # extended thinking
MIN_THINKING = 1024  # Anthropic's least budget_tokens
_STOPS = {"max_tokens": Stop.OUTPUT_CAP, "refusal": Stop.REFUSAL, "tool_use": Stop.TOOL_CALL}


class AnthropicAdapter(ChatAdapter):
    provider = Provider.ANTHROPIC
    usage_provider = "anthropic"
    default_model = "claude-haiku-4-5"
    fallback_models = ("claude-haiku-4-5", "claude-opus-4-1", "claude-sonnet-4-5", "claude-3-5-haiku-latest")
    max_output_tokens = 4096  # what every Claude model accepts (Claude 3 Haiku's maximum)

    def headers(self, cred: Credential) -> dict[str, str]:
        return {"x-api-key": cred.secret.reveal(), "anthropic-version": API_VERSION}

    def chat_request(self, cred: Credential, model: str, messages: list[ChatMessage],
                     params: ChatParams = DEFAULT_PARAMS) -> tuple[str, dict[str, Any]]:
        system, rest = split_system(messages)
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": self.output_cap(params),
            "messages": [{"role": m.role, "content": anthropic_content(m.content, m.files)} for m in rest],
            "stream": True,
        }
        if system:
            body["system"] = system
        thinking = self._thinking(model, params)
        if thinking is not None:
            body["thinking"] = {"type": "enabled", "budget_tokens": thinking}
        elif params.temperature is not None:
            body["temperature"] = min(float(params.temperature), 1.0)
        return f"{cred.base_url}/v1/messages", body

    def _thinking(self, model: str, params: ChatParams) -> int | None:
        return self.thinking_budget(params, MIN_THINKING) if self.reasoning_field(model) else None

    def reasoning_field(self, model: str) -> str | None:
        return "thinking.budget_tokens" if THINKING_MODELS.match(model) else None

    def takes_temperature(self, model: str, params: ChatParams = DEFAULT_PARAMS) -> bool:
        return self._thinking(model, params) is None

    def on_event(self, event: str, data: dict[str, Any], reply: Reply) -> str | None:
        kind = data.get("type") or event
        if kind == "message_start":
            usage = (data.get("message") or {}).get("usage")
            if isinstance(usage, dict):
                reply.usage_object = {"usage": dict(usage)}
        elif kind == "message_delta":
            if isinstance(data.get("usage"), dict):
                # cumulative: the final figures overwrite message_start's, which keeps what is not repeated
                merged = reply.usage_object["usage"] if reply.usage_object else {}
                merged.update({k: v for k, v in data["usage"].items() if v is not None})
                reply.usage_object = {"usage": merged}
            stop_reason = (data.get("delta") or {}).get("stop_reason")
            if stop_reason:
                reply.stop_reason = str(stop_reason)
                reply.stop = _STOPS.get(reply.stop_reason)
        elif kind == "message_stop":
            reply.complete = True
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") in ("thinking", "redacted_thinking"):
                reply.thought = True
            elif block.get("type") == "tool_use" and block.get("name"):  # a client tool (not a server one)
                reply.tools.append(str(block["name"]))
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                return delta["text"] or None
        return None

    def models_url(self, cred: Credential) -> str:
        return f"{cred.base_url}/v1/models?limit=1000"

    def parse_models(self, body: Any) -> list[str]:
        return [m["id"] for m in body.get("data", []) if isinstance(m, dict) and m.get("id")]
