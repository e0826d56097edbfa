"""OpenAI Chat Completions, and any OpenAI-compatible endpoint (OpenRouter, Groq, Ollama, vLLM, ...),
Azure OpenAI's among them (``AzureOpenAI``: its address and ``api-key`` header).

Streams with ``stream_options.include_usage``: the last JSON chunk carries only the usage, then
``data: [DONE]`` ends the stream. Key test: GET /models (free).

Shapes read (each replayed from a real recording in tests/recordings): ``delta.content`` as a string,
or as a list of typed parts (Mistral's Magistral: ``thinking`` parts, then ``text`` parts; only text
is the reply); ``delta.refusal`` (OpenAI: the refusal's text, with ``content: null``, becomes the
reply); ``delta.reasoning`` / ``reasoning_content`` (never shown); ``delta.tool_calls``; the usage
in ``usage`` or, from Groq, only in ``x_groq.usage``; OpenRouter's billed ``usage.cost`` (asked for with
``usage: {include: true}`` when the credential says so); ``finish_reason`` ``length`` (the output
cap), ``content_filter`` and ``tool_calls``.

Parameters: the system prompt is the first message (role ``system``); ``temperature``; the output
cap in ``max_completion_tokens`` (compatible endpoints: ``max_tokens``); ``reasoning_effort`` only to
OpenAI's reasoning models (o1, o3, o4-mini, gpt-5: ``REASONING_MODELS``), which take no temperature,
so none is sent to them. OpenAI-compatible endpoints get no reasoning effort: what their models
take is not known."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from byok_core import azure
from byok_core.adapters.base import DEFAULT_PARAMS, ChatAdapter, ChatMessage, ChatParams, Reply, Stop
from byok_core.adapters.files import openai_content
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

    def chat_request(self, cred: Credential, model: str, messages: list[ChatMessage],
                     params: ChatParams = DEFAULT_PARAMS) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": model,
            # the system prompt first
            "messages": [{"role": m.role, "content": openai_content(m.content, m.files)} for m in messages],
            self.cap_field: self.output_cap(params),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.temperature is not None and self.takes_temperature(model, params):
            body["temperature"] = float(params.temperature)
        if params.reasoning_effort is not None and self.reasoning_field(model):
            body["reasoning_effort"] = params.reasoning_effort.value
        if cred.usage_accounting:  # OpenRouter: the billed cost with the usage
            body["usage"] = {"include": True}
        return f"{cred.base_url}/chat/completions", body

    def reasoning_field(self, model: str) -> str | None:
        return "reasoning_effort" if REASONING_MODELS.match(model) else None

    def takes_temperature(self, model: str, params: ChatParams = DEFAULT_PARAMS) -> bool:
        return not REASONING_MODELS.match(model)  # they refuse any temperature but their own

    def on_event(self, event: str, data: dict[str, Any], reply: Reply) -> str | None:
        usage = data.get("usage")
        if isinstance(usage, dict):  # the last chunk (stream_options.include_usage)
            reply.usage_object = {"usage": usage}
            cost = usage.get("cost")  # OpenRouter's billed USD, with usage accounting on
            if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
                reply.reported_cost = float(cost)
        elif reply.usage_object is None and "x_groq" in data:
            groq = data["x_groq"].get("usage") if isinstance(data["x_groq"], dict) else None
            if isinstance(groq, dict):  # Groq: only there, in the finishing chunk
                reply.usage_object = {"usage": groq}
        if data.get("model") and isinstance(data["model"], str):
            reply.served_model = data["model"]
        choices = data.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            return None
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = {}
        if choice.get("finish_reason"):
            reply.stop_reason = str(choice["finish_reason"])
            reply.stop = _STOPS.get(reply.stop_reason, reply.stop)
        content = delta.get("content")
        if type(content) is str and len(delta) == 1:  # the common chunk: text and nothing else
            return content or None
        return self._other(delta, content, reply)

    def _other(self, delta: dict[str, Any], content: Any, reply: Reply) -> str | None:
        """A delta that is not just text: reasoning, tool calls, a refusal, content parts."""
        if delta.get("reasoning") or delta.get("reasoning_content"):
            reply.thought = True
        for call in delta.get("tool_calls") or ():
            name = (call.get("function") or {}).get("name") if isinstance(call, dict) else None
            if name:
                reply.tools.append(str(name))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            reply.stop = Stop.REFUSAL
            return refusal
        return _text(content, reply)

    def models_url(self, cred: Credential) -> str:
        return f"{cred.base_url}/models"

    def parse_models(self, body: Any) -> list[str]:
        return [m["id"] for m in body.get("data", []) if isinstance(m, dict) and m.get("id")]


# OpenAI's reasoning models, which take reasoning_effort (o1-mini, o1-preview and gpt-5's chat model do not)
REASONING_MODELS = re.compile(r"(?!o1-mini|o1-preview|gpt-5[.\d]*-chat)(o[1-9]|gpt-5)(\b|[-.])")
_STOPS = {"length": Stop.OUTPUT_CAP, "content_filter": Stop.SAFETY, "tool_calls": Stop.TOOL_CALL}


def _text(content: Any, reply: Reply) -> str | None:
    """The reply text of ``delta.content``: a string, or a list of typed parts (Mistral), of which
    only ``text`` parts are the answer; ``thinking`` parts are the model's reasoning, never shown."""
    if isinstance(content, str):
        return content or None
    if not isinstance(content, list):
        return None
    text = []
    for part in content:
        if isinstance(part, str):
            text.append(part)
        elif isinstance(part, dict):
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                text.append(part["text"])
            elif part.get("type") == "thinking":
                reply.thought = True
    return "".join(text) or None


class OpenAICompatibleAdapter(OpenAIAdapter):
    """The same wire format at the key owner's own base URL; no default model or static list."""

    provider = Provider.OPENAI_COMPATIBLE
    default_model = None
    fallback_models = ()
    cap_field = "max_tokens"  # the name compatible servers (Ollama, vLLM, Groq, OpenRouter) all accept

    def reasoning_field(self, model: str) -> str | None:
        return None  # what a compatible endpoint's model takes is not known: no effort is sent

    def takes_temperature(self, model: str, params: ChatParams = DEFAULT_PARAMS) -> bool:
        return True

    # an Azure OpenAI connection's calls are made as ``AzureOpenAI`` makes them
    def label(self, cred: Credential) -> str:
        return _AZURE.label(cred) if cred.azure else super().label(cred)

    def headers(self, cred: Credential) -> dict[str, str]:
        return _AZURE.headers(cred) if cred.azure else super().headers(cred)

    def chat_request(self, cred: Credential, model: str, messages: list[ChatMessage],
                     params: ChatParams = DEFAULT_PARAMS) -> tuple[str, dict[str, Any]]:
        if cred.azure:
            return _AZURE.chat_request(cred, model, messages, params)
        return super().chat_request(cred, model, messages, params)

    def models_url(self, cred: Credential) -> str:
        return _AZURE.models_url(cred) if cred.azure else super().models_url(cred)


class AzureOpenAI(OpenAIAdapter):
    """OpenAI's wire format at an Azure OpenAI resource (``byok_core.azure``): the key in the
    ``api-key`` header, the deployment as the model, the v1 API or a dated API version's address.
    Its deployments run OpenAI's models, so parameters go as to OpenAI (by the deployment's name)."""

    provider = Provider.OPENAI_COMPATIBLE  # Azure connections are OpenAI-compatible connections
    default_model = None
    fallback_models = ()

    def label(self, cred: Credential) -> str:
        return "Azure OpenAI"

    def headers(self, cred: Credential) -> dict[str, str]:
        return {"api-key": cred.secret.reveal()}

    def chat_request(self, cred: Credential, model: str, messages: list[ChatMessage],
                     params: ChatParams = DEFAULT_PARAMS) -> tuple[str, dict[str, Any]]:
        body = super().chat_request(cred, model, messages, params)[1]
        return azure.chat_url(cred.base_url, model), body

    def models_url(self, cred: Credential) -> str:
        return azure.models_url(cred.base_url)


_AZURE = AzureOpenAI()
