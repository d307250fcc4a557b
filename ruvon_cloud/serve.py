"""``ruvon-cloud serve``: the receiver under uvicorn, JSON logs, sd_notify, an optional metrics listener.

uvicorn's own loggers go through the same JSON formatter (``log_config=None``
keeps it from installing its own). SIGTERM/SIGINT stop both listeners
gracefully and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

from ruvon_cloud.app import MetricsApp, ReceiverApp
from ruvon_cloud.auth import KeyRing
from ruvon_cloud.logs import configure_json_logging
from ruvon_cloud.store import Store
from ruvon_edge import _sd_notify as _notify


def _listen_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--metrics-listen: {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


async def serve(args: argparse.Namespace, store: Store, keyring: KeyRing) -> int:
    """Serve until SIGTERM/SIGINT; return 0 after a clean stop, 1 when a listener did not start."""
    try:
        import uvicorn
    except ImportError:
        raise ValueError("serving needs uvicorn: pip install 'ruvon-edge[cloud]'") from None
    metrics_at = _listen_address(args.metrics_listen) if args.metrics_listen else None
    configure_json_logging(args.log_level)
    app = ReceiverApp(
        store,
        keyring,
        max_body_bytes=args.max_body_bytes,
        max_decoded_bytes=args.max_decoded_bytes,
        decoded_budget_bytes=args.decoded_budget_bytes,
        max_inflight=args.max_inflight,
        body_timeout=args.body_timeout,
        serve_metrics=not args.no_metrics and metrics_at is None,
    )
    servers = [_server(uvicorn, app, args.host, args.port, args.log_level, lifespan="on")]
    if metrics_at and not args.no_metrics:
        servers.append(
            _server(uvicorn, MetricsApp(app), *metrics_at, args.log_level, lifespan="off")
        )
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, _stop, servers)
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    while not all(s.started for s in servers) and not any(t.done() for t in tasks):
        await asyncio.sleep(0.05)
    started = all(s.started for s in servers)
    if started:
        _notify.notify("READY=1", f"STATUS=listening on {args.host}:{args.port}")
    else:
        _stop(servers)
    period = _notify.watchdog_interval()
    while period and not any(t.done() for t in tasks):
        _notify.notify("WATCHDOG=1")
        await asyncio.wait(tasks, timeout=period, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*tasks, return_exceptions=True)
    _notify.notify("STOPPING=1")
    return 0 if started else 1


def _server(uvicorn: Any, app: Any, host: str, port: int, level: str, lifespan: str) -> Any:
    config = uvicorn.Config(app, host=host, port=port, log_level=level, lifespan=lifespan,
                            access_log=False, log_config=None)  # fmt: skip
    server = uvicorn.Server(config)
    # uvicorn re-raises SIGTERM after a graceful shutdown (exit -15); a clean stop here is exit 0
    setattr(server, "capture_signals", contextlib.nullcontext)  # noqa: B010 (an override mypy accepts)
    return server


def _stop(servers: list[Any]) -> None:
    for server in servers:
        server.should_exit = True
