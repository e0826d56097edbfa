"""Provider answers translated into the app's errors, once, for every adapter.

Messages are one plain sentence that says what to do; provider text in them is scrubbed of the
key first, and the key itself appears only as its mask."""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from byok_core.credential import Credential
from byok_core.errors import (
    KeyRejected,
    ModelNotFound,
    ProviderDown,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestRejected,
)
from byok_core.secret import Secret

_SHOWN = 4  # a mask shows at most the last 4 characters of a key

_KEY_CODES = {"invalid_api_key", "authentication_error", "permission_error", "api_key_invalid", "permission_denied",
              "unauthenticated", "subscription_token_invalid", "invalid_subscription_token"}
_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "billing_error"}
_RATE_CODES = {"rate_limit_error", "rate_limit_exceeded", "resource_exhausted", "rate_limited"}
_MODEL_CODES = {"model_not_found", "not_found_error"}
_DEPLOYMENT_CODES = {"deploymentnotfound"}  # Azure OpenAI: no deployment of that name in the resource
_FILTER_CODES = {"content_filter", "responsibleaipolicyviolation"}  # Azure's content filter refused the prompt
_DOWN_CODES = {"overloaded_error", "api_error", "server_error", "unavailable", "internal"}
_FILE_REFUSED = {400, 413, 415, 422}  # a request with files refused as bad: the files, most likely
_QUOTA_STATUS = {402, 432, 433}  # payment required; Tavily's plan and pay-as-you-go limits


def scrub(text: str, secret: Secret | None, limit: int = 200) -> str:
    """Provider text safe to show: the key, and any piece of it longer than a mask's tail, replaced.

    Providers sometimes echo the key (or a long part of it) back in an error body."""
    text = " ".join(str(text).split())[:2000]
    value = secret.reveal() if secret is not None else ""
    if secret is not None and value:
        text = text.replace(value, secret.mask)
        out, i = [], 0
        while i < len(text):
            j = i
            while j < len(text) and text[i:j + 1] in value:
                j += 1
            if j - i > _SHOWN:
                out.append("…")
                i = j
            else:
                out.append(text[i])
                i += 1
        text = "".join(out)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_RETRY_HINT = re.compile(r"[^.;]*\btry again in\s+(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|sec|seconds?)\b[^.;]*[.;]?\s*",
                         re.IGNORECASE)


def _raw_reason(body: Any) -> str:
    """The upstream provider's own reason that a gateway passes on (OpenRouter: error.metadata.raw)."""
    error = body.get("error") if isinstance(body, dict) else None
    metadata = error.get("metadata") if isinstance(error, dict) else None
    raw = metadata.get("raw") if isinstance(metadata, dict) else None
    if isinstance(raw, dict | list):
        return _error_info(raw)[1]
    if isinstance(raw, str) and raw.strip():
        try:
            return _error_info(json.loads(raw))[1] or raw
        except ValueError:
            return raw
    return ""


def _error_info(body: Any) -> tuple[set[str], str]:
    """Error codes (lower-cased) and the first human message found in a provider's error body."""
    codes: set[str] = set()
    messages: list[str] = []

    def walk(node: Any, depth: int) -> None:
        if depth > 4:
            return
        if isinstance(node, dict):
            for name, value in node.items():
                if isinstance(value, str) and name in {"type", "code", "status", "reason"}:
                    codes.add(value.lower())
                elif isinstance(value, str) and name in {"message", "detail", "error", "description"}:
                    messages.append(value)
                else:
                    walk(value, depth + 1)
        elif isinstance(node, list):
            for value in node[:5]:
                walk(value, depth + 1)

    if isinstance(body, str):
        if body.strip() and not body.lstrip().startswith("<"):  # skip HTML error pages
            messages.append(body)
    else:
        walk(body, 0)
    raw = _raw_reason(body)
    return codes, raw or (messages[0] if messages else "")


def _split_retry_hint(detail: str) -> tuple[str, float | None]:
    """The provider's text without its own "try again in N s" sentence, and those seconds: the
    message then gives one retry hint, the app's."""
    match = _RETRY_HINT.search(detail)
    if match is None:
        return detail, None
    seconds = float(match.group(1)) / (1000 if match.group(2).lower().startswith("m") else 1)
    return (detail[:match.start()] + detail[match.end():]).strip(), seconds


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), or None."""
    value = (headers or {}).get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def provider_error(label: str, cred: Credential, *, status: int | None, body: Any,
                   headers: Mapping[str, str] | None = None, model: str = "", attached: str = "") -> ProviderError:
    """The app's error for a provider's error status and/or body (an HTTP error or an error event).
    ``attached``: what files the request carried ("images", "a PDF"); a request with files that is
    refused as bad (400, 413, 415, 422) is told as the model or endpoint not taking them."""
    error = _provider_error(label, cred, status=status, body=body, headers=headers, model=model, attached=attached)
    error.refused = status is not None  # an HTTP error answer: the provider refused the request, nothing billed
    return error


def _provider_error(label: str, cred: Credential, *, status: int | None, body: Any,
                    headers: Mapping[str, str] | None, model: str, attached: str = "") -> ProviderError:
    codes, detail = _error_info(body)
    detail, hinted = _split_retry_hint(scrub(detail, cred.secret, limit=400))
    detail = scrub(detail, None)  # shortened again, now that the hint is out
    said = f" ({label} said: {detail})" if detail else ""
    key = f"the key {cred.mask}"
    if codes & _QUOTA_CODES or status in _QUOTA_STATUS:
        return RateLimited(f"{label} says {key} has no quota or credit left{said}; "
                           "add credit with the provider or use another key.", quota=True)
    if status in (401, 403) or codes & _KEY_CODES:
        return KeyRejected(f"{label} rejected {key}{said}; check it or save a new one on the Keys page.")
    if status == 429 or codes & _RATE_CODES:
        seconds = retry_after(headers)
        seconds = hinted if seconds is None else seconds
        when = ("wait a minute and try again" if seconds is None
                else f"try again in {max(1, round(seconds))} seconds")
        return RateLimited(f"{label} is rate-limiting {key}{said}; {when}.", retry_after=seconds)
    if codes & _FILTER_CODES:
        return RequestRejected(f"{label}'s content filter blocked this prompt{said}; nothing was written. Rephrase "
                               "the request and try again.")
    if codes & _DEPLOYMENT_CODES:
        return ModelNotFound(f"{label} has no deployment named {model!r}{said}; type the name of one of your "
                             "resource's deployments (Azure AI Foundry, Deployments) as the model.")
    if model and (status == 404 or codes & _MODEL_CODES):
        return ModelNotFound(f"{label} does not offer the model {model!r}{said}; pick another model.")
    if (status or 0) >= 500 or codes & _DOWN_CODES:
        return ProviderDown(f"{label} is overloaded or having trouble right now{said}; try again in a minute.")
    if status == 404:
        return RequestRejected(f"{label} has nothing at that address{said}; check the base URL.")
    if attached and status in _FILE_REFUSED:
        what = f"the model {model!r}" if model else "this endpoint"
        return RequestRejected(f"{label} did not accept {attached} attached to this conversation{said}: {what} may not "
                               "read them, or not files this large. Pick a model that reads images and PDFs, or "
                               "start a new chat without the files.")
    return RequestRejected(f"{label} refused the request{said}; check the model and the input.")


def transport_error(label: str, exc: httpx.TransportError) -> ProviderError:
    """The app's error for a connection that failed or timed out."""
    error: ProviderError
    if isinstance(exc, httpx.TimeoutException):
        phase = "connect" if isinstance(exc, httpx.ConnectTimeout) else "answer"
        error = ProviderTimeout(f"{label} did not {phase} in time; try again in a moment.")
    elif isinstance(exc, httpx.ConnectError):
        error = ProviderDown(f"Could not connect to {label}; check the network or the base URL and try again.")
    else:
        error = ProviderDown(f"The connection to {label} failed ({type(exc).__name__}); try again in a moment.")
    error.refused = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)  # nothing reached the provider
    return error
