"""The process-wide HTTP client (``adapters.base.shared_client``) keeps provider connections alive;
tests/conftest.py closes it after every test, so a test never reaches the previous test's server
on a port the system has handed out again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from byok_core.adapters.base import close_shared_clients, shared_client


@contextmanager
def answering(port: int, name: str) -> Iterator[None]:
    """An HTTP/1.1 server on ``port`` that answers ``name``; stopping it leaves open connections to
    their threads, as tests/fakeproviders.py does (only the listening socket closes)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(name)))
            self.end_headers()
            self.wfile.write(name.encode())

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def port() -> int:
    """One port for both tests below, as a system that reuses ports soon would hand out."""
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        return int(probe.server_address[1])


@pytest.mark.parametrize("name", ["first server", "second server"])
def test_each_test_reaches_its_own_server_on_a_reused_port(port, name):
    with answering(port, name):
        assert shared_client(5.0, 5.0).get(f"http://127.0.0.1:{port}/").text == name


def test_closing_the_shared_clients_makes_new_ones():
    before = shared_client(5.0, 5.0)
    assert shared_client(5.0, 5.0) is before  # shared while open
    close_shared_clients()
    assert before.is_closed
    assert shared_client(5.0, 5.0) is not before
