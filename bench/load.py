"""Many people on one app server: page loads, page switches and streamed chat replies, driven
through the real Streamlit server with the websocket protocol a browser speaks.

    python bench/load.py [--sessions 1,5,10,20] [--window 2] [--reruns 5] [--chats 3]
                         [--chunks 40] [--gap 0.025] [--set runner.postScriptGC=true ...]
                         [--app-dir DIR] [--profile /tmp/load [--profile-clock wall]]
                         [--database-url postgresql://... [--replicas 2]]
    python bench/load.py --soak 30 --sessions 20 > /tmp/soak.txt

Set-up, in a temporary folder and with nothing from this machine's configuration: ``streamlit
run streamlit_app.py`` on loopback (``--app-dir``: from another copy of the project, e.g. a
``git archive`` of a commit, or one with a patch to try) with a fresh SQLite database and master
key, a team OpenAI key stored in it, and ``OPENAI_BASE_URL`` pointing at a loopback provider in a
process of its own (so that it competes with neither the server's GIL nor this one's). The
provider speaks OpenAI's streaming format and sends a reply's first word at once, then one more
every ``--gap`` seconds (``--chunks`` words: 40 x 25 ms, about 1 s, by default).

``--database-url`` runs the app on PostgreSQL instead, in a database the bench makes on that server
for the run and drops afterwards. ``--replicas N`` starts N app processes on that database behind a
private nginx with sticky sessions (deploy/nginx.conf, as deploy/run-replicas.sh runs it); the tabs
connect through nginx, each with its own routing cookie, as browsers do. The server's CPU and RSS
are then the replicas' together; nginx's CPU and how many tabs each replica served are listed under
the table. Every replica is warmed up before measuring.

Every person is a member, signed in the way the browser is: a one-time ticket POSTed to
``/byok/session`` gives the ``byok_session`` cookie, which goes with the websocket handshake
(``Origin``: the app's own). Each tab then speaks Streamlit's protocol on ``/_stcore/stream``: one
``BackMsg.rerun_script`` per action (page hash, query string, widget states), ``ForwardMsg``s back
until ``script_finished``. A chat message is the chat input's widget state (its id read from the
Chat page the server drew) holding the prompt, as the browser sends it; the page's query string
(``?c=<conversation>``) is sent back as the browser's URL would.

For each N in ``--sessions``, N people are connected at once, and in every round each of them does
one action at a random moment within a ``--window``-second window (``--window 0``: all at the same
instant, the worst case); a round ends when every action has finished. Measured per N:

* first load: opening the websocket → the first ``script_finished`` (the Chat page, signed in);
* rerun: switching page (Search → Keys → Usage → Account → Chat; ``--reruns`` rounds) →
  ``script_finished``;
* chat (``--chats`` rounds, each followed by a round of the same N requests made with raw httpx
  straight to the provider, at their own random moments in the same window). first text: sending
  the message → the first websocket frame holding the reply's first word, shown as what it adds
  to raw httpx's time to the first word (medians; max is the worst app figure minus the raw
  median). reply: sending → the frame holding the reply's last word; in brackets the ratio of the
  medians, app over raw;
* server CPU (user + system, /proc/PID/stat) per first load, per rerun and per chat, each over its
  own rounds; the server's RSS after the level; and, under the table, the CPU this client and the
  provider used (they share the machine with the server).

An action that shows an error or warning, or a reply whose last word never shows, counts as
failed and is left out of the times; the messages are listed under the table.

``--set OPTION=VALUE`` passes a Streamlit option to the server (``--set runner.postScriptGC=true
--set server.fileWatcherType=auto`` measures Streamlit's defaults against .streamlit/config.toml).
``--profile PATH`` runs the server under cProfile, per phase and level: the event loop and every
thread started during the phase (each script run and each reply worker is one), each timed by its
own CPU clock (``--profile-clock wall``: elapsed time, waits included), plus each thread's CPU from
/proc; it writes ``PATH-n20-chat.txt`` (by thread, by function) and ``PATH-n20-chat.pstats``.
cProfile slows Python code more than C calls (gc.collect, SQLite), so its figures are relative.

``--soak MINUTES``: the largest N people act without pause (a page switch three times in four, else
a chat message, then a pause of up to ``--window`` seconds; every 25 actions a person closes the
tab and opens a new one, a new Streamlit session); every minute one line with the server's RSS and
CPU and that minute's latencies, and at the end the RSS series. Memory should stay flat.

Targets at N = 20 on one process: rerun median ≤ 300 ms, first load ≤ 1 s, reply ≤ 1.2x raw,
first text ≤ 300 ms added.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-bench.load.000000000000000000000000000000"  # fake; dots keep it from looking real
MODEL = "gpt-4o-mini"
PASSWORD = "load-bench-password-1"
PAGE_CYCLE = ("Search", "Keys", "Usage", "Account", "Chat")
SIGNED_IN = b"Signed in as"
TIMEOUT = 120.0
TICK = os.sysconf("SC_CLK_TCK")


# --- the loopback provider (its own process: python bench/load.py --provider-server) -----------


def serve_provider(chunks: int, gap: float) -> None:
    """OpenAI's chat streaming and model list on loopback; prints the base URL, serves until stdin closes.

    The reply's words are ``<tag>w0 <tag>w1 ...``, where the tag is the last word of the last
    message, so a client can tell this reply's first and last words from any other text."""

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


# --- the profiler (inside the server: python bench/load.py --serve-profiled PATH -- -m streamlit ...) ---


def serve_profiled(path: str, argv: list[str], clock: str = "cpu") -> None:
    """Run ``python -m MODULE ARGS`` in this process with a profiler the bench switches on and off.

    The bench writes ``start LABEL`` or ``stop`` into ``PATH.ctl``. The main thread (the event
    loop; switched by SIGUSR1) and every thread started between the two (each script run is a
    thread of its own) run under cProfile with that thread's CPU
    clock (``time.thread_time``), so time spent waiting for the GIL or for I/O counts nowhere
    (``clock="wall"``: ``time.perf_counter``, to see where threads wait: locks, the connection
    pool, SQLite's busy handler, but also the GIL, which inflates everything);
    and each thread's CPU is read from /proc/self/task/TID/schedstat every 20 ms, so the report
    also says how the process's CPU split between threads (the event loop, script runs, ...). A
    stop writes ``PATH-LABEL.txt`` (by thread; script threads by function, cumulative and own
    time) and ``PATH-LABEL.pstats`` (for ``python -m pstats`` or snakeviz). cProfile slows
    Python-heavy code more than C calls such as ``gc.collect``, so its shares are approximate."""
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

    def proc_cpu() -> float:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

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
                started, cpu0 = time.monotonic(), proc_cpu()
                os.kill(os.getpid(), signal.SIGUSR1)
            elif command[:1] == ["stop"] and section["label"] is not None:
                os.kill(os.getpid(), signal.SIGUSR1)
                time.sleep(0.3)  # the last script threads finish their clean-up, the main thread its profile
                with lock:
                    label, profiles = section["label"], section["profiles"]
                    section["label"], section["profiles"] = None, []
                wall, used = time.monotonic() - started, proc_cpu() - cpu0
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
    assert argv[:1] == ["-m"], "usage: --serve-profiled PATH -- -m MODULE ARGS"
    sys.path[0] = os.getcwd()  # as `python -m` has it
    sys.argv = [argv[1], *argv[2:]]
    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)


# --- the app server and the people -------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) process ``pid`` has used so far, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``streamlit run streamlit_app.py`` on loopback, its data in ``tmp``; CPU and RSS from /proc.

    With ``replicas`` > 1: that many app processes on one PostgreSQL database (``database_url``)
    behind a private nginx with sticky sessions (deploy/nginx.conf, as deploy/run-replicas.sh runs
    it); ``url`` is nginx's, and CPU and RSS are the replicas' together (nginx's CPU is reported
    with the bench's own)."""

    def __init__(self, tmp: Path, provider_url: str, options: list[str], profile: str | None, app_dir: Path,
                 profile_clock: str = "cpu", replicas: int = 1, database_url: str | None = None):
        from byok_core.crypto import gen_key
        from byok_core.providers import Provider

        machine = [v for p in Provider for v in (p.spec.key_env, p.spec.base_url_env) if v]
        env = {k: v for k, v in os.environ.items()
               if k not in machine and not k.startswith(("DATABASE_URL", "ENCRYPTION_KEY", "BYOK_", "STREAMLIT_"))}
        self.env = env | {"BYOK_DATA_DIR": str(tmp / "data"), "ENCRYPTION_KEY": gen_key(),
                          "OPENAI_BASE_URL": provider_url} | ({"DATABASE_URL": database_url} if database_url else {})
        self.stderr = tmp / "server-stderr.log"
        self.profile = profile
        self._section = ""
        self.procs: list[subprocess.Popen[bytes]] = []
        self.nginx: subprocess.Popen[bytes] | None = None
        ports = [free_port() for _ in range(replicas)]
        try:
            for i, port in enumerate(ports):
                run = ["-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
                       "--server.address", "127.0.0.1", "--server.headless", "true"]
                for option in options:
                    name, _, value = option.partition("=")
                    run += [f"--{name}", value]
                argv = [sys.executable, *run] if profile is None else \
                    [sys.executable, str(Path(__file__).resolve()), "--serve-profiled", profile, profile_clock, "--",
                     *run]
                replica_env = self.env | ({"BYOK_DATA_DIR": str(tmp / f"data-{i + 1}")} if replicas > 1 else {})
                with open(self.stderr, "ab") as err:
                    self.procs.append(subprocess.Popen(argv, cwd=app_dir, env=replica_env, stdout=err, stderr=err))
            for port in ports:
                self._wait_healthy(f"http://127.0.0.1:{port}", self.procs)
            self.url = f"http://127.0.0.1:{ports[0]}"
            if replicas > 1:
                self.url = self._start_nginx(tmp / "nginx", [f"127.0.0.1:{port}" for port in ports])
        except BaseException:
            self.close()
            raise

    def _start_nginx(self, run: Path, upstreams: list[str]) -> str:
        import importlib.util
        import shutil

        spec = importlib.util.spec_from_file_location("nginx_conf", ROOT / "deploy" / "nginx_conf.py")
        assert spec is not None and spec.loader is not None
        nginx_conf = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(nginx_conf)
        run.mkdir()
        port = free_port()
        (run / "nginx.conf").write_text(nginx_conf.render(f"127.0.0.1:{port}", upstreams))
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        with open(run / "stderr.log", "wb") as err:
            self.nginx = subprocess.Popen([binary, "-p", f"{run}/", "-c", str(run / "nginx.conf")],
                                          stdout=err, stderr=err)
        url = f"http://127.0.0.1:{port}"
        self._wait_healthy(url, [self.nginx])
        return url

    def _wait_healthy(self, url: str, procs: list[subprocess.Popen[bytes]]) -> None:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            if any(proc.poll() is not None for proc in procs):
                raise SystemExit(f"a server exited:\n{self.stderr.read_text(errors='replace')}")
            try:
                if httpx.get(url + "/_stcore/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer within 60 s")
            time.sleep(0.1)

    @property
    def replica_pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def cpu(self) -> float:
        """Seconds of CPU (user + system) the app's processes have used so far."""
        return sum(process_cpu(pid) for pid in self.replica_pids)

    def nginx_cpu(self) -> float:
        """nginx's CPU, its master and workers (0 without replicas)."""
        if self.nginx is None:
            return 0.0
        children = Path(f"/proc/{self.nginx.pid}/task/{self.nginx.pid}/children").read_text().split()
        return sum(process_cpu(pid) for pid in [self.nginx.pid, *map(int, children)])

    def rss_mb(self) -> float:
        total = 0.0
        for pid in self.replica_pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        return total

    def mark(self, command: str) -> None:
        """Start (``start LABEL``) or stop (``stop``) a profile section, when profiling; a stop
        waits for the report."""
        if not self.profile:
            return
        if command.startswith("start"):
            self._section = command.split()[1]
            for suffix in (".txt", ".pstats"):
                Path(f"{self.profile}-{self._section}{suffix}").unlink(missing_ok=True)
        Path(self.profile + ".ctl").write_text(command)
        time.sleep(0.05)  # the profiler looks every 20 ms
        deadline = time.monotonic() + 120
        while command == "stop" and not Path(f"{self.profile}-{self._section}.txt").exists():
            if time.monotonic() > deadline:
                raise SystemExit("the server wrote no profile")
            time.sleep(0.1)

    def close(self) -> None:
        for proc in [*self.procs, *([self.nginx] if self.nginx else [])]:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def sign_in_people(server: Server, count: int) -> list[str]:
    """``count`` members and a stored team key; each person's Cookie header: the session cookie from a
    ticket POSTed to /byok/session."""
    import httpx

    from byok_core import accounts, keys
    from byok_core.identity import Actor, Owner, Role
    from byok_core.providers import Provider
    from byok_core.startup import open_runtime

    rt = open_runtime(server.env, migrate=False)  # the server migrated it at start
    cookies = []
    try:
        keys.store(rt, Actor.operator(), Owner.team(), Provider.OPENAI, KEY)
        for i in range(count):
            user = accounts.create_user(rt, Actor.operator(), f"load{i:03d}", PASSWORD, Role.MEMBER)
            ticket = accounts.issue_login_ticket(rt, user)
            response = httpx.post(server.url + "/byok/session", json={"ticket": ticket},
                                  headers={"Origin": server.url})
            response.raise_for_status()
            # a browser also holds nginx's routing cookie (replicas); one value per person, as nginx would pick
            cookies.append(f"byok_session={response.cookies['byok_session']}; byok_route=load{i:03d}")
    finally:
        rt.engine.dispose()
    return cookies


@dataclass
class Run:
    """One script run as the tab saw it: perf_counter() times."""

    sent: float
    finished: float
    marks: dict[bytes, float]
    problems: list[str]  # error and warning messages the page showed, tracebacks

    @property
    def seconds(self) -> float:
        return self.finished - self.sent


class Tab:
    """One browser tab: the app's websocket, with the person's cookie, speaking Streamlit's protocol."""

    def __init__(self, url: str, cookie: str):
        self.url, self.cookie = url, cookie  # the Cookie header
        self.ws: Any = None
        self.upstream = ""  # the replica behind nginx that serves this tab (its X-Upstream header)
        self.pages: dict[str, str] = {}  # page name → page script hash, from the navigation message
        self.page = ""
        self.query = ""  # the page's query string as the app last set it (the Chat page: ?c=<conversation>)
        self.chat_input: str | None = None  # the chat input's widget id, from the Chat page's deltas

    async def open(self) -> Run:
        """Connect and run the default page (Chat), as a browser does on load."""
        from websockets.asyncio.client import connect

        sent = time.perf_counter()
        self.ws = await connect(self.url.replace("http", "ws", 1) + "/_stcore/stream", origin=self.url,  # type: ignore[arg-type]
                                subprotocols=["streamlit"],  # type: ignore[list-item]
                                additional_headers={"Cookie": self.cookie},
                                max_size=None, open_timeout=TIMEOUT, ping_interval=None)
        self.upstream = self.ws.response.headers.get("X-Upstream", "")
        run = await self._rerun("", (SIGNED_IN,), sent=sent)
        if SIGNED_IN not in run.marks:
            raise SystemExit("the first page is not signed in: the session cookie did not work")
        return run

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    async def switch(self, name: str) -> Run:
        """Open a page from the menu (its URL has no query string)."""
        self.query = ""
        return await self._rerun(self.pages[name], ())

    async def chat(self, tag: str, chunks: int) -> Run:
        """Send a message from the Chat page's input; the run's marks hold the reply's first and last words."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        if self.page != self.pages["Chat"] or self.chat_input is None:
            await self.switch("Chat")
        assert self.chat_input is not None, "no chat input on the Chat page"
        state = WidgetState(id=self.chat_input)
        state.chat_input_value.data = f"Load test message {tag}"
        return await self._rerun(self.pages["Chat"], reply_words(tag, chunks), widgets=[state])

    async def _rerun(self, page_hash: str, watch: Iterable[bytes], widgets: Iterable[Any] = (),
                     sent: float | None = None) -> Run:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query
        state.page_script_hash = page_hash
        state.context_info.timezone = "UTC"
        state.context_info.locale = "en-US"
        state.widget_states.widgets.extend(widgets)
        started = time.perf_counter() if sent is None else sent
        await self.ws.send(msg.SerializeToString())
        marks: dict[bytes, float] = {}
        pending = list(watch)
        problems: list[str] = []
        deadline = time.monotonic() + TIMEOUT
        while True:
            data = await asyncio.wait_for(self.ws.recv(), max(0.1, deadline - time.monotonic()))
            now = time.perf_counter()
            for marker in pending:
                if marker in data:
                    marks[marker] = now
            pending = [m for m in pending if m not in marks]
            fwd = ForwardMsg()
            fwd.ParseFromString(data)
            kind = fwd.WhichOneof("type")
            if kind == "page_info_changed":
                self.query = fwd.page_info_changed.query_string
            elif kind == "navigation":
                self.pages = {p.page_name: p.page_script_hash for p in fwd.navigation.app_pages
                              if not p.is_hidden}  # the menu's pages, not stand-ins at other URLs
                self.page = fwd.navigation.page_script_hash
            elif kind == "delta":
                if fwd.delta.WhichOneof("type") == "new_element":
                    element = fwd.delta.new_element
                    shown = element.WhichOneof("type")
                    if shown == "chat_input":
                        self.chat_input = element.chat_input.id
                    elif shown == "exception":
                        problems.append(f"exception: {element.exception.message}")
                    elif shown == "alert" and element.alert.format in (element.alert.ERROR, element.alert.WARNING):
                        problems.append(f"{element.alert.title} {element.alert.body}".strip())
            elif kind == "page_not_found":
                raise SystemExit(f"page not found: {page_hash}")
            elif kind == "script_finished":
                if fwd.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                    raise SystemExit("the script did not compile")
                if fwd.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                    return Run(started, now, marks, problems)


def reply_words(tag: str, chunks: int) -> tuple[bytes, bytes]:
    """The first and the last word of the provider's reply to a message ending in ``tag``."""
    return f"{tag}w0 ".encode(), f"{tag}w{chunks - 1} ".encode()


async def raw_chat(client: Any, base_url: str, tag: str, chunks: int) -> Run:
    """The same reply straight from the provider with httpx: the times of its first and last words."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"Load test message {tag}"}], "stream": True,
            "stream_options": {"include_usage": True}}
    first, last = reply_words(tag, chunks)
    marks: dict[bytes, float] = {}
    sent = time.perf_counter()
    async with client.stream("POST", base_url + "/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {KEY}"}) as response:
        async for line in response.aiter_lines():
            now = time.perf_counter()
            raw = line.encode()
            for marker in (first, last):
                if marker not in marks and marker in raw:
                    marks[marker] = now
    return Run(sent, time.perf_counter(), marks, [])


# --- measurements -----------------------------------------------------------------------------


class Tags:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"q{self.n:07d}x"


async def warm_up(server: Server, cookies: list[str], chunks: int, tags: Tags) -> None:
    """On every replica, one person opens every page and sends a message (not measured): a server's
    first runs import the pages and fill its caches."""
    warmed: set[str] = set()
    for cookie in cookies:
        tab = Tab(server.url, cookie)
        await tab.open()
        if tab.upstream not in warmed:
            warmed.add(tab.upstream)
            for page in PAGE_CYCLE:
                await tab.switch(page)
            await tab.chat(tags(), chunks)
        await tab.close()
        if len(warmed) == len(server.procs):
            return
    raise SystemExit(f"nginx sent {len(cookies)} people to {len(warmed)} of {len(server.procs)} replicas")


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


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def added(seconds: float) -> str:
    return f"{seconds * 1000:+,.0f}"


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def top(values: list[float]) -> float:
    return max(values, default=float("nan"))


async def measure_level(server: Server, cookies: list[str], provider_url: str, args: argparse.Namespace,
                        n: int, tags: Tags, provider_pid: int) -> Level:
    import httpx

    level = Level(n)
    started, own, provider, served = time.monotonic(), time.process_time(), process_cpu(provider_pid), server.cpu()
    proxied = server.nginx_cpu()
    tabs = [Tab(server.url, cookie) for cookie in cookies[:n]]
    window = args.window

    async def phase(name: str, rounds: int, make: Any) -> tuple[list[Run], float]:
        server.mark(f"start n{n}-{name}")
        cpu = server.cpu()
        runs: list[Run] = []
        for _ in range(rounds):
            runs += await asyncio.gather(*(at_random_moment(window, make(tab)) for tab in tabs))
        used = server.cpu() - cpu
        server.mark("stop")
        runs = [r for r in runs if level.check(r)]
        return runs, used / max(1, len(runs))

    loads, level.cpu_load = await phase("load", 1, lambda tab: tab.open)
    level.loads = [r.seconds for r in loads]

    def switcher(tab: Tab) -> Any:
        def go() -> Any:
            current = next((name for name, h in tab.pages.items() if h == tab.page), "Chat")
            following = PAGE_CYCLE[(PAGE_CYCLE.index(current) + 1) % len(PAGE_CYCLE)] \
                if current in PAGE_CYCLE else "Search"
            return tab.switch(following)
        return go

    reruns, level.cpu_rerun = await phase("rerun", args.reruns, switcher)
    level.reruns = [r.seconds for r in reruns]
    for tab in tabs:  # every tab on the Chat page before the chats (not measured)
        if tab.page != tab.pages["Chat"]:
            await tab.switch("Chat")

    async with httpx.AsyncClient(timeout=TIMEOUT, limits=httpx.Limits(max_connections=200)) as client:
        server.mark(f"start n{n}-chat")
        cpu_chat, chats = 0.0, 0
        for _ in range(args.chats):
            cpu = server.cpu()
            chat_tags = [tags() for _ in tabs]
            runs = await asyncio.gather(*(at_random_moment(window, lambda tab=tab, tag=tag: tab.chat(tag, args.chunks))
                                          for tab, tag in zip(tabs, chat_tags, strict=True)))
            cpu_chat += server.cpu() - cpu
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
        server.mark("stop")
        level.cpu_chat = cpu_chat / max(1, chats)
    level.rss = server.rss_mb()
    wall = time.monotonic() - started
    own, provider = time.process_time() - own, process_cpu(provider_pid) - provider
    level.others = (f"N={n}: this client used {own / wall:.0%} of a core, the provider {provider / wall:.0%}, "
                    f"the server {(server.cpu() - served) / wall:.0%}"
                    + (f", nginx {(server.nginx_cpu() - proxied) / wall:.0%}" if server.nginx else "")
                    + f" (over the level's {wall:.0f} s, raw rounds included)")
    if server.nginx:
        spread = Counter(tab.upstream for tab in tabs)
        level.others += "; tabs per replica: " + ", ".join(f"{a} {c}" for a, c in sorted(spread.items()))
    for tab in tabs:
        await tab.close()
    return level


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


async def soak(server: Server, cookies: list[str], args: argparse.Namespace, minutes: float, tags: Tags) -> None:
    """People acting continuously; one line per minute with RSS, CPU and the minute's latencies."""
    stop_at = time.monotonic() + minutes * 60
    reruns: list[float] = []
    first_text: list[float] = []
    counts: Counter[str] = Counter()
    health = Level(len(cookies))  # failures and problems

    async def person(cookie: str) -> None:
        tab = Tab(server.url, cookie)
        await asyncio.sleep(random.uniform(0, args.window))
        await tab.open()
        counts["load"] += 1
        actions = 0
        while time.monotonic() < stop_at:
            await asyncio.sleep(random.uniform(0, args.window))
            actions += 1
            if actions % 25 == 0:  # close the tab, open a new one: a new Streamlit session
                await tab.close()
                tab = Tab(server.url, cookie)
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
                current = next((name for name, h in tab.pages.items() if h == tab.page), "Chat")
                page = random.choice([p for p in PAGE_CYCLE if p != current])
                run = await tab.switch(page)
                counts["rerun"] += 1
                if health.check(run):
                    reruns.append(run.seconds)
        await tab.close()

    async def report() -> None:
        started = time.monotonic()
        series = [server.rss_mb()]
        print(f"minute 0: RSS {series[0]:.0f} MB", flush=True)
        cpu = server.cpu()
        minute = 0
        while time.monotonic() < stop_at:
            await asyncio.sleep(max(0.0, started + (minute + 1) * 60 - time.monotonic()))
            minute += 1
            used, cpu = server.cpu() - cpu, server.cpu()
            rss = server.rss_mb()
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

    await asyncio.gather(report(), *(person(c) for c in cookies))


def main() -> None:
    if sys.argv[1:2] == ["--provider-server"]:
        serve_provider(int(sys.argv[2]), float(sys.argv[3]))
        return
    if sys.argv[1:2] == ["--serve-profiled"]:
        serve_profiled(sys.argv[2], sys.argv[5:], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--sessions", default="1,5,10,20", help="comma-separated numbers of people")
    parser.add_argument("--window", type=float, default=2.0,
                        help="seconds within which each person acts once per round (0: all at once)")
    parser.add_argument("--reruns", type=int, default=5, help="page-switch rounds per level")
    parser.add_argument("--chats", type=int, default=3, help="chat rounds per level (each with a raw round)")
    parser.add_argument("--chunks", type=int, default=40, help="text chunks per reply")
    parser.add_argument("--gap", type=float, default=0.025, help="seconds between chunks")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="a Streamlit option for the server (repeatable)")
    parser.add_argument("--profile", metavar="PATH", help="profile the server; reports at PATH-n<N>-<phase>.txt")
    parser.add_argument("--soak", type=float, metavar="MINUTES", help="continuous use by the largest N")
    parser.add_argument("--profile-clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: each thread's CPU time; wall: elapsed time, waits included")
    parser.add_argument("--app-dir", type=Path, default=ROOT,
                        help="run the app from this copy of the project (e.g. `git archive` of a commit, or a patch)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="app processes behind nginx with sticky sessions (needs --database-url)")
    parser.add_argument("--database-url", metavar="POSTGRESQL_URL",
                        help="run on PostgreSQL: the bench makes a database of its own on this server, and drops it")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.replicas > 1 and not args.database_url:
        parser.error("--replicas needs --database-url: replicas share one PostgreSQL database")
    if args.replicas > 1 and args.profile:
        parser.error("--profile profiles one process: leave out --replicas")
    sys.path.insert(0, str(args.app_dir.resolve()))
    random.seed(args.seed)
    levels = [int(n) for n in args.sessions.split(",")]

    with tempfile.TemporaryDirectory(prefix="byok-load-") as tmp, scratch_database(args.database_url) as database, \
            subprocess.Popen([sys.executable, __file__, "--provider-server", str(args.chunks), str(args.gap)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as provider:
        assert provider.stdout is not None and provider.stdin is not None
        provider_url = provider.stdout.readline().strip()
        server = Server(Path(tmp), provider_url, args.set, args.profile, args.app_dir.resolve(), args.profile_clock,
                        args.replicas, database)
        try:
            cookies = sign_in_people(server, max(levels))
            print(f"{sys.argv[0]} {' '.join(sys.argv[1:])}")
            print(f"app: {args.app_dir.resolve()} at {_commit(args.app_dir)}")
            processes = "one process" if args.replicas == 1 else f"{args.replicas} processes behind nginx"
            print(f"server: streamlit {_streamlit_version()} on 127.0.0.1, {processes}, "
                  f"{'PostgreSQL' if database else 'SQLite'}, "
                  f"{os.cpu_count()} CPUs; options: {' '.join(args.set) or '.streamlit/config.toml only'}; "
                  f"reply: {args.chunks} chunks {args.gap * 1000:.0f} ms apart; "
                  f"each person acts once within every {args.window:g} s", flush=True)
            tags = Tags()
            asyncio.run(warm_up(server, cookies, args.chunks, tags))
            if args.soak:
                asyncio.run(soak(server, cookies[:max(levels)], args, args.soak, tags))
            else:
                results = []
                for n in levels:
                    results.append(asyncio.run(measure_level(server, cookies, provider_url, args, n, tags,
                                                             provider.pid)))
                    print(f"N={n} done; server RSS {results[-1].rss:.0f} MB", file=sys.stderr, flush=True)
                print_table(results)
            console = server.stderr.read_text(errors="replace")
            if "Traceback" in console:
                print(f"the server's console shows {console.count('Traceback')} tracebacks; the first:")
                print(console[console.index("Traceback"):][:3000])
        finally:
            server.close()
            provider.stdin.close()


@contextmanager
def scratch_database(server_url: str | None) -> Iterator[str | None]:
    """A new, empty PostgreSQL database on ``server_url``'s server for this run (dropped at the end),
    as a URL; None without a server (the app's SQLite file)."""
    if server_url is None:
        yield None
        return
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"byok_load_{os.getpid()}"
    conninfo = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield make_url(conninfo).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _commit(app_dir: Path) -> str:
    """The app's git commit (and whether its tracked files differ), or what its copy says it is."""
    stamp = app_dir / "COMMIT"  # e.g. written next to a `git archive` copy
    if stamp.exists():
        return stamp.read_text().strip()
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=app_dir, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=app_dir,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return head + (" with uncommitted changes" if dirty else "")


def _streamlit_version() -> str:
    import streamlit

    return streamlit.__version__


if __name__ == "__main__":
    main()
