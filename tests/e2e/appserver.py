"""What the browser and websocket tests (and bench/load.py) share: the app started as `streamlit run
streamlit_app.py` on loopback, with a data folder and master key of its own; nginx in front of
replicas as deploy/run-replicas.sh runs it; waits on state (never fixed sleeps)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from ports import free_port

from byok_core.crypto import gen_key
from byok_core.providers import Provider

ROOT = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "e2e-metrics-token-3c9d1e7a"  # the shared server's (tests/e2e/conftest.py) /metrics token


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something true (each poll is itself a real check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def answers(url: str) -> bool:
    """Whether the app at ``url`` (its base path included) says it is healthy."""
    try:
        return httpx.get(url + "/_stcore/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class RunningApp:
    url: str
    port: int
    env: dict[str, str]  # the server's environment: open_runtime(env, migrate=False) reaches its database
    stderr: Path
    pid: int

    def setup_code(self) -> str:
        return str(wait_for(lambda: (m := re.search(r"setup code: (\S+)", self.stderr.read_text(errors="replace")))
                            and m.group(1), 60, "the setup code on the server's stderr"))


@contextmanager
def running_app(tmp: Path, base_path: str = "", *, app_dir: Path = ROOT, options: Sequence[str] = (),
                python: Sequence[str] = (sys.executable,), **extra_env: str) -> Iterator[RunningApp]:
    """`streamlit run streamlit_app.py` with nothing from this machine's provider or app settings;
    with ``base_path``, served under it (``server.baseUrlPath``) and ``url`` includes it.

    ``app_dir``: the copy of the project to run; ``options``: more Streamlit options
    (``runner.postScriptGC=true``); ``python``: what runs ``-m streamlit`` (an interpreter, or
    one wrapped in a profiler)."""
    machine = [v for p in Provider for v in (p.spec.key_env, p.spec.base_url_env) if v]
    env = {k: v for k, v in os.environ.items()
           if k not in machine and not k.startswith(("DATABASE_URL", "ENCRYPTION_KEY", "BYOK_", "STREAMLIT_"))}
    # The key watch's background rounds would reach the fakes at times no test chooses: tests check keys themselves.
    env |= {"BYOK_DATA_DIR": str(tmp / "data"), "ENCRYPTION_KEY": gen_key(), "BYOK_KEY_WATCH": "off", **extra_env}
    port = free_port()
    stderr = tmp / "stderr.log"
    with open(stderr, "wb") as err, open(tmp / "stdout.log", "wb") as out:
        proc = subprocess.Popen(
            [*python, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             *([f"--server.baseUrlPath={base_path}"] if base_path else []), *(f"--{o}" for o in options)],
            cwd=app_dir, env=env, stdout=out, stderr=err,
        )
    url = f"http://127.0.0.1:{port}" + (f"/{base_path}" if base_path else "")
    with _serving(proc, url, "the server", stderr):
        yield RunningApp(url, port, env, stderr, proc.pid)


@dataclass(frozen=True)
class Proxy:
    url: str
    pid: int  # nginx's master process (its workers are its children)


@contextmanager
def running_nginx(run: Path, upstreams: Sequence[str], nginx: str | None = None) -> Iterator[Proxy]:
    """nginx on loopback in front of ``upstreams`` (``127.0.0.1:PORT``) with sticky sessions:
    deploy/nginx.conf filled in by deploy/nginx_conf.py, as deploy/run-replicas.sh does;
    unprivileged, everything under ``run``."""
    spec = importlib.util.spec_from_file_location("nginx_conf", ROOT / "deploy" / "nginx_conf.py")
    assert spec is not None and spec.loader is not None  # deploy/ is not a package
    nginx_conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nginx_conf)
    port = free_port()
    conf = run / "nginx.conf"
    conf.write_text(nginx_conf.render(f"127.0.0.1:{port}", list(upstreams)))
    log = run / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([nginx or shutil.which("nginx") or "/usr/sbin/nginx", "-p", f"{run}/", "-c", str(conf)],
                                stdout=err, stderr=err)
    url = f"http://127.0.0.1:{port}"
    with _serving(proc, url, "nginx", log):
        yield Proxy(url, proc.pid)


@contextmanager
def _serving(proc: subprocess.Popen[bytes], url: str, what: str, log: Path) -> Iterator[None]:
    """Wait until ``proc`` answers at ``url`` (its ``log`` in the failure if it exits first); stop it at the end."""
    try:
        wait_for(lambda: proc.poll() is not None or answers(url), 60, f"{what} to answer")
        assert proc.poll() is None, f"{what} exited:\n{log.read_text(errors='replace')}"
        yield
    finally:
        proc.terminate()  # SIGTERM: nginx's fast shutdown (SIGQUIT would wait for open websockets)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
