"""Checks on user-typed endpoint URLs (``openai-compatible``): no cloud metadata or link-local
targets ever, no loopback or private networks unless the operator allows them, and a transport
that connects only to the addresses that were checked.

``check_endpoint`` checks a URL (resolving its host name). ``pinned_transport`` does the same
and returns an httpx transport whose connections go to the checked addresses and nowhere else,
so a name that resolves to a public address for the check and to 169.254.169.254 a moment later
(DNS rebinding) cannot redirect the call. TLS still verifies the certificate against the host
name in the URL, and the Host header and SNI carry that name."""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from byok_core.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_HINT = "set BYOK_ALLOW_PRIVATE_ENDPOINTS=1 on the server to allow local endpoints such as Ollama"

# Documented cloud metadata / instance-credential host names, refused before any DNS lookup.
_METADATA_HOSTS = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog",  # Google Cloud
    "instance-data", "instance-data.ec2.internal",  # AWS
    "metadata.azure.com", "metadata.azure.internal",  # Azure
    "metadata.tencentyun.com",  # Tencent Cloud
    "metadata.platformequinix.com",  # Equinix Metal
})

# Documented cloud metadata addresses, refused always, even with private endpoints allowed.
_METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack, ... instance metadata
    "169.254.170.2",  # AWS ECS task metadata and credentials
    "169.254.170.23",  # AWS EKS Pod Identity agent
    "fd00:ec2::254",  # AWS instance metadata over IPv6
    "fd00:ec2::23",  # AWS EKS Pod Identity agent over IPv6
    "192.0.0.192",  # Oracle Cloud metadata (legacy address)
    "168.63.129.16",  # Azure WireServer
    "100.100.100.200",  # Alibaba Cloud metadata
    "169.254.0.23",  # Tencent Cloud metadata
))

# Link-local, unspecified and multicast ranges: never a legitimate API endpoint.
_NEVER_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32", "::/128", "fe80::/10", "ff00::/8",
))

# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, RFC 6052 and 8215).
_NAT64_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d form


@dataclass(frozen=True)
class Subject:
    """What the checked URL is, as its messages name it: a key's base URL or the alerts' webhook."""

    name: str  # "base URL"
    example: str  # one that would pass
    userinfo: str  # where a user name or password goes instead


BASE_URL = Subject("base URL", "https://openrouter.ai/api/v1", "put the key in the key field instead")
WEBHOOK = Subject("webhook URL", "https://hooks.slack.com/services/…",
                  "the address your chat tool gives for its incoming webhook has none")


# the one query a base URL may carry: an Azure OpenAI connection's dated API version (``azure``)
_AZURE_VERSION = re.compile(r"/openai\?api-version=\d{4}-\d{2}-\d{2}(-preview)?$")


def check_url_syntax(url: str, subject: Subject = BASE_URL) -> str:
    """A normalized http(s) URL without credentials, query or fragment (a base URL: but for
    ``/openai?api-version=DATE``, Azure's), or ValidationError naming ``subject``."""
    url = (url or "").strip().rstrip("/")
    what = subject.name
    if len(url) > 500:
        raise ValidationError(f"The {what} is longer than 500 characters.")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 or c == "\\" for c in url):
        raise ValidationError(f"The {what} cannot contain spaces, backslashes or control characters; type it as "
                              "one plain address.")
    if "#" in url or ("?" in url and not (subject is BASE_URL and _AZURE_VERSION.search(url))):
        raise ValidationError(f"The {what} cannot contain '?' or '#'; give only the address up to its path, "
                              f"e.g. {subject.example}.")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValidationError(f"The {what} must start with http:// or https:// and name a host, "
                              f"e.g. {subject.example}.")
    if "@" in parts.netloc:
        raise ValidationError(f"The {what} cannot contain a user name, password or '@'; {subject.userinfo}.")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        host = _host_of(httpx.URL(url))  # read by the parser that will send the request
    except (httpx.InvalidURL, ValueError, UnicodeError):
        host = ""
    if not host:
        raise ValidationError(f"The {what} is not a valid address; check the host name and port.")
    return url


def check_endpoint(url: str, allow_private: bool, *, resolve: bool = True, subject: Subject = BASE_URL) -> str:
    """Refuse metadata and link-local targets always, loopback/private ones unless ``allow_private``.

    With ``resolve`` every address the host name resolves to is checked, so a public-looking name
    that points at 169.254.169.254 is refused as well. Returns the normalized URL. The check alone
    does not stop DNS rebinding (the HTTP client resolves again); connect with
    ``pinned_transport`` for that."""
    url, _host, _addresses = _checked(url, allow_private, resolve=resolve, subject=subject)
    return url


class PinnedTransport(httpx.HTTPTransport):
    """An httpx transport that connects to ``host`` only, and only at the checked ``addresses``.

    ``url`` is the checked, normalized base URL. Requests keep the host name: it is sent in the
    Host header and as TLS SNI, and the certificate is verified against it. A request for any
    other host fails with ``httpx.ConnectError`` without connecting anywhere."""

    def __init__(self, url: str, host: str, addresses: Iterable[IPAddress], *,
                 verify: ssl.SSLContext | bool = True, limits: httpx.Limits | None = None) -> None:
        self.url, self.host, self.addresses = url, host, tuple(str(a) for a in addresses)
        limits = limits or httpx.Limits(max_connections=10, max_keepalive_connections=5)
        ssl_context = _default_ssl_context() if verify is True else httpx.create_ssl_context(verify=verify)
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # httpx builds its connection pool without a way to pass a network backend; rebuild it
        # with the same settings and the pinning backend (httpcore's public NetworkBackend seam).
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            http1=True, http2=False, network_backend=_PinnedBackend(host, self.addresses),
        )

    def __repr__(self) -> str:
        return f"PinnedTransport({self.host!r} -> {', '.join(self.addresses)})"


def pinned_transport(url: str, allow_private: bool, *, verify: ssl.SSLContext | bool = True,
                     subject: Subject = BASE_URL) -> PinnedTransport:
    """Check ``url`` like ``check_endpoint`` (resolving its host once and checking every address)
    and return a transport that connects only to those checked addresses.

    Use it for every call to a URL a user typed in::

        transport = netguard.pinned_transport(base_url, allow_private)
        with httpx.Client(transport=transport) as client:
            client.get(transport.url + "/models")

    ``transport.url`` is the normalized URL that was checked. Raises ValidationError with a
    one-sentence reason when the URL or any address it resolves to is not allowed."""
    url, host, addresses = _checked(url, allow_private, resolve=True, subject=subject)
    return PinnedTransport(url, host, addresses, verify=verify)


# --- internals -----------------------------------------------------------------------------


def _host_of(url: httpx.URL) -> str:
    """The host exactly as httpx will connect to it (IDNA-encoded, IPv6 without brackets)."""
    return url.raw_host.decode("ascii").rstrip(".").lower()


def _checked(url: str, allow_private: bool, *, resolve: bool,
             subject: Subject) -> tuple[str, str, list[IPAddress]]:
    url = check_url_syntax(url, subject)
    host = _host_of(httpx.URL(url))
    if host in _METADATA_HOSTS:
        raise ValidationError(f"That {subject.name} points at a cloud metadata service, which is never allowed.")
    addresses = _addresses(host, resolve, subject)
    for address in addresses:
        _check_address(address, allow_private, subject)
    return url, host, addresses


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def _addresses(host: str, resolve: bool, subject: Subject) -> list[IPAddress]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    if host == "localhost" or host.endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise ValidationError(f"The host {host} in the {subject.name} cannot be found; check the spelling.") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ValidationError(f"The host {host} in the {subject.name} cannot be found; check the spelling.")
    return addresses


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, NAT64, 6to4, Teredo, IPv4-compatible)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo:
        found.extend(address.teredo)
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in net for net in _NAT64_NETWORKS) or (address in _IPV4_COMPATIBLE and int(address) > 1):
        found.append(low32)
    return found


def _check_address(address: IPAddress, allow_private: bool, subject: Subject) -> None:
    """Every address, and every IPv4 address an IPv6 one carries, passes the same rules."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    candidates = [address, *_embedded_ipv4(address)]
    if any(candidate in _METADATA_ADDRESSES for candidate in candidates):
        raise ValidationError(f"That {subject.name} points at a cloud metadata service, which is never allowed.")
    for candidate in candidates:
        if (any(candidate in net for net in _NEVER_NETWORKS if net.version == candidate.version)
                or candidate.is_link_local or candidate.is_multicast or candidate.is_unspecified
                or candidate.is_reserved):
            raise ValidationError(f"That {subject.name} points at a link-local or reserved address, which is never "
                                  "allowed.")
        if not candidate.is_global and not allow_private:
            raise ValidationError(f"That {subject.name} points at a local or private network address; {ALLOW_HINT}.")


@functools.lru_cache(maxsize=1)
def _default_ssl_context() -> ssl.SSLContext:
    """One verifying context for every pinned transport (building one costs tens of milliseconds)."""
    return httpx.create_ssl_context()


class _PinnedBackend(httpcore.SyncBackend):
    """Opens TCP connections for ``host`` to the pinned addresses only; refuses any other host.

    httpcore asks the backend for a TCP stream by host name and then starts TLS on it with the
    request's host name as ``server_hostname``, so swapping the address here keeps SNI and
    certificate checks on the name."""

    def __init__(self, host: str, addresses: tuple[str, ...]) -> None:
        self._host, self._addresses = host, addresses

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        if host.strip("[]").rstrip(".").lower() != self._host:
            raise httpcore.ConnectError(f"This connection is pinned to {self._host}; {host} was not checked.")
        last: Exception | None = None
        for address in self._addresses:  # numeric addresses: no DNS lookup happens here
            try:
                return super().connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                           socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None  # there is always at least one address
        raise last
