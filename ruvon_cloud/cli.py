"""`ruvon-cloud serve | add-device | add-operator`: run the receiver, register a device or an operator.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or input. uvicorn (extra
``[cloud]``) is imported only by ``serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys

from ruvon_cloud.app import ReceiverApp
from ruvon_cloud.auth import KeyRing, default_master_key_path
from ruvon_cloud.console.operators import OPERATOR_NAME_PATTERN, OperatorExists, add_operator
from ruvon_cloud.store import open_store
from ruvon_edge import _sd_notify as _notify
from ruvon_edge._logs import configure_json_logs


class UsageError(Exception):
    """Bad flags or input: exit 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ruvon-cloud", description="Reference ingest endpoint for ruvon-sync."
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        default=os.environ.get("RUVON_CLOUD_STORE"),
        help="sqlite:///PATH or postgresql://...",
    )
    common.add_argument(
        "--master-key-file", default=None, help="server master key (created 0600 if absent)"
    )
    serve = sub.add_parser("serve", parents=[common], help="serve the receiver over HTTP")
    serve.add_argument("--host", default=os.environ.get("RUVON_CLOUD_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("RUVON_CLOUD_PORT", "8700")))
    serve.add_argument("--max-body-bytes", type=int, default=8 << 20)
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add = sub.add_parser(
        "add-device", parents=[common], help="create a key for a device; prints the secret once"
    )
    add.add_argument("device_id")
    add.add_argument("--json", action="store_true")
    op = sub.add_parser(
        "add-operator", parents=[common], help="create a console operator; prints the token once"
    )
    op.add_argument("name")
    op.add_argument(
        "--replace", action="store_true", help="issue a new token for an existing operator"
    )
    op.add_argument("--json", action="store_true")
    return parser


def _keyring(args) -> KeyRing:
    path = args.master_key_file or default_master_key_path(args.store)
    try:
        return KeyRing.from_file(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"master key {path}: {exc}") from None


async def _add_device(args) -> int:
    keyring = _keyring(args)
    store = open_store(args.store)
    await store.initialize()
    try:
        key_id = keyring.new_key_id()
        await store.add_key(key_id, args.device_id)
    finally:
        await store.close()
    secret = keyring.secret_for(key_id, args.device_id)
    if args.json:
        print(json.dumps({"device_id": args.device_id, "key_id": key_id, "secret": secret}))
    else:
        print(f"device_id: {args.device_id}\nkey_id:    {key_id}\nsecret:    {secret}")
        print(
            "Store the secret now (e.g. a systemd credential); it is not shown again.",
            file=sys.stderr,
        )
    return 0


async def _add_operator(args) -> int:
    if not OPERATOR_NAME_PATTERN.fullmatch(args.name):
        raise UsageError(f"operator name {args.name!r}: use 1-64 of A-Z a-z 0-9 . _ @ -")
    store = open_store(args.store)
    await store.initialize()
    try:
        token = await add_operator(store, args.name, replace=args.replace)
    except OperatorExists:
        raise UsageError(
            f"operator {args.name!r} already exists; --replace issues a new token (and ends their sessions)"
        ) from None
    finally:
        await store.close()
    if args.json:
        print(json.dumps({"operator": args.name, "token": token}))
    else:
        print(f"operator: {args.name}\ntoken:    {token}")
        print(
            "Keep the token now; it is not shown again (only its digest is stored).",
            file=sys.stderr,
        )
    return 0


async def _serve(args) -> int:
    try:
        import uvicorn
    except ImportError:
        raise UsageError("serving needs uvicorn: pip install 'ruvon-edge[cloud]'") from None
    configure_json_logs(args.log_level, sys.stderr)
    app = ReceiverApp(open_store(args.store), _keyring(args), max_body_bytes=args.max_body_bytes)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises SIGTERM after a graceful shutdown (exit -15); a clean stop here is exit 0
    setattr(server, "capture_signals", contextlib.nullcontext)  # noqa: B010 (an override mypy accepts)
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, setattr, server, "should_exit", True)
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if server.started:
        _notify.notify("READY=1", f"STATUS=listening on {args.host}:{args.port}")
    period = _notify.watchdog_interval()
    while period and not serving.done():
        _notify.notify("WATCHDOG=1")
        await asyncio.wait({serving}, timeout=period)
    await serving
    _notify.notify("STOPPING=1")
    return 0 if server.started else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if not args.store:
            raise UsageError(
                "--store is required (or RUVON_CLOUD_STORE), e.g. sqlite:///var/lib/ruvon-cloud/cloud.db"
            )
        try:
            open_store(args.store)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        verbs = {"add-device": _add_device, "add-operator": _add_operator, "serve": _serve}
        return asyncio.run(verbs[args.verb](args))
    except UsageError as exc:
        print(f"ruvon-cloud: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # a runtime failure (store down, disk): one line, no traceback
        print(f"ruvon-cloud: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
