"""Request authentication: key id lookup, timestamp window, signature, single-use nonces.

Device secrets are never stored. Each is derived from a server master key::

    secret = HMAC-SHA256(master_key, "ruvon-cloud/device-secret/v1\\n{key_id}\\n{device_id}")

so the store holds only ``key_id -> device_id`` (nothing an attacker who reads
the database can sign with), HMAC verification can still recompute the
secret, and revoking a key is marking its row. The master key lives in a file
created 0600 by the first ``add-device`` (or handed over by systemd's
``LoadCredential=``); losing it invalidates every device key. The store keeps
the key's *fingerprint* (a one-way digest), so a command run with another key
is refused instead of minting keys no device can use.

Checks are split at the body: ``precheck`` needs only the headers (so a
request that cannot be authentic is refused before its body is read) and
``verify`` needs the exact bytes received.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ruvon_cloud.store import Store, sqlite_path
from sync_agent import protocol

MASTER_KEY_CREDENTIAL = "ruvon-cloud-master-key"


class AuthError(Exception):
    """Not authentic: ``status`` 401/403, ``reason`` safe to return, ``code`` a metric label."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        self.status, self.code, self.reason = status, code, reason
        super().__init__(f"{status}: {reason}")


class KeyRing:
    """Derives device secrets from the server master key."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) < 32:
            raise ValueError("master key must be at least 32 bytes")
        self._master = master_key

    def __repr__(self) -> str:
        return f"KeyRing(fingerprint={self.fingerprint})"

    @property
    def fingerprint(self) -> str:
        """A digest that names the key without revealing it (safe to store and print)."""
        return hashlib.sha256(
            b"ruvon-cloud/master-key-fingerprint/v1\n" + self._master
        ).hexdigest()[:16]

    @classmethod
    def load(cls, path: str | Path) -> KeyRing | None:
        """The master key in ``path`` (hex), or None when there is no such file."""
        path = Path(path)
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return None
        try:
            return cls(bytes.fromhex(text))
        except ValueError:
            raise ValueError(f"{path}: master key is not 64+ hex characters") from None

    @classmethod
    def create(cls, path: str | Path) -> KeyRing:
        """Write a new master key (32 random bytes, hex, mode 0600); FileExistsError if one is there."""
        fd = os.open(Path(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        return cls.load(path)  # type: ignore[return-value]

    @classmethod
    def from_file(cls, path: str | Path) -> KeyRing:
        """Load the master key, creating it when the file is absent."""
        try:
            return cls.create(path)
        except FileExistsError:
            return cls.load(path)  # type: ignore[return-value]

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
class Claim:
    """Who a request says it is, from its headers alone."""

    key_id: str
    device_id: str
    timestamp: str
    nonce: str
    signature: str


async def precheck(store: Store, headers: dict[str, str]) -> Claim:
    """Check what the headers alone can tell: present, well-formed, a known key, a fresh timestamp."""
    key_id = headers.get(protocol.H_KEY_ID.lower(), "")
    timestamp = headers.get(protocol.H_TIMESTAMP.lower(), "")
    nonce = headers.get(protocol.H_NONCE.lower(), "")
    signature = headers.get(protocol.H_SIGNATURE.lower(), "")
    if not (key_id and timestamp and nonce and signature):
        raise AuthError(401, "missing_headers", "missing signature headers")
    if len(nonce) > 128 or len(key_id) > 128 or len(signature) > 128:
        raise AuthError(401, "malformed_headers", "malformed signature headers")
    owner = await store.device_for_key(key_id)
    if owner is None:
        raise AuthError(401, "unknown_key", "unknown key id")
    if not protocol.timestamp_fresh(timestamp):
        raise AuthError(401, "stale_timestamp", "timestamp outside the allowed window")
    return Claim(key_id, owner, timestamp, nonce, signature)


async def verify(
    store: Store, keyring: KeyRing, claim: Claim, device_id: str, path: str, body: bytes
) -> None:
    """Check the signature over the exact bytes, the device, and the nonce (last: it is spent)."""
    secret = keyring.secret_for(claim.key_id, claim.device_id)
    if not protocol.verify_signature(
        secret, claim.signature, claim.timestamp, claim.nonce, "POST", path, body
    ):
        raise AuthError(401, "bad_signature", "bad signature")
    if claim.device_id != device_id:
        raise AuthError(403, "wrong_device", "key does not belong to this device")
    if not await store.use_nonce(claim.key_id, claim.nonce, int(claim.timestamp)):
        raise AuthError(401, "replayed_nonce", "nonce already used (replay)")
