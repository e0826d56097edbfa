"""Azure OpenAI: what a connection to a resource stores, and where its calls go.

A resource's endpoint (``https://RESOURCE.openai.azure.com``, as the portal's "Keys and Endpoint"
shows it) plus an API version make the connection's base URL: the v1 API (the default, no version
to pick) at ``…/openai/v1``, or a dated API version at ``…/openai?api-version=2024-10-21``, whose
chat goes to ``/openai/deployments/{deployment}/chat/completions``. The deployment is the model a
chat names. Keys go in the ``api-key`` header."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlsplit

from byok_core.errors import ValidationError

V1 = "v1"
API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
_VERSION_QUERY = "?api-version="
# the hosts of Azure OpenAI and Azure AI Foundry resources (genai-prices' "azure" pattern)
HOSTS = re.compile(r"[^/]+\.(openai\.azure\.com|cognitiveservices\.azure\.com|services\.ai\.azure\.com)")


def is_azure_host(base_url: str) -> bool:
    return bool(HOSTS.fullmatch(urlsplit(base_url).hostname or ""))


def base_url(endpoint: str, api_version: str = "") -> str:
    """The base URL an Azure connection keeps, from the resource's endpoint and an API version ("" or
    "v1": the v1 API). The endpoint may be pasted whole from the portal (a deployment's target URI):
    only its scheme and host are kept, and its ``api-version`` is taken when none is given."""
    endpoint = (endpoint or "").strip()
    parts = urlsplit(endpoint)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValidationError("Type the resource's endpoint as the Azure portal shows it, e.g. "
                              "https://my-resource.openai.azure.com.")
    version = (api_version or "").strip().lower() or next(iter(parse_qs(parts.query).get("api-version", [])), V1)
    root = f"{parts.scheme}://{parts.netloc}/openai"
    if version == V1:
        return f"{root}/v1"
    if not API_VERSION.fullmatch(version):
        raise ValidationError(f"The API version {version!r} is not one Azure has: leave it as v1, or type a dated "
                              "version such as 2024-10-21 (or 2025-04-01-preview).")
    return f"{root}{_VERSION_QUERY}{version}"


def split(base_url: str) -> tuple[str, str | None]:
    """The API root and the dated API version (None: the v1 API)."""
    root, _, version = base_url.partition(_VERSION_QUERY)
    return root, version or None


def chat_url(base_url: str, deployment: str) -> str:
    root, version = split(base_url)
    if version is None:
        return f"{root}/chat/completions"
    return f"{root}/deployments/{quote(deployment, safe='')}/chat/completions{_VERSION_QUERY}{version}"


def models_url(base_url: str) -> str:
    root, version = split(base_url)
    return f"{root}/models" + (f"{_VERSION_QUERY}{version}" if version else "")
