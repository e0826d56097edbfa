"""A loopback HTTP server that answers every request with one recorded provider response (the bytes
of tests/recordings/*, with the recorded status and headers), and keeps the requests it got."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORDINGS = Path(__file__).resolve().parent / "recordings"
MANIFEST = json.loads((RECORDINGS / "MANIFEST.json").read_text())


@dataclass(frozen=True)
class Recording:
    """One manifest entry: the response and what genai-prices reads from its usage object."""

    entry: dict[str, Any]

    @property
    def body(self) -> bytes:
        return (RECORDINGS / self.entry["file"]).read_bytes()

    def __str__(self) -> str:
        return self.entry["file"]


def recordings(*providers: str) -> list[Recording]:
    return [Recording(e) for e in MANIFEST["files"] if e["provider"] in providers]


class ReplayServer:
    def __init__(self, recording: Recording):
        self.recording = recording
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []  # method, path, headers, JSON body

    def __enter__(self) -> ReplayServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                server.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                        json.loads(raw) if raw else None))
                body = server.recording.body
                self.send_response(server.recording.entry["status"])
                for name, value in server.recording.entry["headers"].items():
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"
