"""Settings from the environment, and the Runtime every service works on (engine + keyring)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from sqlalchemy.engine import Engine

from byok_core import db
from byok_core.crypto import Keyring, KeyringSource, load_keyring


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    allow_private_endpoints: bool
    environ: Mapping[str, str] = field(repr=False)  # for provider key and base-URL fallbacks

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = dict(os.environ if environ is None else environ)
        data_dir = Path(env.get("BYOK_DATA_DIR") or "data")
        url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'byok.db'}"
        return cls(
            data_dir=data_dir,
            database_url=url,
            allow_private_endpoints=env.get("BYOK_ALLOW_PRIVATE_ENDPOINTS", "") in {"1", "true", "yes"},
            environ=env,
        )


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    keyring: Keyring
    keyring_source: KeyringSource

    @property
    def environ(self) -> Mapping[str, str]:
        return self.settings.environ


def open_runtime(environ: Mapping[str, str] | None = None, *, migrate: bool = True) -> Runtime:
    """Load the master key, connect to the database and apply pending migrations."""
    settings = Settings.from_env(environ)
    source = load_keyring(settings.environ, settings.data_dir)
    engine = db.create_engine(settings.database_url)
    if migrate:
        db.upgrade(engine)
    return Runtime(settings, engine, source.keyring, source)
