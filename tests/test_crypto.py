"""Encryption at rest (``crypto``): AES-256-GCM values that fail on any change or move."""

from __future__ import annotations

import base64
import re
import stat
from pathlib import Path

import pytest

from byok_core.crypto import DOCUMENTED_KEYS, Keyring, MasterKey, gen_key, parse_master_key
from byok_core.errors import ConfigError, DecryptionError
from byok_core.masterkey import load_keyring
from byok_core.secret import Secret

PLAIN = "sk-fake.proj-plaintext-secret-0123456789"
CTX = "user:1|openai|row1"


@pytest.fixture
def ring() -> Keyring:
    return Keyring(MasterKey.from_bytes(bytes.fromhex(gen_key())))


def _flip(token: str, byte_index: int, bit: int) -> str:
    head, kid, body = token.split(":")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[byte_index] ^= 1 << bit
    return f"{head}:{kid}:{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"


def test_round_trip_and_format(ring):
    token = ring.encrypt(PLAIN, CTX)
    assert re.fullmatch(r"v2:[0-9a-f]{12}:[A-Za-z0-9_-]+", token)
    assert token.split(":")[1] == ring.primary.key_id
    assert PLAIN not in token
    assert ring.decrypt(token, CTX) == PLAIN


def test_same_plaintext_gives_distinct_values(ring):
    assert len({ring.encrypt(PLAIN, CTX) for _ in range(50)}) == 50


def test_every_flipped_bit_fails(ring):
    token = ring.encrypt("k", CTX)  # 12 nonce + 1 body + 16 tag bytes
    for index in range(12 + 1 + 16):
        for bit in range(8):
            with pytest.raises(DecryptionError):
                ring.decrypt(_flip(token, index, bit), CTX)


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-5],  # truncated
    lambda t: t.split(":")[0] + ":" + t.split(":")[1] + ":" + "AAAA",  # too short
    lambda t: "v9" + t[2:],  # unknown version
    lambda t: "v1" + t[2:],  # relabelled as the older format: the header is bound in the associated data
    lambda t: t.replace(t.split(":")[1], "0" * 12),  # unknown key id
    lambda t: t.replace(":", "", 1),  # no header
    lambda t: t + "!!",  # not base64url
    lambda t: "",
])
def test_malformed_values_fail_with_one_error_type(ring, mangle):
    with pytest.raises(DecryptionError) as info:
        ring.decrypt(mangle(ring.encrypt(PLAIN, CTX)), CTX)
    assert PLAIN not in str(info.value)


@pytest.mark.parametrize("other", ["user:2|openai|row1", "user:1|anthropic|row1", "user:1|openai|row2",
                                   "team:0|openai|row1"])
def test_value_moved_to_another_owner_provider_or_row_fails(ring, other):
    with pytest.raises(DecryptionError):
        ring.decrypt(ring.encrypt(PLAIN, CTX), other)


def test_wrong_master_key_fails(ring):
    other = Keyring(MasterKey.from_bytes(bytes.fromhex(gen_key())))
    token = ring.encrypt(PLAIN, CTX)
    with pytest.raises(DecryptionError):
        other.decrypt(token, CTX)
    # Same key id forged onto a different key: authentication still fails.
    forged = Keyring(MasterKey(ring.primary.key_id, other.primary.aead))
    with pytest.raises(DecryptionError):
        forged.decrypt(token, CTX)


def test_fallback_keys_decrypt_but_never_encrypt():
    old, new = gen_key(), gen_key()
    old_ring = Keyring(parse_master_key(old, "old"))
    token = old_ring.encrypt(PLAIN, CTX)
    ring = Keyring(parse_master_key(new, "new"), [parse_master_key(old, "old")])
    assert ring.decrypt(token, CTX) == PLAIN
    assert ring.needs_rotation(token)
    assert ring.encrypt(PLAIN, CTX).split(":")[1] == ring.primary.key_id != old_ring.primary.key_id


@pytest.mark.parametrize("value", ["a" * 63, "b" * 65, "z" * 64, "", "   ", "0x" + "1" * 62])
def test_malformed_master_keys_are_refused_with_a_hint(tmp_path, value):
    with pytest.raises(ConfigError) as info:
        load_keyring({"ENCRYPTION_KEY": value}, tmp_path)
    assert "byok gen-key" in str(info.value)
    if value.strip():
        assert value not in str(info.value)


def test_documented_keys_are_refused(tmp_path):
    documented = set(re.findall(r"\b[0-9a-fA-F]{64}\b", (Path(__file__).parents[1] / "README.md").read_text()))
    assert documented, "the README shows an example ENCRYPTION_KEY; it must be refused"
    for value in documented | DOCUMENTED_KEYS:
        with pytest.raises(ConfigError, match="example key"):
            load_keyring({"ENCRYPTION_KEY": value}, tmp_path)


def test_key_file_and_fallbacks_from_environment(tmp_path):
    key, old = gen_key(), gen_key()
    path = tmp_path / "k"
    path.write_text(key + "\n")
    source = load_keyring({"ENCRYPTION_KEY_FILE": str(path), "ENCRYPTION_KEY_FALLBACKS": f"{old}, "}, tmp_path)
    assert source.keyring.primary.key_id == parse_master_key(key, "x").key_id
    assert parse_master_key(old, "x").key_id in source.keyring.key_ids
    with pytest.raises(ConfigError, match="FALLBACKS"):
        load_keyring({"ENCRYPTION_KEY": key, "ENCRYPTION_KEY_FALLBACKS": "nothex"}, tmp_path)
    with pytest.raises(ConfigError, match="Cannot read"):
        load_keyring({"ENCRYPTION_KEY_FILE": str(tmp_path / "missing")}, tmp_path)


def test_embedded_default_creates_a_private_key_file_once(tmp_path, capsys):
    data = tmp_path / "data"
    first = load_keyring({}, data)
    assert first.created_file == data / "master.key"
    assert stat.S_IMODE((data / "master.key").stat().st_mode) == 0o600
    assert "BACK IT UP" in capsys.readouterr().err
    second = load_keyring({}, data)
    assert second.created_file is None
    assert second.keyring.primary.key_id == first.keyring.primary.key_id


def test_secret_never_shows_the_key():
    secret = Secret(PLAIN)
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret, repr([secret])):  # noqa: UP031 (%-formatting is what is tested)
        assert PLAIN not in text and PLAIN[-8:] not in text
    assert secret.reveal() == PLAIN
    assert secret.mask == "sk-…6789"
    with pytest.raises(TypeError):
        __import__("pickle").dumps(secret)


def test_keyring_repr_shows_ids_only(ring):
    assert repr(ring) == f"Keyring(primary={ring.primary.key_id!r}, keys={[ring.primary.key_id]!r})"
    assert repr(ring.primary) == f"MasterKey(key_id={ring.primary.key_id!r})"
