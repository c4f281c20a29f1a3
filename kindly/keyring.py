"""Keys for personal data at rest: AES-GCM encryption with key ids, and a keyed hash for lookups.

One ``KeyRing`` serves the Temporal payload codec (``kindly.codec``) and the encrypted phone numbers in
the application database. Encryption always uses the *current* key; decryption finds the key by the
id stored with the ciphertext, so rotating means: add a new key, make it current, keep the old ones
until nothing encrypted with them is left (closed workflows past retention, re-encrypted rows).

Keys come from settings (``COLLECTIONS_ENCRYPTION_KEYS`` as JSON ``{"key-id": "<base64 of 32 bytes>"}``
and ``COLLECTIONS_ENCRYPTION_KEY_ID``). Without them the development key ring in ``.data/keys.json``
(mode 0600) is used, which only the development stack creates (``make run``, ``worker.py --dev``:
``ensure_development_keys``). Any other process without keys refuses to start rather than invent
keys of its own: a CLI with its own ring would send signals the workers cannot decrypt. Production
sets the keys explicitly (a secret store, Kubernetes secret, …).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kindly.errors import ConfigurationError, DecryptionError
from kindly.settings import Settings

logger = logging.getLogger(__name__)

NONCE_BYTES = 12
KEY_BYTES = 32


@dataclass(frozen=True)
class KeyRing:
    """AES-256-GCM keys by id; ``current_id`` encrypts, every key decrypts."""

    keys: dict[str, bytes]
    current_id: str
    hash_key: bytes

    def __post_init__(self) -> None:
        if self.current_id not in self.keys:
            raise ConfigurationError(f"encryption_key_id {self.current_id!r} is not among encryption_keys")
        for key_id, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise ConfigurationError(
                    f"encryption_keys[{key_id!r}] must be {KEY_BYTES} bytes (base64), got {len(key)}"
                )

    def encrypt(self, plaintext: bytes, associated_data: bytes = b"") -> tuple[str, bytes]:
        """(key id, nonce + ciphertext) under the current key."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current_id]).encrypt(nonce, plaintext, associated_data)
        return self.current_id, nonce + sealed

    def decrypt(self, key_id: str, data: bytes, associated_data: bytes = b"") -> bytes:
        key = self.keys.get(key_id)
        if key is None:
            raise DecryptionError(f"unknown encryption key id {key_id!r}")
        try:
            return AESGCM(key).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], associated_data)
        except Exception as err:  # cryptography raises InvalidTag without a message
            raise DecryptionError(f"ciphertext does not open with key {key_id!r}") from err

    def seal_text(self, text: str) -> str:
        """``<key id>:<base64(nonce + ciphertext)>``: a text column's encrypted form."""
        key_id, data = self.encrypt(text.encode())
        return f"{key_id}:{base64.b64encode(data).decode()}"

    def open_text(self, sealed: str) -> str:
        key_id, _, data = sealed.partition(":")
        return self.decrypt(key_id, base64.b64decode(data)).decode()

    def lookup_hash(self, value: str) -> str:
        """Keyed hash (HMAC-SHA256, hex) for equality lookups without storing the value in clear."""
        return hmac.new(self.hash_key, value.encode(), hashlib.sha256).hexdigest()


def generate_key() -> str:
    """A new random key, base64, for ``encryption_keys`` or ``lookup_hash_key``."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def _decode(name: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as err:
        raise ConfigurationError(f"{name} is not valid base64") from err


def load_keyring(settings: Settings) -> KeyRing:
    """The key ring the settings describe, or the development ring in ``settings.dev_keys_file``."""
    if settings.encryption_keys:
        if settings.lookup_hash_key is None:
            raise ConfigurationError("lookup_hash_key is required when encryption_keys are set")
        keys = {
            key_id: _decode(f"encryption_keys[{key_id!r}]", secret.get_secret_value())
            for key_id, secret in settings.encryption_keys.items()
        }
        current = settings.encryption_key_id or next(iter(keys))
        hash_key = _decode("lookup_hash_key", settings.lookup_hash_key.get_secret_value())
        return KeyRing(keys=keys, current_id=current, hash_key=hash_key)
    return _development_keyring(settings.dev_keys_file)


def ensure_development_keys(settings: Settings) -> None:
    """Create the development key ring in ``settings.dev_keys_file`` unless keys are configured or
    the file exists: only the local development stack calls this."""
    path = settings.dev_keys_file
    if settings.encryption_keys or path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"current": "dev-1", "keys": {"dev-1": generate_key()}, "lookup_hash_key": generate_key()}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process of the stack made it first
    with os.fdopen(fd, "w") as handle:
        json.dump(content, handle)
    logger.warning("no encryption keys configured: created a development key ring in %s", path)


def _development_keyring(path: Path) -> KeyRing:
    if not path.exists():
        raise ConfigurationError(
            "no encryption keys configured: set COLLECTIONS_ENCRYPTION_KEYS, COLLECTIONS_ENCRYPTION_KEY_ID "
            f"and COLLECTIONS_LOOKUP_HASH_KEY (the same as the workers'), or start the development stack "
            f"(make run) which creates {path}"
        )
    stored = json.loads(path.read_text())
    return KeyRing(
        keys={key_id: _decode(f"{path}: keys", value) for key_id, value in stored["keys"].items()},
        current_id=stored["current"],
        hash_key=_decode(f"{path}: lookup_hash_key", stored["lookup_hash_key"]),
    )
