"""Many people on one app server: page loads, page switches and streamed chat replies, driven
through the real Streamlit server with the websocket protocol a browser speaks.

    python bench/load.py [--sessions 1,5,10,20] [--window 2] [--reruns 5] [--chats 3]
                         [--chunks 40] [--gap 0.025] [--set runner.postScriptGC=true ...]
                         [--app-dir DIR] [--profile /tmp/load [--profile-clock wall]]
                         [--database-url postgresql://... [--replicas 2]]
    python bench/load.py --soak 30 --sessions 20 > /tmp/soak.txt

Set-up, in a temporary folder and with nothing from this machine's configuration: ``streamlit
run streamlit_app.py`` on loopback, started as the browser tests start it (tests/e2e/appserver.py;
``--app-dir``: from another copy of the project, e.g. a ``git archive`` of a commit, or one with a
patch to try) with a fresh SQLite database and master key, a team OpenAI key stored in it, and
``OPENAI_BASE_URL`` pointing at a loopback provider in a process of its own (so that it competes
with neither the server's GIL nor this one's; bench/loadlib/provider.py). The provider speaks
OpenAI's streaming format and sends a reply's first word at once, then one more every ``--gap``
seconds (``--chunks`` words: 40 x 25 ms, about 1 s, by default).

``--database-url`` runs the app on PostgreSQL instead, in a database the bench makes on that server
for the run and drops afterwards. ``--replicas N`` starts N app processes on that database behind a
private nginx with sticky sessions (deploy/nginx.conf, as deploy/run-replicas.sh runs it); the tabs
connect through nginx, each with its own routing cookie, as browsers do. The server's CPU and RSS
are then the replicas' together; nginx's CPU and how many tabs each replica served are listed under
the table. Every replica is warmed up before measuring.

Every person is a member, signed in the way the browser is: a one-time ticket POSTed to
``/byok/session`` with the browser's binding secret gives the ``byok_session`` cookie, which goes
with the websocket handshake (``Origin``: the app's own). Each tab then speaks Streamlit's protocol
on ``/_stcore/stream`` with the websocket tests' client (tests/e2e/wsclient.py): one
``BackMsg.rerun_script`` per action (page hash, query string, widget states), ``ForwardMsg``s back
until ``script_finished``; a new tab's first run asks its page for the binding secret, and the
tab's answer runs the page again, signed in. A chat message is the chat input's widget state (its
id read from the Chat page the server drew) holding the prompt, as the browser sends it; the
page's query string (``?c=<conversation>``) is sent back as the browser's URL would.

For each N in ``--sessions``, N people are connected at once, and in every round each of them does
one action at a random moment within a ``--window``-second window (``--window 0``: all at the same
instant, the worst case); a round ends when every action has finished. Measured per N:

* first load: opening the websocket → the ``script_finished`` of the Chat page signed in (the
  probe's run and the one its answer starts);
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
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from loadlib.provider import running_provider

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
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
    app_dir = args.app_dir.resolve()
    sys.path[:0] = [str(app_dir), str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]  # its byok_core, the tests' helpers
    from loadlib.measure import Tags, measure_level, warm_up
    from loadlib.people import sign_in_people
    from loadlib.report import print_table
    from loadlib.servers import running_servers, scratch_database
    from loadlib.soak import soak

    random.seed(args.seed)
    levels = [int(n) for n in args.sessions.split(",")]
    with tempfile.TemporaryDirectory(prefix="byok-load-") as tmp, scratch_database(args.database_url) as database, \
            running_provider(args.chunks, args.gap) as (provider_url, provider_pid), \
            running_servers(Path(tmp), provider_url, args.set, app_dir, args.replicas, database, args.profile,
                            args.profile_clock) as servers:
        people = sign_in_people(servers, max(levels))
        print(f"{sys.argv[0]} {' '.join(sys.argv[1:])}")
        print(f"app: {app_dir} at {_commit(app_dir)}")
        processes = "one process" if args.replicas == 1 else f"{args.replicas} processes behind nginx"
        print(f"server: streamlit {_streamlit_version()} on 127.0.0.1, {processes}, "
              f"{'PostgreSQL' if database else 'SQLite'}, "
              f"{os.cpu_count()} CPUs; options: {' '.join(args.set) or '.streamlit/config.toml only'}; "
              f"reply: {args.chunks} chunks {args.gap * 1000:.0f} ms apart; "
              f"each person acts once within every {args.window:g} s", flush=True)
        tags = Tags()
        asyncio.run(warm_up(servers, people, args.chunks, tags))
        if args.soak:
            asyncio.run(soak(servers, people[:max(levels)], args, args.soak, tags))
        else:
            results = []
            for n in levels:
                results.append(asyncio.run(measure_level(servers, people, provider_url, args, n, tags, provider_pid)))
                print(f"N={n} done; server RSS {results[-1].rss:.0f} MB", file=sys.stderr, flush=True)
            print_table(results)
        console = servers.console()
        if "Traceback" in console:
            print(f"the server's console shows {console.count('Traceback')} tracebacks; the first:")
            print(console[console.index("Traceback"):][:3000])


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
