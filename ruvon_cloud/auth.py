"""Request authentication: key id lookup, signature, timestamp window, single-use nonces.

Device secrets are never stored. Each is derived from a server master key::

    secret = HMAC-SHA256(master_key, "ruvon-cloud/device-secret/v1\\n{key_id}\\n{device_id}")

so the store holds only ``key_id -> device_id`` (nothing an attacker who reads
the database can sign with), HMAC verification can still recompute the
secret, and revoking a key is deleting its row. The master key lives in a file
created on first use with mode 0600 (or handed over by systemd's
``LoadCredential=``); losing it invalidates every device key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ruvon_cloud.store import sqlite_path
from sync_agent import protocol

if TYPE_CHECKING:
    from ruvon_cloud.store import Store

MASTER_KEY_CREDENTIAL = "ruvon-cloud-master-key"


class AuthError(Exception):
    """The request is not authentic; ``status`` is 401 or 403 and ``reason`` is safe to return."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status}: {reason}")


class KeyRing:
    """Derives device secrets from the server master key."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) < 32:
            raise ValueError("master key must be at least 32 bytes")
        self._master = master_key

    def __repr__(self) -> str:
        return "KeyRing(master_key=***)"

    @classmethod
    def from_file(cls, path: str | Path) -> KeyRing:
        """Load the master key, creating it (0600, 32 random bytes, hex) when the file is absent."""
        path = Path(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
        text = path.read_text().strip()
        try:
            return cls(bytes.fromhex(text))
        except ValueError:
            raise ValueError(f"{path}: master key is not 64+ hex characters") from None

    def new_key_id(self) -> str:
        """Return a fresh, unguessable key id."""
        return "rk_" + secrets.token_hex(12)

    def secret_for(self, key_id: str, device_id: str) -> str:
        """Return the shared secret of ``key_id`` (bound to ``device_id``)."""
        msg = f"ruvon-cloud/device-secret/v1\n{key_id}\n{device_id}".encode()
        return hmac.new(self._master, msg, hashlib.sha256).hexdigest()


def default_master_key_path(store_url: str) -> Path:
    """Return where the master key lives: $CREDENTIALS_DIRECTORY, env, beside a SQLite store, or ./."""
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / MASTER_KEY_CREDENTIAL).exists():
        return Path(creds) / MASTER_KEY_CREDENTIAL
    if env := os.environ.get("RUVON_CLOUD_MASTER_KEY_FILE"):
        return Path(env)
    if store_url.startswith("sqlite:"):
        return Path(sqlite_path(store_url) + ".master-key")
    return Path("ruvon-cloud.master-key")


@dataclass(frozen=True)
class Verified:
    """Who sent an authentic request."""

    key_id: str
    device_id: str


async def authenticate(
    store: Store, keyring: KeyRing, headers: dict[str, str], device_id: str, path: str, body: bytes
) -> Verified:
    """Check key id, timestamp window, signature and nonce, in that order; raise ``AuthError``."""
    key_id = headers.get(protocol.H_KEY_ID.lower(), "")
    timestamp = headers.get(protocol.H_TIMESTAMP.lower(), "")
    nonce = headers.get(protocol.H_NONCE.lower(), "")
    signature = headers.get(protocol.H_SIGNATURE.lower(), "")
    if not (key_id and timestamp and nonce and signature):
        raise AuthError(401, "missing signature headers")
    if len(nonce) > 128 or len(key_id) > 128:
        raise AuthError(401, "malformed signature headers")
    owner = await store.device_for_key(key_id)
    if owner is None:
        raise AuthError(401, "unknown key id")
    if not protocol.timestamp_fresh(timestamp):
        raise AuthError(401, "timestamp outside the allowed window")
    secret = keyring.secret_for(key_id, owner)
    if not protocol.verify_signature(secret, signature, timestamp, nonce, "POST", path, body):
        raise AuthError(401, "bad signature")
    if owner != device_id:
        raise AuthError(403, "key does not belong to this device")
    if not await store.use_nonce(key_id, nonce, int(timestamp)):
        raise AuthError(401, "nonce already used (replay)")
    return Verified(key_id, owner)
