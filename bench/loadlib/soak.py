"""``--soak``: people acting without pause for minutes, a new tab now and then; a line a minute
with the server's RSS, CPU and that minute's latencies, so that memory can be seen to stay flat."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter

from loadlib.measure import PAGE_CYCLE, Level, Tags
from loadlib.people import BrowserTab, Person
from loadlib.provider import reply_words
from loadlib.report import med, ms
from loadlib.servers import Servers


async def soak(servers: Servers, people: list[Person], args: argparse.Namespace, minutes: float, tags: Tags) -> None:
    """People acting continuously; one line per minute with RSS, CPU and the minute's latencies."""
    stop_at = time.monotonic() + minutes * 60
    reruns: list[float] = []
    first_text: list[float] = []
    counts: Counter[str] = Counter()
    health = Level(len(people))  # failures and problems

    async def act(person: Person) -> None:
        tab = BrowserTab(servers.url, person)
        await asyncio.sleep(random.uniform(0, args.window))
        await tab.open()
        counts["load"] += 1
        actions = 0
        while time.monotonic() < stop_at:
            await asyncio.sleep(random.uniform(0, args.window))
            actions += 1
            if actions % 25 == 0:  # close the tab, open a new one: a new Streamlit session
                await tab.close()
                tab = BrowserTab(servers.url, person)
                await tab.open()
                counts["load"] += 1
            elif actions % 4 == 0:
                tag = tags()
                first, last = reply_words(tag, args.chunks)
                run = await tab.chat(tag, args.chunks)
                counts["chat"] += 1
                if health.check(run, first, last):
                    first_text.append(run.marks[first] - run.sent)
            else:
                page = random.choice([p for p in PAGE_CYCLE if p != tab.showing()])
                run = await tab.switch(page)
                counts["rerun"] += 1
                if health.check(run):
                    reruns.append(run.seconds)
        await tab.close()

    async def report() -> None:
        started = time.monotonic()
        series = [servers.rss_mb()]
        print(f"minute 0: RSS {series[0]:.0f} MB", flush=True)
        cpu = servers.cpu()
        minute = 0
        while time.monotonic() < stop_at:
            await asyncio.sleep(max(0.0, started + (minute + 1) * 60 - time.monotonic()))
            minute += 1
            used, cpu = servers.cpu() - cpu, servers.cpu()
            rss = servers.rss_mb()
            series.append(rss)
            done = dict(counts)
            counts.clear()
            rr, ft = list(reruns), list(first_text)
            reruns.clear()
            first_text.clear()
            failed, health.failed = health.failed, 0
            print(f"minute {minute}: RSS {rss:.0f} MB, CPU {used / 60:.0%}, {done.get('rerun', 0)} reruns "
                  f"(med {ms(med(rr))} / max {ms(max(rr, default=float('nan')))} ms), {done.get('chat', 0)} chats "
                  f"(first text med {ms(med(ft))} / max {ms(max(ft, default=float('nan')))} ms), "
                  f"{done.get('load', 0)} loads (new tabs), {failed} failed", flush=True)
        print("RSS series (MB, one a minute): " + ", ".join(f"{r:.0f}" for r in series), flush=True)
        for problem, count in health.problems.most_common(10):
            print(f"  {count} x {problem}")

    await asyncio.gather(report(), *(act(person) for person in people))
