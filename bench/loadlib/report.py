"""What the bench prints: the table of a run's levels, and the figures' formats."""

from __future__ import annotations

import statistics
from collections import Counter

from loadlib.measure import Level


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def added(seconds: float) -> str:
    return f"{seconds * 1000:+,.0f}"


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def top(values: list[float]) -> float:
    return max(values, default=float("nan"))


def print_table(levels: list[Level]) -> None:
    head = ("N", "first load med/max", "rerun med/max", "CPU/rerun", "raw first", "first text added med/max",
            "raw reply", "reply med (xraw)", "CPU/load", "CPU/chat", "RSS MB", "failed")
    rows = []
    for lv in levels:
        raw_first, raw_reply = med(lv.raw_first), med(lv.raw_reply)
        rows.append((
            str(lv.n), f"{ms(med(lv.loads))} / {ms(top(lv.loads))}", f"{ms(med(lv.reruns))} / {ms(top(lv.reruns))}",
            ms(lv.cpu_rerun), ms(raw_first),
            f"{added(med(lv.first_text) - raw_first)} / {added(top(lv.first_text) - raw_first)}",
            ms(raw_reply), f"{ms(med(lv.reply))} ({med(lv.reply) / raw_reply:.2f}x)",
            ms(lv.cpu_load), ms(lv.cpu_chat), f"{lv.rss:.0f}", str(lv.failed),
        ))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |")
    print("(times in ms; CPU = server CPU ms per operation; failed = actions that showed an error or a reply "
          "never shown whole, left out of the times)")
    problems = sum((lv.problems for lv in levels), Counter[str]())
    for problem, count in problems.most_common(10):
        print(f"  {count} x {problem}")
    for lv in levels:
        print(lv.others)



