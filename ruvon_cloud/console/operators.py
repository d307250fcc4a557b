"""Operator tokens and console sessions: only SHA-256 digests are stored, never a token.

A token is 32 random bytes (``ro_`` + URL-safe base64), so a plain SHA-256 is
enough to make the stored digest useless to someone who reads the database (no
dictionary can reach it), and lookups by digest stay one indexed query. The
login form trades a token for a session id -- another random value, stored as
its digest with an expiry -- so the token itself never travels in a cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ruvon_cloud.store import Store

TOKEN_PREFIX = "ro_"
SESSION_SECONDS = 12 * 3600
OPERATOR_NAME_PATTERN = re.compile(r"[A-Za-z0-9._@-]{1,64}")


class OperatorExists(Exception):
    """``add-operator`` for a name that already has a token (pass ``replace`` to issue a new one)."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def add_operator(store: Store, name: str, *, replace: bool = False) -> str:
    """Create (or with ``replace``, re-issue, ending its sessions) ``name``'s token; return it once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with store.transaction() as tx:
        if await tx.fetch("SELECT 1 FROM operators WHERE name = ?", name):
            if not replace:
                raise OperatorExists(name)
            await tx.execute("DELETE FROM operator_sessions WHERE operator = ?", name)
            await tx.execute("DELETE FROM operators WHERE name = ?", name)
        await tx.execute(
            "INSERT INTO operators (name, token_sha256, created_at) VALUES (?, ?, ?)",
            name, _digest(token), time.time(),
        )  # fmt: skip
    return token


async def operator_for_token(store: Store, token: str) -> str | None:
    """Return the operator whose token this is, or None (device keys and secrets never match)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    digest = _digest(token)
    rows = await store.fetch(
        "SELECT name, token_sha256 FROM operators WHERE token_sha256 = ?", digest
    )
    # the lookup is by digest of a 256-bit secret; the compare is constant-time all the same
    if rows and hmac.compare_digest(rows[0][1], digest):
        return rows[0][0]
    return None


async def open_session(store: Store, operator: str) -> str:
    """Start a session for ``operator`` (dropping expired ones); return the id for the cookie."""
    session = secrets.token_urlsafe(32)
    now = time.time()
    async with store.transaction() as tx:
        await tx.execute("DELETE FROM operator_sessions WHERE expires_at < ?", now)
        await tx.execute(
            "INSERT INTO operator_sessions (session_sha256, operator, expires_at) VALUES (?, ?, ?)",
            _digest(session), operator, now + SESSION_SECONDS,
        )  # fmt: skip
    return session


async def operator_for_session(store: Store, session: str) -> str | None:
    """Return the operator of an unexpired session whose operator still exists, or None."""
    if not session or len(session) > 128:
        return None
    rows = await store.fetch(
        "SELECT s.operator FROM operator_sessions s JOIN operators o ON o.name = s.operator "
        "WHERE s.session_sha256 = ? AND s.expires_at > ?",
        _digest(session), time.time(),
    )  # fmt: skip
    return rows[0][0] if rows else None


async def close_session(store: Store, session: str) -> None:
    """End a session (logout)."""
    async with store.transaction() as tx:
        await tx.execute("DELETE FROM operator_sessions WHERE session_sha256 = ?", _digest(session))
