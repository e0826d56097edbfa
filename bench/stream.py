"""What the chat path adds on top of raw httpx + httpx-sse when streaming.

    python bench/stream.py [--replies 200] [--chunks 500]

Both sides stream the same replies from a loopback server (tests/fakeproviders.py, OpenAI wire
format, no artificial delays) running in its own process (as a real provider would, and so that
it does not compete for this process's GIL), over one httpx client; both decode every event's JSON.

* direct:   httpx ``client.stream`` + ``httpx_sse.EventSource``, reading ``choices[0].delta.content``.
* adapter:  ``CHAT_ADAPTERS[Provider.OPENAI].stream(...)`` with an already resolved key: the streaming
  code alone (SSE reading, end-marker and error checks, usage parsing).
* stream_chat: ``byok_core.chat.stream_chat`` with a runtime on a temporary SQLite database and a
  stored (encrypted) team key: key resolution and decryption, the OpenAI adapter, and the usage row
  and last-used stamp written when the reply ends, i.e. everything the UI and CLI do per reply.

The three are interleaved reply by reply, in a shuffled order, so drift on the machine hits all
alike. Printed: median
time to first token (TTFT) of each and the difference to direct; the throughput ratio, i.e. the
streaming rate (chunks/s between the first and the last token) divided by direct's; and, for the
whole reply from the request to the end of the iteration, the time spent after the last token (for
stream_chat: writing the usage row and the last-used stamp) and the speed relative to direct.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from random import shuffle

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import httpx  # noqa: E402
from httpx_sse import EventSource  # noqa: E402

from byok_core import chat, keys  # noqa: E402
from byok_core.adapters import CHAT_ADAPTERS  # noqa: E402
from byok_core.adapters.base import Reply, new_client  # noqa: E402
from byok_core.crypto import gen_key  # noqa: E402
from byok_core.identity import Actor, Owner  # noqa: E402
from byok_core.providers import Provider  # noqa: E402
from byok_core.startup import open_runtime  # noqa: E402

KEY = "sk-fake.bench-0000000000000000000000000000"
MODEL = "gpt-4o-mini"
PROMPT = [chat.ChatMessage("user", "Count to five hundred.")]


Timing = tuple[float, float, float, int]  # seconds to first token, to last token, to the end; deltas


def direct(client: httpx.Client, base_url: str) -> Timing:
    """Plain httpx + httpx-sse."""
    started = time.perf_counter()
    first, last, count = None, 0.0, 0
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT[0].content}], "stream": True,
            "stream_options": {"include_usage": True}}
    with client.stream("POST", f"{base_url}/chat/completions", json=body,
                       headers={"Authorization": f"Bearer {KEY}"}) as response:
        for sse in EventSource(response).iter_sse():
            if sse.data == "[DONE]":
                break
            choices = json.loads(sse.data).get("choices") or [{}]
            if (choices[0].get("delta") or {}).get("content"):
                count += 1
                last = time.perf_counter() - started
                first = last if first is None else first
    return first, last, time.perf_counter() - started, count


def through_adapter(key: keys.ResolvedKey, client: httpx.Client) -> Timing:
    started = time.perf_counter()
    first, last, count = None, 0.0, 0
    for _ in CHAT_ADAPTERS[Provider.OPENAI].stream(client, key.credential, MODEL, PROMPT, Reply()):
        count += 1
        last = time.perf_counter() - started
        first = last if first is None else first
    return first, last, time.perf_counter() - started, count


def through_stream_chat(rt, client: httpx.Client) -> Timing:
    started = time.perf_counter()
    first, last, count = None, 0.0, 0
    stream = chat.stream_chat(rt, user_id=None, provider=Provider.OPENAI, model=MODEL, messages=PROMPT, client=client)
    for _ in stream:
        count += 1
        last = time.perf_counter() - started
        first = last if first is None else first
    end = time.perf_counter() - started
    assert stream.result is not None and stream.result.record.ok, stream.result and stream.result.error
    return first, last, end, count


SERVER = """
import sys
sys.path[:0] = {paths!r}
from byok_core.providers import Provider
from fakeproviders import FakeProvider
with FakeProvider(Provider.OPENAI, chunks=[f"t{{i}} " for i in range({chunks})]) as server:
    print(server.base_url, flush=True)
    sys.stdin.read()  # serve until the parent closes stdin
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replies", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=500)
    args = parser.parse_args()
    code = SERVER.format(paths=[str(ROOT), str(ROOT / "tests")], chunks=args.chunks)
    with tempfile.TemporaryDirectory() as tmp, \
            subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True) as server:
        base_url = server.stdout.readline().strip()
        rt = open_runtime({"BYOK_DATA_DIR": tmp, "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                           "ENCRYPTION_KEY": gen_key(), "OPENAI_BASE_URL": base_url})
        keys.store(rt, Actor.operator(), Owner.team(), Provider.OPENAI, KEY)
        key = keys.resolve(rt, None, Provider.OPENAI)
        paths = {"direct": lambda c: direct(c, base_url), "adapter": lambda c: through_adapter(key, c),
                 "stream_chat": lambda c: through_stream_chat(rt, c)}
        runs: dict[str, list[Timing]] = {name: [] for name in paths}
        with new_client(rt.settings.connect_timeout, rt.settings.read_timeout) as client:
            for _ in range(5):  # warm up every path
                for run in paths.values():
                    run(client)
            order = list(paths)
            for _ in range(args.replies):
                shuffle(order)  # no path always runs right after another one
                for name in order:
                    runs[name].append(paths[name](client))
        rt.engine.dispose()
        server.stdin.close()
    assert all(r[3] == args.chunks for rows in runs.values() for r in rows), "a reply lost chunks"

    # medians per reply, so a hiccup from another process on the machine does not skew the figures
    def median(values) -> float:
        return statistics.median(list(values))

    ttft = {name: median(r[0] for r in rows) * 1000 for name, rows in runs.items()}
    streaming = {name: median((r[3] - 1) / (r[1] - r[0]) for r in rows) for name, rows in runs.items()}
    end_to_end = {name: median(r[2] for r in rows) * 1000 for name, rows in runs.items()}
    after_last = {name: median(r[2] - r[1] for r in rows) * 1000 for name, rows in runs.items()}
    print(f"{args.replies} replies x {args.chunks} chunks each, loopback OpenAI-format SSE (medians per reply)")
    print(f"  {'path':<12} {'TTFT ms':>8} {'stream chunks/s':>16} {'reply ms':>9} {'after last token ms':>20}")
    for name in runs:
        print(f"  {name:<12} {ttft[name]:8.2f} {streaming[name]:16.0f} {end_to_end[name]:9.2f} "
              f"{after_last[name]:20.2f}")
    for name in ("adapter", "stream_chat"):
        print(f"{name}: added TTFT {ttft[name] - ttft['direct']:.2f} ms (target <= 5); throughput ratio "
              f"{streaming[name] / streaming['direct']:.3f} (target >= 0.95); whole reply "
              f"{end_to_end['direct'] / end_to_end[name]:.3f} of direct's speed")

if __name__ == "__main__":
    main()
