"""``ruvon-cloud``: run the reference receiver, manage device keys, see what the fleet sent.

Exit codes: 0 ok, 1 runtime failure (store down), 2 bad usage or input.
Errors are one line on stderr; with ``--json`` stdout holds one JSON document
(times as RFC 3339 UTC strings). uvicorn (extra ``[cloud]``) is imported only
by ``serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

from ruvon_cloud.auth import KeyRing, default_master_key_path
from ruvon_cloud.console.operators import OPERATOR_NAME_PATTERN, OperatorExists, add_operator
from ruvon_cloud.store import Store, StoreUnavailable, open_store, sqlite_path
from sync_agent.protocol import DEVICE_ID_PATTERN, TERMINAL_STATUSES

PROG = "ruvon-cloud"
OK, FAILURE, USAGE = 0, 1, 2
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class UsageError(Exception):
    """Bad flags or input: exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (usage stays in ``--help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def _package_version() -> str:
    try:
        return version("ruvon-edge")
    except PackageNotFoundError:
        return "unknown"


# fmt: off
_VERBS: dict[str, tuple[str, tuple[tuple[str, dict[str, Any]], ...]]] = {
    "serve": ("serve the receiver over HTTP", (
        ("--host", dict(default=os.environ.get("RUVON_CLOUD_HOST", "127.0.0.1"))),
        ("--port", dict(type=int, default=int(os.environ.get("RUVON_CLOUD_PORT", "8700")))),
        ("--max-body-bytes", dict(type=int, default=8 << 20, metavar="N", help="per request, as sent (413 beyond)")),
        ("--max-decoded-bytes", dict(type=int, default=16 << 20, metavar="N", help="per request, after gzip (413 beyond)")),
        ("--decoded-budget-bytes", dict(type=int, default=64 << 20, metavar="N", help="all requests at once, after gzip (503 beyond)")),
        ("--max-inflight", dict(type=int, default=8, metavar="N", help="authentic requests processed at once (503 beyond)")),
        ("--body-timeout", dict(type=float, default=30.0, metavar="S", help="deadline for a request body (408 beyond)")),
        ("--metrics-listen", dict(metavar="HOST:PORT", help="serve /metrics on this address instead of the API's")),
        ("--no-metrics", dict(action="store_true", help="do not serve /metrics at all")),
        ("--log-level", dict(default="info", choices=["debug", "info", "warning", "error"])))),
    "add-device": ("create a key for a device; prints the secret once", (("device_id", dict(metavar="DEVICE_ID")),)),
    "rotate": ("create another key for a device (the old one works until revoked)", (("device_id", dict(metavar="DEVICE_ID")),)),
    "keys": ("list device keys", (("device_id", dict(metavar="DEVICE_ID", nargs="?")),)),
    "revoke": ("revoke a device key from now on", (("key_id", dict(metavar="KEY_ID")),)),
    "devices": ("the device registry: last seen, totals, reported health, last refusal", (
        ("--stale-after", dict(default="1h", metavar="DURATION", help="e.g. 90s, 15m, 1h, 2d (default 1h)")),)),
    "workflows": ("stored workflows, newest received first", (
        ("--device", dict(metavar="D")),
        ("--status", dict(metavar="S", type=str.upper, choices=sorted(TERMINAL_STATUSES))),
        ("--type", dict(dest="workflow_type", metavar="T")),
        ("--since", dict(metavar="T", help="received at or after: RFC 3339 time, or a duration ago (24h)")),
        ("--until", dict(metavar="T", help="received before: RFC 3339 time, or a duration ago")),
        ("--limit", dict(type=int, default=50, metavar="N")))),
    "add-operator": ("create a console operator; prints the token once", (
        ("name", dict(metavar="NAME")),
        ("--replace", dict(action="store_true", help="issue a new token for an existing operator (ends their sessions)")))),
    "show": ("one stored workflow (its latest version)", (
        ("id", dict(metavar="ID")),
        ("--device", dict(metavar="D", help="when two devices sent the same id")),
        ("--audit", dict(action="store_true", help="add its audit trail")))),
}
# fmt: on


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: ``--store``, ``--master-key-file`` and ``--json`` on every verb."""
    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"{PROG} {_package_version()}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=_Parser)
    for name, (help_, own) in _VERBS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument(
            "--store", default=os.environ.get("RUVON_CLOUD_STORE"),
            help="sqlite:///ABS/PATH, sqlite:REL/PATH or postgresql://... (env RUVON_CLOUD_STORE)",
        )  # fmt: skip
        p.add_argument("--master-key-file", metavar="PATH", help="server master key file")
        p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        for flag, kw in own:
            p.add_argument(flag, **kw)
    return parser


# -- the store and the master key ------------------------------------------------------


def checked_store(args: argparse.Namespace, must_exist: bool) -> Store:
    """The store named by ``--store``; a read verb on a SQLite file that is not there is exit 2."""
    if not args.store:
        raise UsageError(
            "--store is required (or RUVON_CLOUD_STORE), e.g. sqlite:///var/lib/ruvon-cloud/cloud.db"
        )
    store = open_store(args.store)  # ValueError: exit 2
    if must_exist and args.store.startswith("sqlite:"):
        path = Path(sqlite_path(args.store)).resolve()
        if not path.exists():
            raise UsageError(f"no store at {path} (add-device or serve creates it)")
    return store


async def keyring_for(args: argparse.Namespace, store: Store) -> KeyRing:
    """The master key the store was initialised with; a new one only for a new store.

    The store records the key's fingerprint: a different key (a hand-run
    command without the service's ``--master-key-file``) is refused rather
    than minting keys no device can use.
    """
    path = Path(args.master_key_file or default_master_key_path(args.store)).absolute()
    keyring = KeyRing.load(path)
    flag = (
        "pass --master-key-file PATH (or RUVON_CLOUD_MASTER_KEY_FILE) naming the key the store uses"
    )
    if keyring is None:
        recorded = await store.recorded_master_key()
        if recorded is not None:
            raise UsageError(
                f"no master key at {path}; the store was initialised with key {recorded}: {flag}"
            )
        keyring = KeyRing.create(path)
        print(
            f"{PROG}: created a new master key at {path} (fingerprint {keyring.fingerprint}); "
            "back it up: losing it invalidates every device key",
            file=sys.stderr,
        )
    recorded, _ = await store.claim_master_key(keyring.fingerprint)
    if recorded != keyring.fingerprint:
        raise UsageError(
            f"master key {path} has fingerprint {keyring.fingerprint} but the store was initialised "
            f"with {recorded}: {flag}"
        )
    return keyring


# -- verbs -------------------------------------------------------------------------------


async def _new_key(args: argparse.Namespace, store: Store) -> dict:
    if args.verb == "rotate" and not await store.keys(args.device_id):
        raise UsageError(f"no device {args.device_id!r} (add-device creates its first key)")
    keyring = await keyring_for(args, store)
    key_id = keyring.new_key_id()
    await store.add_key(key_id, args.device_id)
    return {
        "device_id": args.device_id,
        "key_id": key_id,
        "secret": keyring.secret_for(key_id, args.device_id),
    }


async def _revoke(args: argparse.Namespace, store: Store) -> dict:
    if not await store.revoke_key(args.key_id):
        raise UsageError(f"no active key {args.key_id!r}")
    [key] = [k for k in await store.keys() if k["key_id"] == args.key_id]
    return key


async def _devices(args: argparse.Namespace, store: Store) -> list[dict]:
    return await store.devices(stale_after=duration(args.stale_after, "--stale-after"))


async def _workflows(args: argparse.Namespace, store: Store) -> list[dict]:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    return await store.workflows(
        device_id=args.device, status=args.status, workflow_type=args.workflow_type,
        since=moment(args.since, "--since"), until=moment(args.until, "--until"), limit=args.limit,
    )  # fmt: skip


async def _show(args: argparse.Namespace, store: Store) -> dict:
    found = await store.workflow(args.id, device_id=args.device)
    if found is None:
        raise UsageError(f"no workflow {args.id!r} in the store")
    if args.audit:
        found["audit_logs"] = await store.audit_logs(args.id, found["device_id"])
    return found


async def _add_operator(args: argparse.Namespace, store: Store) -> dict:
    if not OPERATOR_NAME_PATTERN.fullmatch(args.name):
        raise UsageError(f"invalid operator name {args.name!r}: 1-64 of A-Z a-z 0-9 . _ @ -")
    try:
        token = await add_operator(store, args.name, replace=args.replace)
    except OperatorExists:
        raise UsageError(
            f"operator {args.name!r} already exists (--replace issues a new token and ends their sessions)"
        ) from None
    return {"operator": args.name, "token": token}


async def _serve(args: argparse.Namespace) -> int:
    from ruvon_cloud.serve import serve

    store = checked_store(args, must_exist=False)
    await store.initialize()
    try:
        keyring = await keyring_for(args, store)
    finally:
        await store.close()
    return await serve(args, store, keyring)


_READS = {"keys": lambda a, s: s.keys(a.device_id), "revoke": _revoke, "devices": _devices,
          "workflows": _workflows, "show": _show}  # fmt: skip


async def _run(args: argparse.Namespace) -> int:
    device_id = getattr(args, "device_id", None)
    if device_id is not None and not re.fullmatch(DEVICE_ID_PATTERN, device_id):
        raise UsageError(
            f"invalid device id {device_id!r}: 1-128 of A-Z a-z 0-9 . _ : @ - (it travels in the URL path)"
        )
    store = checked_store(args, must_exist=args.verb in _READS or args.verb == "add-operator")
    await store.initialize()
    try:
        if args.verb in ("add-device", "rotate"):
            result: Any = await _new_key(args, store)
        elif args.verb == "add-operator":
            result = await _add_operator(args, store)
        else:
            result = await _READS[args.verb](args, store)
    finally:
        await store.close()
    from ruvon_cloud import cli_text

    if args.json:
        print(json.dumps(rfc3339(result), ensure_ascii=False))
    else:
        print(cli_text.render(args.verb, result))
    if args.verb in ("add-device", "rotate") and not args.json:
        print(
            "Store the secret now (e.g. a systemd credential); it is not shown again.",
            file=sys.stderr,
        )
    if args.verb == "add-operator" and not args.json:
        print(
            "Keep the token now; it is not shown again (only its digest is stored).",
            file=sys.stderr,
        )
    return OK


# -- values --------------------------------------------------------------------------------


def duration(text: str, flag: str) -> float:
    """Seconds in ``90``, ``90s``, ``15m``, ``1h``, ``2d``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"{flag}: {text!r} is not a duration (e.g. 90s, 15m, 1h, 2d)")
    return float(match.group(1)) * _UNIT[match.group(2)]


def moment(text: str | None, flag: str) -> float | None:
    """Unix seconds for an RFC 3339 time (``2026-01-31T12:00:00Z``, a date) or a duration ago."""
    if text is None:
        return None
    if _DURATION.fullmatch(text.strip()):
        return datetime.now(UTC).timestamp() - duration(text, flag)
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is neither an RFC 3339 time nor a duration") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def rfc3339(value: Any, key: str = "") -> Any:
    """``value`` with every numeric ``at``/``*_at`` field as an RFC 3339 UTC string."""
    if isinstance(value, dict):
        return {k: rfc3339(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [rfc3339(v) for v in value]
    if (
        (key == "at" or key.endswith("_at"))
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        return (
            datetime.fromtimestamp(value, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ruvon-cloud`` command; return its exit code."""
    args = build_parser().parse_args(argv)  # exits 2 on bad usage
    try:
        return asyncio.run(_serve(args) if args.verb == "serve" else _run(args))
    except (UsageError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        return OK
    except (StoreUnavailable, OSError) as exc:  # a runtime failure: one line, no traceback
        print(f"{PROG}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return FAILURE


if __name__ == "__main__":
    sys.exit(main())
