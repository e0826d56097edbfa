"""Fill in deploy/nginx.conf for a private nginx in front of BYOK Dashboard replicas.

    python deploy/nginx_conf.py --listen 8080 --upstream 127.0.0.1:8501 --upstream 127.0.0.1:8502 > RUN/nginx.conf
    nginx -p RUN/ -c RUN/nginx.conf

Standard library only (deploy/run-replicas.sh and tests/e2e/test_replicas.py both use it).
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import sys
from collections.abc import Sequence
from pathlib import Path

TEMPLATE = Path(__file__).resolve().with_name("nginx.conf")
_ADDRESS = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}")
_LISTEN = re.compile(r"(?:(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):)?\d{1,5}")


def render(listen: str, upstreams: Sequence[str], *, max_fails: int = 1, fail_timeout: int = 10) -> str:
    """The template with its placeholders filled: ``listen`` is ``PORT`` or ``HOST:PORT``, each
    upstream ``HOST:PORT`` of one replica."""
    if not _LISTEN.fullmatch(listen):
        raise ValueError(f"--listen must be PORT or HOST:PORT, not {listen!r}")
    if not upstreams:
        raise ValueError("give at least one --upstream HOST:PORT")
    for address in upstreams:
        if not _ADDRESS.fullmatch(address):
            raise ValueError(f"--upstream must be HOST:PORT, not {address!r}")
    servers = "\n".join(f"        server {a} max_fails={max_fails} fail_timeout={fail_timeout}s;" for a in upstreams)
    # As root, nginx would start its workers as the compiled-in user (www-data on Debian), which
    # cannot enter a private run folder; run them as the user who starts this instance instead.
    if os.geteuid() == 0:
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};"
    else:
        user = "# (no `user`: not started as root, the workers run as the current user)"
    text = TEMPLATE.read_text()
    for name, value in (("{{USER}}", user), ("{{SERVERS}}", servers), ("{{LISTEN}}", listen)):
        assert text.count(name) == 1, f"{TEMPLATE} should hold {name} once"
        text = text.replace(name, value)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="PORT or HOST:PORT nginx listens on")
    parser.add_argument("--upstream", action="append", default=[], help="HOST:PORT of one replica (repeat)")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render(args.listen, args.upstream))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
