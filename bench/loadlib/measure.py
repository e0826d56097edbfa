"""One level of the bench: N people connected at once, each acting once at a random moment of
every round (page loads, page switches, chat messages), the chats against the same requests made
with raw httpx straight to the provider; the server's CPU per operation and its RSS."""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from wsclient import Run

from loadlib.people import TIMEOUT, BrowserTab, Person
from loadlib.profiler import process_cpu
from loadlib.provider import KEY, MODEL, reply_words
from loadlib.servers import Servers

PAGE_CYCLE = ("Search", "Keys", "Usage", "Account", "Chat")


class Tags:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"q{self.n:07d}x"


async def warm_up(servers: Servers, people: list[Person], chunks: int, tags: Tags) -> None:
    """On every replica, one person opens every page and sends a message (not measured): a server's
    first runs import the pages and fill its caches."""
    warmed: set[str] = set()
    for person in people:
        tab = BrowserTab(servers.url, person)
        await tab.open()
        if tab.upstream not in warmed:
            warmed.add(tab.upstream)
            for page in PAGE_CYCLE:
                await tab.switch(page)
            await tab.chat(tags(), chunks)
        await tab.close()
        if len(warmed) == len(servers.apps):
            return
    raise SystemExit(f"nginx sent {len(people)} people to {len(warmed)} of {len(servers.apps)} replicas")


async def at_random_moment(window: float, action: Any) -> Any:
    await asyncio.sleep(random.uniform(0, window))
    return await action()


@dataclass
class Level:
    n: int
    loads: list[float] = field(default_factory=list)
    reruns: list[float] = field(default_factory=list)
    first_text: list[float] = field(default_factory=list)
    reply: list[float] = field(default_factory=list)
    raw_first: list[float] = field(default_factory=list)
    raw_reply: list[float] = field(default_factory=list)
    cpu_load: float = 0.0
    cpu_rerun: float = 0.0
    cpu_chat: float = 0.0
    rss: float = 0.0
    others: str = ""  # the CPU the bench's own processes used meanwhile
    failed: int = 0  # actions that showed an error, or chats whose reply never appeared whole
    problems: Counter[str] = field(default_factory=Counter)

    def check(self, run: Run, *markers: bytes) -> bool:
        missing = [m.decode() for m in markers if m not in run.marks]
        problems = run.problems + ([f"never shown: {', '.join(missing)}"] if missing else [])
        self.problems.update(re.sub(r"q\d+x", "q…x", p)[:300] for p in problems)
        self.failed += bool(problems)
        return not problems


async def raw_chat(client: Any, base_url: str, tag: str, chunks: int) -> Run:
    """The same reply straight from the provider with httpx: the times of its first and last words."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"Load test message {tag}"}], "stream": True,
            "stream_options": {"include_usage": True}}
    run = Run(time.perf_counter(), reply_words(tag, chunks))
    async with client.stream("POST", base_url + "/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {KEY}"}) as response:
        async for line in response.aiter_lines():
            now = time.perf_counter()
            raw = line.encode()
            for marker in run.watch:
                if marker not in run.marks and marker in raw:
                    run.marks[marker] = now
    run.finished = time.perf_counter()
    return run


async def measure_level(servers: Servers, people: list[Person], provider_url: str, args: argparse.Namespace,
                        n: int, tags: Tags, provider_pid: int) -> Level:
    level = Level(n)
    started, own, provider, served = time.monotonic(), time.process_time(), process_cpu(provider_pid), servers.cpu()
    proxied = servers.nginx_cpu()
    tabs = [BrowserTab(servers.url, person) for person in people[:n]]
    window = args.window

    async def phase(name: str, rounds: int, make: Any) -> tuple[list[Run], float]:
        servers.mark(f"start n{n}-{name}")
        cpu = servers.cpu()
        runs: list[Run] = []
        for _ in range(rounds):
            runs += await asyncio.gather(*(at_random_moment(window, make(tab)) for tab in tabs))
        used = servers.cpu() - cpu
        servers.mark("stop")
        runs = [r for r in runs if level.check(r)]
        return runs, used / max(1, len(runs))

    loads, level.cpu_load = await phase("load", 1, lambda tab: tab.open)
    level.loads = [r.seconds for r in loads]

    def switcher(tab: BrowserTab) -> Any:
        def go() -> Any:
            current = tab.showing()
            following = PAGE_CYCLE[(PAGE_CYCLE.index(current) + 1) % len(PAGE_CYCLE)] \
                if current in PAGE_CYCLE else "Search"
            return tab.switch(following)
        return go

    reruns, level.cpu_rerun = await phase("rerun", args.reruns, switcher)
    level.reruns = [r.seconds for r in reruns]
    for tab in tabs:  # every tab on the Chat page before the chats (not measured)
        if tab.showing() != "Chat":
            await tab.switch("Chat")

    async with httpx.AsyncClient(timeout=TIMEOUT, limits=httpx.Limits(max_connections=200)) as client:
        servers.mark(f"start n{n}-chat")
        cpu_chat, chats = 0.0, 0
        for _ in range(args.chats):
            cpu = servers.cpu()
            chat_tags = [tags() for _ in tabs]
            runs = await asyncio.gather(*(at_random_moment(window, lambda tab=tab, tag=tag: tab.chat(tag, args.chunks))
                                          for tab, tag in zip(tabs, chat_tags, strict=True)))
            cpu_chat += servers.cpu() - cpu
            chats += len(runs)
            for r, tag in zip(runs, chat_tags, strict=True):
                first, last = reply_words(tag, args.chunks)
                if level.check(r, first, last):
                    level.first_text.append(r.marks[first] - r.sent)
                    level.reply.append(r.marks[last] - r.sent)
            raw_tags = [tags() for _ in tabs]
            raws = await asyncio.gather(*(at_random_moment(window, lambda tag=tag: raw_chat(client, provider_url, tag,
                                                                                            args.chunks))
                                          for tag in raw_tags))
            for r, tag in zip(raws, raw_tags, strict=True):
                first, last = reply_words(tag, args.chunks)
                level.raw_first.append(r.marks[first] - r.sent)
                level.raw_reply.append(r.marks[last] - r.sent)
        servers.mark("stop")
        level.cpu_chat = cpu_chat / max(1, chats)
    level.rss = servers.rss_mb()
    wall = time.monotonic() - started
    own, provider = time.process_time() - own, process_cpu(provider_pid) - provider
    level.others = (f"N={n}: this client used {own / wall:.0%} of a core, the provider {provider / wall:.0%}, "
                    f"the server {(servers.cpu() - served) / wall:.0%}"
                    + (f", nginx {(servers.nginx_cpu() - proxied) / wall:.0%}" if servers.proxy else "")
                    + f" (over the level's {wall:.0f} s, raw rounds included)")
    if servers.proxy:
        spread = Counter(tab.upstream for tab in tabs)
        level.others += "; tabs per replica: " + ", ".join(f"{a} {c}" for a, c in sorted(spread.items()))
    for tab in tabs:
        await tab.close()
    return level


