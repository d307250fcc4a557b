"""`ruvon-sync` settings: flags > env ``RUVON_SYNC_*`` > TOML ``--config`` > defaults.

Hand-rolled on pydantic + tomllib because pydantic-settings is not a core
dependency. The secret comes from ``--secret``, ``--secret-file``,
``RUVON_SYNC_SECRET(_FILE)`` or ``$CREDENTIALS_DIRECTORY/<secret_credential>``
(systemd ``LoadCredential=``); it is a ``SecretStr``, so reprs and logs show
``**********``.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from sync_agent.protocol import DEVICE_ID_PATTERN

ENV_PREFIX = "RUVON_SYNC_"


class SettingsError(ValueError):
    """The configuration is incomplete or wrong (exit code 2)."""


class SyncSettings(BaseModel):
    """Everything the agent needs; every field can be a flag, an env var or a TOML key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    db: Path = Field(description="the device's SQLite database")
    url: str | None = Field(
        default=None, description="cloud base URL, e.g. https://ingest.example.com"
    )
    device_id: str | None = Field(default=None, pattern=f"^{DEVICE_ID_PATTERN}$")
    key_id: str | None = None
    secret: SecretStr | None = None
    secret_file: Path | None = None
    secret_credential: str = "ruvon-sync-secret"
    ca_file: Path | None = Field(
        default=None, description="extra CA bundle; verification is never disabled"
    )
    page_size: int = Field(default=200, ge=1, le=10_000, description="workflows read per page")
    audit_per_workflow: int = Field(
        default=200, ge=1, description="audit rows sent per workflow per pass"
    )
    batch_records: int = Field(
        default=2_000, ge=1, description="max records (workflows + audit rows) per batch"
    )
    batch_bytes: int = Field(
        default=1 << 20, ge=1024, description="max uncompressed body bytes per batch"
    )
    gzip_threshold: int = Field(default=8192, ge=0, description="gzip bodies larger than this")
    timeout: float = Field(default=30.0, gt=0, description="seconds per HTTP request")
    attempts: int = Field(default=5, ge=1, description="tries per batch before the cycle gives up")
    backoff_base: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(
        default=60.0, gt=0, description="cap of the full-jitter backoff and of Retry-After"
    )
    interval: float = Field(default=30.0, gt=0, description="seconds between cycles of `run`")
    interval_jitter: float = Field(
        default=0.2, ge=0, le=1, description="± fraction of the interval"
    )
    metrics_file: Path | None = None
    lock_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _https_or_loopback(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r} is not an http(s) URL")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("plain http is only allowed to a loopback address; use https")
        return v.rstrip("/")

    @property
    def lock_path(self) -> Path:
        """The lock file beside the database that keeps two syncs from running at once."""
        return self.lock_file or self.db.with_name(self.db.name + ".sync.lock")

    def require_remote(self) -> None:
        """Raise ``SettingsError`` unless url, device id, key id and secret are all set."""
        missing = [n for n in ("url", "device_id", "key_id", "secret") if getattr(self, n) is None]
        if missing:
            flags = ", ".join("--" + n.replace("_", "-") for n in missing)
            raise SettingsError(f"missing required setting(s): {flags}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    names = SyncSettings.model_fields
    return {
        k[len(ENV_PREFIX) :].lower(): v
        for k, v in environ.items()
        if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX) :].lower() in names
    }


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SettingsError(f"config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config {path}: {exc}") from None
    table = data.get("sync", data)  # either top-level keys or a [sync] table
    unknown = sorted(set(table) - set(SyncSettings.model_fields))
    if unknown:
        raise SettingsError(f"config {path}: unknown key(s) {', '.join(unknown)}")
    return {k.replace("-", "_"): v for k, v in table.items()}


def _read_secret(path: Path, what: str) -> str:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise SettingsError(f"{what} {path}: {exc.strerror}") from None
    if not value:
        raise SettingsError(f"{what} {path} is empty")
    return value


def load_settings(
    flags: dict[str, Any], config: Path | None = None, environ: dict[str, str] | None = None
) -> SyncSettings:
    """Merge the layers (flags win) and validate; raise ``SettingsError`` with one line."""
    environ = dict(os.environ if environ is None else environ)
    merged: dict[str, Any] = {}
    config = config or (
        Path(environ[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in environ else None
    )
    if config is not None:
        merged.update(_from_toml(config))
    merged.update(_from_env(environ))
    merged.update({k: v for k, v in flags.items() if v is not None})
    merged.pop("config", None)
    if merged.get("secret") is None:
        if merged.get("secret_file"):
            merged["secret"] = _read_secret(Path(merged["secret_file"]), "secret file")
        elif creds := environ.get("CREDENTIALS_DIRECTORY"):
            cred = Path(creds) / merged.get("secret_credential", "ruvon-sync-secret")
            if cred.exists():
                merged["secret"] = _read_secret(cred, "credential")
    if merged.get("db") is None:
        merged["db"] = environ.get("RUVON_DB", "ruvon_edge.db")
    try:
        return SyncSettings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise SettingsError(f"setting {where}: {err['msg']}") from None
