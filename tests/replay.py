"""A loopback HTTP server that answers every request with one recorded provider response (the bytes
of tests/recordings/*, with the recorded status and headers), and keeps the requests it got."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from byok_core import keys
from byok_core.cli import main
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider
from byok_core.startup import open_runtime

RECORDINGS = Path(__file__).resolve().parent / "recordings"
MANIFEST = json.loads((RECORDINGS / "MANIFEST.json").read_text())


@dataclass(frozen=True)
class Recording:
    """One manifest entry: the response and what genai-prices reads from its usage object.
    ``written``: bytes written in a test, for a shape no real recording was found for (the manifest's
    "not_found" says so); never a recording."""

    entry: dict[str, Any]
    written: bytes | None = None

    @property
    def body(self) -> bytes:
        return self.written if self.written is not None else (RECORDINGS / self.entry["file"]).read_bytes()

    def __str__(self) -> str:
        return self.entry["file"]


def recordings(*providers: str) -> list[Recording]:
    return [Recording(e) for e in MANIFEST["files"] if e["provider"] in providers]


def recording(file: str) -> Recording:
    [entry] = [e for e in MANIFEST["files"] if e["file"] == file]
    return Recording(entry)


def written(provider: str, model: str, body: bytes, content_type: str = "text/event-stream") -> Recording:
    """A response written in a test (not recorded), served the way a recording is."""
    return Recording({"provider": provider, "file": "(written in the test)", "status": 200,
                      "headers": {"content-type": content_type}, "request": {"model": model}}, body)


# the manifest's provider names: what the `byok` command is pointed at, and the base URL's path
PROVIDER = {"openai": Provider.OPENAI, "anthropic": Provider.ANTHROPIC, "google": Provider.GOOGLE,
            "openrouter": Provider.OPENAI_COMPATIBLE, "mistral": Provider.OPENAI_COMPATIBLE,
            "groq": Provider.OPENAI_COMPATIBLE, "deepseek": Provider.OPENAI_COMPATIBLE}
PATH_PREFIX = {"openai": "/v1", "openrouter": "/api/v1", "mistral": "/v1", "groq": "/openai/v1"}
KEY = "sk-fake.replay-0123456789abcdef0000"


def base_env(recording: Recording, server: ReplayServer, environ: dict[str, str]) -> dict[str, str]:
    """The environment that points ``recording``'s provider at ``server``; an OpenAI-compatible key
    (which has its own base URL) is stored for the team first."""
    provider = PROVIDER[recording.entry["provider"]]
    base = server.url + PATH_PREFIX.get(recording.entry["provider"], "")
    env = dict(environ)
    if provider is Provider.OPENAI_COMPATIBLE:
        env["BYOK_ALLOW_PRIVATE_ENDPOINTS"] = "1"
        rt = open_runtime(env)
        keys.store(rt, Actor.operator(), Owner.team(), provider, KEY, base_url=base)
        rt.engine.dispose()
    else:
        env |= {provider.spec.key_env: KEY, provider.spec.base_url_env: base}
    return env


def run_cli(recording: Recording, environ: dict[str, str], monkeypatch: Any,
            capsys: Any) -> tuple[int, str, str, ReplayServer]:
    """`byok chat` against a replay server, the way an operator runs it (environment, exit code,
    stdout and stderr)."""
    provider = PROVIDER[recording.entry["provider"]]
    with ReplayServer(recording) as server:
        for name, value in base_env(recording, server, environ).items():
            monkeypatch.setenv(name, value)
        code = main(["chat", "--provider", provider.value, "--model", recording.entry["request"]["model"], "hello"])
    out, err = capsys.readouterr()
    return code, out, err, server


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
