"""The profiler inside the app's process, switched on and off by the bench per phase and level.

    python bench/loadlib/profiler.py PATH CLOCK -- -m streamlit run streamlit_app.py ...

runs ``python -m MODULE ARGS`` in this process. The bench writes ``start LABEL`` or ``stop`` into
``PATH.ctl`` (``ProfileSwitch``). The main thread (the event loop; switched by SIGUSR1) and every
thread started between the two (each script run is a thread of its own) run under cProfile with
that thread's CPU clock (``time.thread_time``), so time spent waiting for the GIL or for I/O counts
nowhere (CLOCK ``wall``: ``time.perf_counter``, to see where threads wait: locks, the connection
pool, SQLite's busy handler, but also the GIL, which inflates everything); and each thread's CPU is
read from /proc/self/task/TID/schedstat every 20 ms, so the report also says how the process's CPU
split between threads (the event loop, script runs, ...). A stop writes ``PATH-LABEL.txt`` (by
thread; script threads by function, cumulative and own time) and ``PATH-LABEL.pstats`` (for
``python -m pstats`` or snakeviz). cProfile slows Python-heavy code more than C calls such as
``gc.collect``, so its shares are approximate."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int | str) -> float:
    """Seconds of CPU (user + system) process ``pid`` ("self": this one) has used so far, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class ProfileSwitch:
    """The bench's side: start and stop the server's profile sections."""

    def __init__(self, path: str):
        self.path = path
        self._section = ""

    def mark(self, command: str) -> None:
        """Start (``start LABEL``) or stop (``stop``) a profile section; a stop waits for the report."""
        if command.startswith("start"):
            self._section = command.split()[1]
            for suffix in (".txt", ".pstats"):
                Path(f"{self.path}-{self._section}{suffix}").unlink(missing_ok=True)
        Path(self.path + ".ctl").write_text(command)
        time.sleep(0.05)  # the profiler looks every 20 ms
        deadline = time.monotonic() + 120
        while command == "stop" and not Path(f"{self.path}-{self._section}.txt").exists():
            if time.monotonic() > deadline:
                raise SystemExit("the server wrote no profile")
            time.sleep(0.1)


def serve(path: str, argv: list[str], clock: str = "cpu") -> None:
    """Run ``python -m MODULE ARGS`` (``argv``) in this process under the profiler the bench switches."""
    import cProfile
    import pstats
    import runpy

    ctl = Path(path + ".ctl")
    timer = time.perf_counter if clock == "wall" else time.thread_time
    lock = threading.Lock()
    section: dict[str, Any] = {"label": None, "profiles": []}
    thread_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        label = section["label"]
        if label is None:
            return thread_run(self)
        profile = cProfile.Profile(timer)
        profile.enable()
        try:
            return thread_run(self)
        finally:
            profile.disable()
            with lock:
                if section["label"] == label:
                    section["profiles"].append(profile)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]

    main_profile: list[cProfile.Profile] = []

    def toggle_main(*_: object) -> None:
        """SIGUSR1 handler, so in the main thread (the event loop): start or end its profile."""
        if section["label"] is not None and not main_profile:
            main_profile.append(cProfile.Profile(timer))
            main_profile[0].enable()
        elif main_profile:
            main_profile[0].disable()
            with lock:
                section["profiles"].append(main_profile.pop())

    signal.signal(signal.SIGUSR1, toggle_main)

    def watch() -> None:
        by_thread: Counter[str] = Counter()
        last: dict[int, int] = {}
        seen, started, cpu0 = 0.0, 0.0, 0.0
        while True:
            time.sleep(0.02)
            for thread in threading.enumerate():
                if thread.native_id is None:
                    continue
                try:
                    with open(f"/proc/self/task/{thread.native_id}/schedstat") as f:
                        cpu = int(f.read().split()[0])
                except (OSError, ValueError):
                    continue
                before = last.get(thread.native_id, 0)  # always watched: a thread not seen yet is new
                last[thread.native_id] = cpu
                if section["label"] is not None:
                    by_thread[re.sub(r"\d+", "N", thread.name)] += cpu - before
            try:
                mtime = ctl.stat().st_mtime
            except OSError:
                continue
            if mtime == seen:
                continue
            seen = mtime
            command = ctl.read_text().split()
            if command[:1] == ["start"]:
                with lock:
                    section["label"], section["profiles"] = command[1], []
                by_thread.clear()
                started, cpu0 = time.monotonic(), process_cpu("self")
                os.kill(os.getpid(), signal.SIGUSR1)
            elif command[:1] == ["stop"] and section["label"] is not None:
                os.kill(os.getpid(), signal.SIGUSR1)
                time.sleep(0.3)  # the last script threads finish their clean-up, the main thread its profile
                with lock:
                    label, profiles = section["label"], section["profiles"]
                    section["label"], section["profiles"] = None, []
                wall, used = time.monotonic() - started, process_cpu("self") - cpu0
                total = sum(by_thread.values()) or 1
                lines = [f"profile {label}: {wall:.1f} s wall, process CPU {used:.2f} s "
                         f"({len(profiles)} threads profiled)", "", "CPU by thread (schedstat):"]
                lines += [f"  {ns / total:6.1%}  {ns / 1e9:6.2f} s  {name}" for name, ns in by_thread.most_common()]
                report = Path(f"{path}-{label}.txt")
                with open(f"{report}.part", "w") as out:
                    out.write("\n".join(lines) + "\n\n")
                    if profiles:
                        stats = pstats.Stats(*profiles, stream=out)
                        stats.dump_stats(f"{path}-{label}.pstats")
                        stats.sort_stats("cumulative").print_stats(70)
                        stats.sort_stats("tottime").print_stats(40)
                os.replace(f"{report}.part", report)  # the bench waits for this file

    threading.Thread(target=watch, name="load-bench-profiler", daemon=True).start()
    assert argv[:1] == ["-m"], "usage: profiler.py PATH CLOCK -- -m MODULE ARGS"
    sys.path[0] = os.getcwd()  # as `python -m` has it
    sys.argv = [argv[1], *argv[2:]]
    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[4:], sys.argv[2])
