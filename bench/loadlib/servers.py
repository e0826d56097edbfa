"""The app's processes the bench puts people on, started by the tests' own helpers
(tests/e2e/appserver.py): one ``streamlit run streamlit_app.py``, or replicas on one PostgreSQL
database behind nginx with sticky sessions; their CPU and RSS from /proc; a scratch PostgreSQL
database for a run."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from appserver import Proxy, RunningApp, running_app, running_nginx

from byok_core.crypto import gen_key
from loadlib.profiler import ProfileSwitch, process_cpu

PROFILER = Path(__file__).with_name("profiler.py")


@dataclass(frozen=True)
class Servers:
    apps: list[RunningApp]
    proxy: Proxy | None  # nginx, in front of replicas
    profile: ProfileSwitch | None

    @property
    def url(self) -> str:
        """Where the people's tabs connect: nginx's address with replicas, else the app's."""
        return self.proxy.url if self.proxy else self.apps[0].url

    def cpu(self) -> float:
        """Seconds of CPU (user + system) the app's processes have used so far."""
        return sum(process_cpu(app.pid) for app in self.apps)

    def nginx_cpu(self) -> float:
        """nginx's CPU, its master and workers (0 without replicas)."""
        if self.proxy is None:
            return 0.0
        pid = self.proxy.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sum(process_cpu(p) for p in [pid, *map(int, children)])

    def rss_mb(self) -> float:
        total = 0.0
        for app in self.apps:
            for line in Path(f"/proc/{app.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        return total

    def mark(self, command: str) -> None:
        """Start (``start LABEL``) or stop (``stop``) a profile section, when profiling."""
        if self.profile is not None:
            self.profile.mark(command)

    def console(self) -> str:
        """What the app's processes wrote to stderr."""
        return "".join(app.stderr.read_text(errors="replace") for app in self.apps)


@contextmanager
def running_servers(tmp: Path, provider_url: str, options: Sequence[str], app_dir: Path, replicas: int = 1,
                    database_url: str | None = None, profile: str | None = None,
                    profile_clock: str = "cpu") -> Iterator[Servers]:
    """``replicas`` app processes from ``app_dir`` with the Streamlit ``options`` (``NAME=VALUE``),
    each with a data folder of its own under ``tmp`` and the same master key, OpenAI at
    ``provider_url``, on ``database_url`` (else SQLite); more than one behind nginx. ``profile``:
    each runs under the profiler (bench/loadlib/profiler.py) writing ``profile-LABEL.txt``."""
    env = {"ENCRYPTION_KEY": gen_key(), "OPENAI_BASE_URL": provider_url,
           **({"DATABASE_URL": database_url} if database_url else {})}
    python = [sys.executable] if profile is None else [sys.executable, str(PROFILER), profile, profile_clock, "--"]
    with ExitStack() as stack:
        apps = []
        for n in range(1, replicas + 1):
            os.mkdir(tmp / f"app-{n}")
            apps.append(stack.enter_context(running_app(tmp / f"app-{n}", app_dir=app_dir, options=options,
                                                        python=python, **env)))
        proxy = None
        if replicas > 1:
            os.mkdir(tmp / "nginx")
            proxy = stack.enter_context(running_nginx(tmp / "nginx", [f"127.0.0.1:{app.port}" for app in apps]))
        yield Servers(apps, proxy, ProfileSwitch(profile) if profile else None)


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
