"""Settings read once from the environment, and the Runtime every service works on (``startup`` opens it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from byok_core import db
from byok_core.crypto import Keyring
from byok_core.errors import ConfigError
from byok_core.masterkey import KeyringSource, load_keyring
from byok_core.providers import Provider
from byok_core.secret import Secret

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
CALL_DEADLINE = 600.0  # a streamed reply's whole time, however slowly its bytes come
_TRUE = {"1", "true", "yes", "on"}


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in _TRUE


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise ConfigError(f"{name} must be a number of seconds between 0 and 3600, not {raw!r}.")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from its environment, read once (``from_env``)."""

    data_dir: Path
    database_url: str
    allow_private_endpoints: bool = False
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    call_deadline: float = CALL_DEADLINE
    cookie_secure: bool = False
    debug: bool = False  # the byok command shows tracebacks of unexpected errors
    key_watch: bool = True  # the app checks every key once a day in the background (BYOK_KEY_WATCH=off: cron)
    base_urls: Mapping[Provider, str | None] = field(default_factory=dict)  # operator's endpoint per provider
    env_keys: Mapping[Provider, Secret] = field(default_factory=dict, repr=False)  # server-wide fallback keys
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)  # for the master key

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        data_dir = Path(env.get("BYOK_DATA_DIR") or "data")
        base_urls: dict[Provider, str | None] = {}
        env_keys: dict[Provider, Secret] = {}
        for p in Provider:
            spec = p.spec
            override = env.get(spec.base_url_env, "").strip() if spec.base_url_env else ""
            base_urls[p] = override.rstrip("/") if override else spec.default_base_url
            value = env.get(spec.key_env, "").strip() if spec.key_env else ""
            if value:
                env_keys[p] = Secret(value)
        return cls(
            data_dir=data_dir,
            database_url=env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'byok.db'}",
            allow_private_endpoints=_flag(env, "BYOK_ALLOW_PRIVATE_ENDPOINTS"),
            connect_timeout=_seconds(env, "BYOK_CONNECT_TIMEOUT", CONNECT_TIMEOUT),
            read_timeout=_seconds(env, "BYOK_READ_TIMEOUT", READ_TIMEOUT),
            call_deadline=_seconds(env, "BYOK_CALL_DEADLINE", CALL_DEADLINE),
            cookie_secure=_flag(env, "BYOK_COOKIE_SECURE"),
            debug=_flag(env, "BYOK_DEBUG"),
            key_watch=env.get("BYOK_KEY_WATCH", "on").strip().lower() not in {"0", "false", "no", "off"},
            base_urls=base_urls,
            env_keys=env_keys,
            environ=env,
        )


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    keyring: Keyring
    keyring_source: KeyringSource
    # Small facts a page run reads often and may see a few seconds late (currency.current), by name:
    # (time.monotonic() when read, value).
    memo: dict[str, tuple[float, Any]] = field(default_factory=dict, repr=False, compare=False)


def connect(settings: Settings, *, starting_over: bool = False) -> Runtime:
    """Load the master key and connect to the database (``startup.open_runtime`` also migrates and
    does the start-up chores). A missing key file is made only while the database holds no sealed
    value, unless ``starting_over`` (see ``startup.open_runtime``)."""
    from byok_core import vault

    engine = db.create_engine(settings.database_url)
    held = (lambda: 0) if starting_over else (lambda: sum(vault.sealed_key_ids(engine).values()))
    source = load_keyring(settings.environ, settings.data_dir, held)
    return Runtime(settings, engine, source.keyring, source)
