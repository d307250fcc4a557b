"""`ruvon-sync once | run | status`.

Exit codes: 0 ok (also after a clean SIGTERM), 1 a runtime failure (receiver
down, credentials refused, another sync running), 2 bad usage or settings.
Errors are one line on stderr; logs are structlog JSON on stderr; the summary
(or ``--json``) goes to stdout. Every settings field is also a flag.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
from pathlib import Path

import structlog

from ruvon_edge import _sd_notify as _notify
from ruvon_edge._logs import configure_json_logs
from ruvon_edge.providers.persistence import PersistenceError, PersistenceProvider
from sync_agent import status
from sync_agent._lock import LockBusy, SyncLock
from sync_agent.agent import CycleReport, SyncAgent
from sync_agent.settings import SettingsError, SyncSettings, load_settings
from sync_agent.transport import Transport

log = structlog.get_logger("ruvon_sync")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML file ([sync] table or top-level keys)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    for name, info in SyncSettings.model_fields.items():
        common.add_argument(
            "--" + name.replace("_", "-"), dest=name, default=None, help=info.description
        )
    parser = argparse.ArgumentParser(
        prog="ruvon-sync", description="Push finished workflows to the cloud."
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    sub.add_parser("once", parents=[common], help="drain what is pending, then exit")
    sub.add_parser(
        "run", parents=[common], help="daemon: a cycle every --interval seconds (sd_notify)"
    )
    sub.add_parser(
        "status", parents=[common], help="backlog, oldest pending, last success/error, quarantine"
    )
    return parser


def _open_provider(settings: SyncSettings) -> PersistenceProvider:
    if not settings.db.exists():
        raise SettingsError(f"database {settings.db} does not exist")
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

    return SQLitePersistenceProvider(str(settings.db))


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def _summary(report: CycleReport) -> dict:
    return {
        "ok": report.ok, "batches": report.batches, "workflows_acked": report.workflows_acked,
        "audit_logs_acked": report.audit_acked, "deleted": report.deleted, "quarantined": report.quarantined,
        "rejected_retryable": report.rejected_retryable, "stopped": report.stopped,
        "auth_refused": report.auth_refused,
        "body_bytes": report.body_bytes,
        "wire_bytes": report.wire_bytes, "errors": report.errors, "duration_s": round(report.duration_s, 3),
    }  # fmt: skip


async def _cycle(
    agent: SyncAgent, provider: PersistenceProvider, metrics: Path | None
) -> CycleReport:
    with SyncLock(agent.settings.lock_path):
        report = await agent.drain()
    fields = {k: v for k, v in _summary(report).items() if k != "errors"}
    if not report.ok:
        log.warning("cycle_failed", error=report.errors[-1], reason=report.reason,
                    http_status=report.http_status, attempts=report.attempts, **fields)  # fmt: skip
    elif report.idle:
        log.debug("cycle_finished", **fields)
    else:
        log.info("cycle_finished", **fields)
    if metrics:
        status.write_metrics(metrics, await status.collect(provider))
    return report


async def _once(settings: SyncSettings, as_json: bool) -> int:
    stop = asyncio.Event()
    _install_stop(stop)
    provider = _open_provider(settings)
    async with provider, Transport(settings, stop) as transport:
        report = await _cycle(
            SyncAgent(provider, settings, transport), provider, settings.metrics_file
        )
    summary = _summary(report)
    if as_json:
        print(json.dumps(summary))
    else:
        print(
            f"synced {report.deleted} workflow(s) and {report.audit_acked} audit row(s) in {report.batches} batch(es); "
            f"quarantined {report.quarantined}" + (" (stopped early)" if report.stopped else "")
        )
    return 0 if report.ok else 1


async def _run(settings: SyncSettings) -> int:
    stop = asyncio.Event()
    _install_stop(stop)
    provider = _open_provider(settings)
    async with provider, Transport(settings, stop) as transport:
        agent = SyncAgent(provider, settings, transport)
        _notify.notify("READY=1", "STATUS=started")
        watchdog = asyncio.create_task(_watchdog(stop))
        failures = 0
        while not stop.is_set():
            try:
                report = await _cycle(agent, provider, settings.metrics_file)
                failures = 0 if report.ok else failures + 1
                _notify.notify(
                    f"STATUS=last cycle: {report.deleted} synced, {len(report.errors)} error(s)"
                )
            except LockBusy as exc:
                log.warning("cycle_skipped", reason=str(exc))
            delay = _next_delay(settings, failures)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
        _notify.notify("STOPPING=1")
        watchdog.cancel()
    return 0


def _next_delay(settings: SyncSettings, failures: int) -> float:
    """The interval with ± jitter; after failures, a full-jitter backoff that grows up to 10 intervals."""
    if failures == 0:
        j = settings.interval_jitter
        return settings.interval * random.uniform(1 - j, 1 + j)
    return random.uniform(settings.interval / 2, settings.interval * min(2**failures, 10))


async def _watchdog(stop: asyncio.Event) -> None:
    period = _notify.watchdog_interval()
    while period and not stop.is_set():
        _notify.notify("WATCHDOG=1")
        await asyncio.sleep(period)


async def _status(settings: SyncSettings, as_json: bool) -> int:
    provider = _open_provider(settings)
    async with provider:
        figures = await status.collect(provider)
    if settings.metrics_file:
        status.write_metrics(settings.metrics_file, figures)
    print(json.dumps(figures) if as_json else status.render_text(figures))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_json_logs(args.log_level, sys.stderr)
    flags = {k: v for k, v in vars(args).items() if k in SyncSettings.model_fields}
    try:
        settings = load_settings(flags, args.config)
        if args.verb == "status":
            return asyncio.run(_status(settings, args.json))
        settings.require_remote()
        return asyncio.run(_once(settings, args.json) if args.verb == "once" else _run(settings))
    except SettingsError as exc:
        print(f"ruvon-sync: {exc}", file=sys.stderr)
        return 2
    except (LockBusy, PersistenceError, OSError) as exc:
        print(f"ruvon-sync: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
