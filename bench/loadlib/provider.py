"""The bench's loopback provider, in a process of its own (so that it competes with neither the
server's GIL nor the bench's): OpenAI's chat streaming and model list.

    python bench/loadlib/provider.py CHUNKS GAP   # prints its base URL, serves until stdin closes

A reply's words are ``<tag>w0 <tag>w1 ...``, where the tag is the last word of the last message,
so a client can tell this reply's first and last words from any other text; the first word comes
at once, then one more every GAP seconds."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY = "sk-bench.load.000000000000000000000000000000"  # the team's key for it; fake, dots keep it from looking real
MODEL = "gpt-4o-mini"


def reply_words(tag: str, chunks: int) -> tuple[bytes, bytes]:
    """The first and the last word of the provider's reply to a message ending in ``tag``."""
    return f"{tag}w0 ".encode(), f"{tag}w{chunks - 1} ".encode()


@contextmanager
def running_provider(chunks: int, gap: float) -> Iterator[tuple[str, int]]:
    """The provider's process: its base URL and pid."""
    with subprocess.Popen([sys.executable, __file__, str(chunks), str(gap)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as provider:
        assert provider.stdout is not None and provider.stdin is not None
        try:
            yield provider.stdout.readline().strip(), provider.pid
        finally:
            provider.stdin.close()


def serve(chunks: int, gap: float) -> None:
    """Serve on loopback: print the base URL, serve until stdin closes."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as providers do

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps({"object": "list", "data": [{"id": m, "object": "model"}
                                                          for m in (MODEL, "gpt-4o")]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            messages = body.get("messages") or [{}]
            words = str(messages[-1].get("content") or "").split()
            tag = words[-1] if words else "x"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
                    "model": body.get("model") or MODEL}

            def send(*objs: object) -> None:
                data = b"".join(b"data: " + (o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n\n"
                                for o in objs)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def text(i: int) -> dict[str, Any]:
                return {**base, "choices": [{"index": 0, "delta": {"content": f"{tag}w{i} "},
                                             "finish_reason": None}]}

            send({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                       "finish_reason": None}]}, text(0))
            for i in range(1, chunks):
                time.sleep(gap)
                send(text(i))
            send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                 {**base, "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": chunks,
                                                   "total_tokens": 20 + chunks}},
                 b"[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    class Quiet(ThreadingHTTPServer):
        request_queue_size = 256  # many people connecting at once

        def handle_error(self, request: Any, client_address: Any) -> None:
            if not isinstance(sys.exc_info()[1], ConnectionError):  # a client closing its keep-alive connection
                super().handle_error(request, client_address)

    httpd = Quiet(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print(f"http://127.0.0.1:{httpd.server_address[1]}/v1", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    serve(int(sys.argv[1]), float(sys.argv[2]))
