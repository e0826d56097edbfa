"""Checks on user-typed endpoint URLs (``openai-compatible``): no cloud metadata or link-local
targets ever, and no loopback or private networks unless the operator allows them."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from byok_core.errors import ValidationError

_METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}
ALLOW_HINT = "set BYOK_ALLOW_PRIVATE_ENDPOINTS=1 on the server to allow local endpoints such as Ollama"


def check_url_syntax(url: str) -> str:
    """A normalized http(s) URL without credentials, or ValidationError."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValidationError("The base URL must start with http:// or https:// and name a host, e.g. https://openrouter.ai/api/v1.")
    if parts.username or parts.password:
        raise ValidationError("Put the key in the key field, not in the base URL.")
    if len(url) > 500:
        raise ValidationError("The base URL is longer than 500 characters.")
    return url


def check_endpoint(url: str, allow_private: bool, *, resolve: bool = True) -> str:
    """Refuse link-local/metadata targets always, loopback/private ones unless ``allow_private``.

    With ``resolve`` every address the host name resolves to is checked, so a public-looking name
    that points at 169.254.169.254 is refused as well."""
    url = check_url_syntax(url)
    host = urlsplit(url).hostname or ""
    if host.lower() in _METADATA_HOSTS:
        raise ValidationError("That base URL points at a cloud metadata service, which is never allowed.")
    for address in _addresses(host, resolve):
        _check_address(address, allow_private)
    return url


def _addresses(host: str, resolve: bool) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise ValidationError(f"The host {host!r} in the base URL cannot be found; check the spelling.") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def _check_address(address, allow_private: bool) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_link_local or address.is_multicast or address.is_unspecified or address.is_reserved:
        raise ValidationError("That base URL points at a link-local or reserved address, which is never allowed.")
    if not address.is_global and not allow_private:
        raise ValidationError(f"That base URL points at a local or private network address; {ALLOW_HINT}.")
