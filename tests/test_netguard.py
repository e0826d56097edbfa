"""The endpoint guard (``netguard``): cloud metadata addresses are refused always, base URLs
cannot carry '?', '#' or credentials, and the pinned transport connects only to the address that
was checked (DNS rebinding), with TLS still verifying the host name. Loopback only, no network."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from byok_core import netguard
from byok_core.errors import ValidationError
from byok_core.identity import Actor

METADATA = [
    "169.254.169.254", "169.254.170.2", "192.0.0.192", "168.63.129.16", "100.100.100.200",
    "fd00:ec2::254",
    "::ffff:169.254.169.254", "::ffff:192.0.0.192", "::ffff:168.63.129.16", "::ffff:100.100.100.200",
    "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1",  # NAT64 and 6to4 forms of 169.254.169.254
]
PUBLIC_IP = "93.184.215.14"
_real_getaddrinfo = socket.getaddrinfo


def _url_for(address: str, path: str = "/v1") -> str:
    return f"http://[{address}]{path}" if ":" in address else f"http://{address}{path}"


def _info(address: str, port):
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port or 0, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))


class FakeDNS:
    """socket.getaddrinfo that answers for some names (a list of answers per lookup, the last one
    repeating) and asks the real resolver for everything else (numeric addresses included)."""

    def __init__(self, monkeypatch, **answers: list[list[str]]):
        self.answers = {name.replace("_", "."): list(a) for name, a in answers.items()}
        self.lookups: Counter[str] = Counter()
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name in self.answers:
            self.lookups[name] += 1
            queue = self.answers[name]
            addresses = queue.pop(0) if len(queue) > 1 else queue[0]
            return [_info(a, port) for a in addresses]
        return _real_getaddrinfo(host, port, *args, **kwargs)


# --- cloud metadata, always -------------------------------------------------------------------


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("address", METADATA)
def test_metadata_addresses_are_refused_even_with_private_endpoints(address, allow_private):
    with pytest.raises(ValidationError, match="metadata"):
        netguard.check_endpoint(_url_for(address), allow_private)
    with pytest.raises(ValidationError, match="metadata"):
        netguard.check_endpoint(_url_for(address), allow_private, resolve=False)
    with pytest.raises(ValidationError, match="metadata"):
        netguard.pinned_transport(_url_for(address), allow_private)


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("address", METADATA)
def test_names_resolving_to_metadata_addresses_are_refused(monkeypatch, address, allow_private):
    # One answer among several is enough to refuse: every address is checked.
    FakeDNS(monkeypatch, innocent_example=[["8.8.8.8", address]])
    with pytest.raises(ValidationError, match="metadata"):
        netguard.check_endpoint("https://innocent.example/v1", allow_private)
    with pytest.raises(ValidationError, match="metadata"):
        netguard.pinned_transport("https://innocent.example/v1", allow_private)


@pytest.mark.parametrize("host", ["metadata.google.internal", "METADATA.Google.Internal.", "metadata",
                                  "instance-data", "metadata.goog"])
def test_metadata_host_names_are_refused_without_a_lookup(monkeypatch, host):
    dns = FakeDNS(monkeypatch)
    with pytest.raises(ValidationError, match="metadata"):
        netguard.check_endpoint(f"http://{host}/computeMetadata/v1", allow_private=True)
    assert sum(dns.lookups.values()) == 0


def test_link_local_is_refused_and_private_needs_the_operator(monkeypatch):
    with pytest.raises(ValidationError, match="link-local"):
        netguard.check_endpoint("http://[fe80::1]/v1", allow_private=True)
    with pytest.raises(ValidationError, match="BYOK_ALLOW_PRIVATE_ENDPOINTS"):
        netguard.check_endpoint("http://10.0.0.5:8000/v1", allow_private=False)
    assert netguard.check_endpoint("http://10.0.0.5:8000/v1/", allow_private=True) == "http://10.0.0.5:8000/v1"
    assert netguard.check_endpoint("http://localhost:11434/v1", allow_private=True) == "http://localhost:11434/v1"
    FakeDNS(monkeypatch, api_example=[[PUBLIC_IP]])
    assert netguard.check_endpoint("https://api.example/v1", allow_private=False) == "https://api.example/v1"


# --- URL shape ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url, advice", [
    ("https://api.example/v1?", "give only the address"),
    ("https://api.example/v1?path=/admin", "give only the address"),
    ("https://api.example/v1#", "give only the address"),
    ("https://api.example/v1#/../admin", "give only the address"),
    ("https://user:hunter2@api.example/v1", "key field"),
    ("https://sk-secret@api.example/v1", "key field"),
    ("https://@api.example/v1", "key field"),
    ("https://api.example\\@evil.example/v1", "plain address"),
    ("https://api.example /v1", "plain address"),
    ("https://api.example/v1\r\nX: y", "plain address"),
    ("https://api.example:99999/v1", "check the host name and port"),
    ("ftp://api.example/v1", "https://"),
])
def test_query_fragment_and_credentials_are_refused(url, advice):
    with pytest.raises(ValidationError) as refused:
        netguard.check_endpoint(url, allow_private=True, resolve=False)
    message = str(refused.value)
    assert advice in message and message.endswith(".") and "\n" not in message
    assert "sk-secret" not in message and "hunter2" not in message


# --- DNS rebinding -----------------------------------------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.hits.append((self.path, self.headers.get("Host")))
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class LoopbackServer:
    """A real HTTP(S) server on a loopback address that records the requests it gets."""

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None):
        self.httpd = ThreadingHTTPServer((host, port), Recorder)
        self.httpd.name, self.httpd.hits, self.sni = name, [], []
        if tls is not None:
            tls.sni_callback = lambda sock, server_name, ctx: self.sni.append(server_name)
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def hits(self):
        return self.httpd.hits

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def internet(monkeypatch):
    """Stands in for the internet: a connection to PUBLIC_IP reaches a loopback server at
    127.0.0.2 on the same port; every other connection is made for real."""
    real = socket.create_connection
    connected: list[tuple[str, int]] = []

    def create_connection(address, *args, **kwargs):
        host, port = address[0], address[1]
        connected.append((host, port))
        return real(("127.0.0.2", port) if host == PUBLIC_IP else address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return connected


def test_rebinding_name_cannot_redirect_a_pinned_call_to_loopback(monkeypatch, internet):
    with LoopbackServer("attacker's target") as loopback, \
            LoopbackServer("public endpoint", host="127.0.0.2", port=loopback.port) as public:
        url = f"http://rebind.example:{loopback.port}/v1"

        # The naive way, check then let httpx resolve again, is redirected to loopback.
        FakeDNS(monkeypatch, rebind_example=[[PUBLIC_IP], ["127.0.0.1"]])
        netguard.check_endpoint(url, allow_private=False)
        with httpx.Client() as plain:
            assert plain.get(url + "/models").text == "attacker's target"
        assert len(loopback.hits) == 1

        # Pinned: one lookup, checked, and the connection goes to that address only.
        dns = FakeDNS(monkeypatch, rebind_example=[[PUBLIC_IP], ["127.0.0.1"]])
        internet.clear()
        transport = netguard.pinned_transport(url, allow_private=False)
        assert transport.url == url and transport.addresses == (PUBLIC_IP,)
        with httpx.Client(transport=transport) as client:
            for _ in range(3):
                assert client.get(transport.url + "/models").text == "public endpoint"
        assert dns.lookups["rebind.example"] == 1
        assert {host for host, _ in internet} == {PUBLIC_IP}
        assert len(loopback.hits) == 1  # still only the naive call's
        assert public.hits[0] == ("/v1/models", f"rebind.example:{loopback.port}")


def test_rebinding_to_a_refused_address_at_check_time_is_refused(monkeypatch):
    FakeDNS(monkeypatch, rebind_example=[["127.0.0.1"], [PUBLIC_IP]])
    with pytest.raises(ValidationError, match="private network"):
        netguard.pinned_transport("http://rebind.example/v1", allow_private=False)


def test_pinned_transport_refuses_any_other_host(monkeypatch, internet):
    dns = FakeDNS(monkeypatch, api_example=[[PUBLIC_IP]], other_example=[["127.0.0.1"]])
    transport = netguard.pinned_transport("https://api.example/v1", allow_private=False)
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError, match="pinned"):
        client.get("http://other.example/")
    assert dns.lookups["other.example"] == 0 and internet == []


# --- TLS keeps the host name ---------------------------------------------------------------------


def _certificate(names: list[str], ips: list[str]) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = dt.datetime.now(dt.UTC)
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_tls_verifies_the_host_name_and_sends_it_as_sni(monkeypatch, tmp_path):
    # The certificate names pinned.example AND the loopback address the connection really goes to,
    # so a client verifying against the address would accept any name; the pinned one must not.
    cert_pem, key_pem = _certificate(["pinned.example"], ["127.0.0.1"])
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    trust = ssl.create_default_context(cadata=cert_pem.decode())
    FakeDNS(monkeypatch, pinned_example=[["127.0.0.1"]], other_example=[["127.0.0.1"]])

    with LoopbackServer("tls endpoint", tls=server_tls) as server:
        transport = netguard.pinned_transport(f"https://pinned.example:{server.port}/v1", allow_private=True,
                                              verify=trust)
        with httpx.Client(transport=transport) as client:
            assert client.get(transport.url + "/models").text == "tls endpoint"
        assert server.sni == ["pinned.example"]
        assert server.hits == [("/v1/models", f"pinned.example:{server.port}")]

        other = netguard.pinned_transport(f"https://other.example:{server.port}/v1", allow_private=True, verify=trust)
        with httpx.Client(transport=other) as client, pytest.raises(httpx.ConnectError, match=r"other\.example"):
            client.get(other.url + "/models")
        assert server.hits == [("/v1/models", f"pinned.example:{server.port}")]


# --- the calls themselves use the pinned transport ---------------------------------------------------


def test_a_chat_to_a_user_endpoint_cannot_be_rebound_to_loopback(environ, monkeypatch, internet):
    """The endpoint check passes on a public answer; a later answer points at loopback. The call
    connects only to an address it checked itself, so the key never reaches the loopback server."""
    from callhelpers import runtime_with, usage_rows
    from fakeproviders import FakeProvider

    from byok_core import accounts, keys
    from byok_core.chat import ChatMessage, stream_chat
    from byok_core.identity import Owner
    from byok_core.providers import Provider

    key = "sk-fake.rebind-0123456789abcdef9999"
    with FakeProvider(Provider.OPENAI_COMPATIBLE) as target, runtime_with(environ) as rt:
        port = target.base_url.split(":")[2].split("/")[0]
        alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
        keys.store(rt, Actor.of(alice), Owner.user(alice.id), Provider.OPENAI_COMPATIBLE, key,
                   base_url=f"http://rebind.example:{port}/v1")
        dns = FakeDNS(monkeypatch, rebind_example=[[PUBLIC_IP], ["127.0.0.1"]])
        stream = stream_chat(rt, user_id=alice.id, provider=Provider.OPENAI_COMPATIBLE, model="llama",
                             messages=[ChatMessage("user", "hi")])
        assert list(stream) == [] and stream.result is not None
        # one lookup, checked, pinned: the call went to the public address it checked (where nothing
        # listens here) and never to the loopback address the name pointed at afterwards
        assert target.requests == [] and dns.lookups["rebind.example"] == 1
        assert {host for host, _ in internet} == {PUBLIC_IP}
        assert [(r.status, r.cost_usd) for r in usage_rows(rt)] == [("provider_down", 0.0)]
