"""What the browser and websocket tests share: the app started as `streamlit run streamlit_app.py`
on loopback, with a data folder and master key of its own, and waits on state (never fixed sleeps)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from byok_core.crypto import gen_key
from byok_core.providers import Provider

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

    def setup_code(self) -> str:
        return str(wait_for(lambda: (m := re.search(r"setup code: (\S+)", self.stderr.read_text(errors="replace")))
                            and m.group(1), 60, "the setup code on the server's stderr"))


@contextmanager
def running_app(tmp: Path, base_path: str = "", **extra_env: str) -> Iterator[RunningApp]:
    """`streamlit run streamlit_app.py` with nothing from this machine's provider or app settings;
    with ``base_path``, served under it (``server.baseUrlPath``) and ``url`` includes it."""
    machine = [v for p in Provider for v in (p.spec.key_env, p.spec.base_url_env) if v]
    env = {k: v for k, v in os.environ.items()
           if k not in machine and not k.startswith(("DATABASE_URL", "ENCRYPTION_KEY", "BYOK_", "STREAMLIT_"))}
    env |= {"BYOK_DATA_DIR": str(tmp / "data"), "ENCRYPTION_KEY": gen_key(), **extra_env}
    port = free_port()
    stderr = tmp / "stderr.log"
    with open(stderr, "wb") as err, open(tmp / "stdout.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             *([f"--server.baseUrlPath={base_path}"] if base_path else [])],
            cwd=ROOT, env=env, stdout=out, stderr=err,
        )
    try:
        url = f"http://127.0.0.1:{port}" + (f"/{base_path}" if base_path else "")
        wait_for(lambda: proc.poll() is not None or answers(url), 60, "the server to answer")
        assert proc.poll() is None, f"the server exited:\n{stderr.read_text(errors='replace')}"
        yield RunningApp(url, port, env, stderr)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
