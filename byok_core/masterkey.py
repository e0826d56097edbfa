"""Loading the master keys: ``ENCRYPTION_KEY``, else ``ENCRYPTION_KEY_FILE``, else the embedded
default, a key file in the data folder that the first start creates, never over existing data."""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from byok_core.crypto import Keyring, gen_key, parse_master_key
from byok_core.errors import MasterKeyError

log = logging.getLogger(__name__)

KEY_FILE_NAME = "master.key"
FORGET_HINT = ("To give up what no configured key opens and start over, run `byok forget-unreadable-keys` "
               "(it deletes those values and, where none is configured, makes a new master key).")


@dataclass(frozen=True)
class KeyringSource:
    keyring: Keyring
    description: str  # where the primary key came from, for `byok doctor`
    created_file: Path | None = None  # set when this start created the embedded key file
    warning: str | None = None  # the key file can be read by other users of this machine


def load_keyring(environ: Mapping[str, str], data_dir: Path,
                 sealed_values: Callable[[], int] = lambda: 0) -> KeyringSource:
    """The configured keys. A missing embedded key file is created only while ``sealed_values()``
    (how many values the database holds sealed by some master key) is 0: a new key would open none."""
    created = None
    key_file = None
    if environ.get("ENCRYPTION_KEY", "") != "" and environ.get("ENCRYPTION_KEY_FILE", ""):
        raise MasterKeyError("Set only one of ENCRYPTION_KEY and ENCRYPTION_KEY_FILE, not both.")
    if "ENCRYPTION_KEY" in environ:
        primary = parse_master_key(environ["ENCRYPTION_KEY"], "ENCRYPTION_KEY")
        description = "ENCRYPTION_KEY"
    elif environ.get("ENCRYPTION_KEY_FILE"):
        key_file = Path(environ["ENCRYPTION_KEY_FILE"])
        primary = parse_master_key(_read_key_file(key_file, "ENCRYPTION_KEY_FILE"),
                                   f"ENCRYPTION_KEY_FILE ({key_file})")
        description = f"ENCRYPTION_KEY_FILE ({key_file})"
    else:
        key_file = data_dir / KEY_FILE_NAME
        if not key_file.exists():
            held = sealed_values()
            if held:
                raise MasterKeyError(
                    f"The master key file {key_file} is missing, but the database holds {held} value(s) sealed "
                    f"with a master key: restore {key_file} from your backup (or set ENCRYPTION_KEY to the key "
                    f"they were sealed with). {FORGET_HINT}")
            created = _create_key_file(key_file)
        primary = parse_master_key(_read_key_file(key_file, str(key_file)), str(key_file))
        description = f"generated key file {key_file}"
    fallbacks = [
        parse_master_key(part, f"ENCRYPTION_KEY_FALLBACKS entry {i}")
        for i, part in enumerate(environ.get("ENCRYPTION_KEY_FALLBACKS", "").split(","), start=1)
        if part.strip()
    ]
    warning = _readable_by_others(key_file) if key_file is not None else None
    if warning:
        log.warning("%s", warning)
    return KeyringSource(Keyring(primary, fallbacks), description, created, warning)


def _read_key_file(path: Path, source: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise MasterKeyError(f"Cannot read the master key file {source}: {exc.strerror}.") from None


def _readable_by_others(path: Path) -> str | None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o077:
        return None
    return (f"The master key file {path} can be read by other users of this machine (mode {mode:04o}): "
            f"run `chmod 600 {path}`.")


def _create_key_file(path: Path) -> Path | None:
    """Write a new key to a private temporary file, then link it into place, so a crash or a full
    disk never leaves a half-written key, and two processes starting together share one key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(gen_key() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError:  # another process created it first: use theirs
        return None
    finally:
        tmp.unlink(missing_ok=True)
    print(
        "\n" + "!" * 78 + f"\n  BYOK: created a new master key at {path.resolve()}\n"
        "  Every stored API key is encrypted with it. BACK IT UP somewhere safe: without it\n"
        "  the stored keys cannot be decrypted. For production set ENCRYPTION_KEY instead.\n"
        + "!" * 78 + "\n",
        file=sys.stderr,
    )
    return path
