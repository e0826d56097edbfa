"""How fast the `byok` command starts, and what `byok chat` adds around a streamed reply.

    python bench/cli.py [--repeats 7] [--chunks 5] [--gap 0.05]

Everything runs as a fresh subprocess, as a person at a terminal would run it:

* ``python -c pass``: the interpreter alone, the floor under any command.
* ``byok --help`` (the installed console script): the parser and nothing else.
* raw: a ten-line httpx script that streams a chat reply and writes each text delta to stdout.
* ``byok chat``: the same reply through the product, with a team key stored (encrypted) in a
  temporary SQLite database: master key, key lookup and decryption, the usage row written before
  the call and completed after it.

Both chat commands stream from one loopback server speaking the OpenAI wire format (a thread of
this process): it sends the first text at once, then one more chunk every ``--gap`` seconds, and
stamps the moment it has sent the last byte. Per run: time to first text = from starting the
process to the first byte on its stdout (read unbuffered); after the last byte = from the server's
last byte to the process's exit. Raw and byok runs alternate; the figures are medians.
Targets: ``byok --help`` ≤ 0.3 s; ``byok chat`` adds ≤ 0.3 s to the first text and ≤ 0.1 s after
the last byte.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-fake.bench-cli-0000000000000000000000"
MODEL = "gpt-4o-mini"

RAW = """
import json, sys, httpx
body = {"model": sys.argv[2], "messages": [{"role": "user", "content": sys.argv[3]}], "stream": True}
with httpx.Client() as client, client.stream("POST", sys.argv[1] + "/chat/completions", json=body,
                                             headers={"Authorization": "Bearer " + sys.argv[4]}) as response:
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices") or []:
                sys.stdout.write((choice.get("delta") or {}).get("content") or "")
                sys.stdout.flush()
sys.stdout.write("\\n")
"""


class Server:
    """A loopback OpenAI-format chat endpoint whose chunks are spaced ``gap`` seconds apart."""

    def __init__(self, chunks: int, gap: float):
        self.chunks, self.gap = chunks, gap
        self.last_byte: list[float] = []  # perf_counter() after each reply's last byte
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
                        "model": body.get("model") or MODEL}

                def send(obj: object) -> None:
                    data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()

                for i in range(server.chunks):
                    if i:
                        time.sleep(server.gap)
                    send({**base, "choices": [{"index": 0, "delta": {"content": f"word{i} "}, "finish_reason": None}]})
                send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                send({**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": server.chunks,
                                                       "total_tokens": 5 + server.chunks}})
                send(b"[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                server.last_byte.append(time.perf_counter())

        return Handler


def byok_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m byok_core``."""
    script = Path(sys.executable).parent / "byok"
    return [str(script)] if script.exists() else [sys.executable, "-m", "byok_core"]


def timed(argv: list[str], env: dict[str, str], stdin: bytes = b"") -> tuple[float, float | None, float, bytes, bytes]:
    """(started, first stdout byte, exited, stdout, stderr), perf_counter() times; fails on a non-zero exit."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    first, out = None, b""
    while chunk := os.read(proc.stdout.fileno(), 65536):
        if first is None:
            first = time.perf_counter()
        out += chunk
    err = proc.stderr.read()
    proc.wait()
    exited = time.perf_counter()
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv[:3])} ... exited {proc.returncode}: {err.decode(errors='replace')}")
    return started, first, exited, out, err


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--chunks", type=int, default=5, help="text chunks per reply")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between chunks")
    args = parser.parse_args()
    byok = byok_command()
    server = Server(args.chunks, args.gap)
    expected = " ".join(f"word{i}" for i in range(args.chunks)) + " \n"
    with tempfile.TemporaryDirectory() as tmp:
        # PYTHONDONTWRITEBYTECODE is dropped: on a person's machine the first run writes byok_core's
        # byte-code cache and later runs load it (with it set, every run compiles byok_core anew, ~40 ms)
        base_env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))
                    and k not in ("DATABASE_URL", "ENCRYPTION_KEY", "ENCRYPTION_KEY_FILE", "ENCRYPTION_KEY_FALLBACKS",
                                  "PYTHONDONTWRITEBYTECODE")}
        env = {**base_env, "BYOK_DATA_DIR": tmp, "ENCRYPTION_KEY": secrets.token_hex(32),
               "OPENAI_BASE_URL": server.base_url}
        timed([*byok, "keys", "set", "--team", "--provider", "openai", "--no-test"], env,  # migrates too
              KEY.encode() + b"\n")

        def run_pass() -> float:
            started, _, exited, _, _ = timed([sys.executable, "-c", "pass"], env)
            return exited - started

        def run_help() -> float:
            started, _, exited, out, _ = timed([*byok, "--help"], env)
            assert b"usage: byok" in out, out
            return exited - started

        def run_chat(argv: list[str]) -> tuple[float, float]:
            before = len(server.last_byte)
            started, first, exited, out, _ = timed(argv, env)
            assert out.decode() == expected, out
            assert first is not None and len(server.last_byte) == before + 1
            return first - started, exited - server.last_byte[-1]

        raw_argv = [sys.executable, "-c", RAW, server.base_url, MODEL, "Say hello", KEY]
        byok_argv = [*byok, "chat", "--provider", "openai", "--model", MODEL, "Say", "hello"]
        for run in (run_pass, run_help, lambda: run_chat(raw_argv), lambda: run_chat(byok_argv)):
            run()  # warm up the file cache and the .pyc files
        passes, helps, raw, via_byok = [], [], [], []
        for _ in range(args.repeats):
            passes.append(run_pass())
            helps.append(run_help())
            raw.append(run_chat(raw_argv))
            via_byok.append(run_chat(byok_argv))
    server.close()

    print(f"{args.repeats} runs each (medians), {' '.join(Path(a).name for a in byok[-1:])}; chat replies: "
          f"{args.chunks} chunks {args.gap * 1000:.0f} ms apart from a loopback OpenAI-format server")
    print(f"  python -c pass          {median_ms(passes):7.0f} ms")
    print(f"  byok --help             {median_ms(helps):7.0f} ms   (target <= 300 ms)")
    first_raw, first_byok = median_ms([r[0] for r in raw]), median_ms([r[0] for r in via_byok])
    after_raw, after_byok = median_ms([r[1] for r in raw]), median_ms([r[1] for r in via_byok])
    print(f"  {'':22}  {'raw httpx':>9}  {'byok chat':>9}  {'added':>7}")
    print(f"  {'first text':22}  {first_raw:6.0f} ms  {first_byok:6.0f} ms  {first_byok - first_raw:+4.0f} ms"
          "   (target <= +300 ms)")
    print(f"  {'exit after last byte':22}  {after_raw:6.0f} ms  {after_byok:6.0f} ms  {after_byok - after_raw:+4.0f} ms"
          "   (target <= +100 ms)")


if __name__ == "__main__":
    main()
