"""`ruvon-sync once | run | status | quarantine list|requeue|purge`.

Exit codes: 0 ok (also after a clean SIGTERM), 1 a runtime failure (receiver
down, credentials refused, another sync running), 2 bad usage or settings.
``once`` and ``run`` write only JSON lines on stderr (their errors too); the
other verbs print errors as one ``ruvon-sync: error: ...`` line, like
``ruvon-edge``. Summaries (or ``--json``) go to stdout. ``status`` and
``quarantine list`` open the database read-only: they work on a read-only
file and while another process holds the write lock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import structlog

from ruvon_edge import _sd_notify as _notify
from ruvon_edge._logs import configure_json_logs
from ruvon_edge.process_lock import LockBusy, ProcessLock
from ruvon_edge.providers.persistence import EdgeSyncStore, PersistenceError
from sync_agent import quarantine, status, version
from sync_agent.agent import SyncAgent
from sync_agent.report import CycleReport
from sync_agent.settings import SettingsError, SyncSettings, load_settings
from sync_agent.transport import Transport

log = structlog.get_logger("ruvon_sync")
PROG = "ruvon-sync"
OK, FAILURE, USAGE = 0, 1, 2
_DAEMON_VERBS = ("once", "run")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (usage stays in ``--help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def _sync_lock(path: Path) -> ProcessLock:
    """One agent per database: two would ship and delete the same records."""
    return ProcessLock(path, "ruvon-sync")


def _setting(p: argparse.ArgumentParser, name: str) -> None:
    info = SyncSettings.model_fields[name]
    p.add_argument("--" + name.replace("_", "-"), dest=name, default=None, help=info.description)


def _store_flags(p: argparse.ArgumentParser, as_json: str) -> None:
    """The flags every verb has: where the database and settings are, and JSON output."""
    p.add_argument("--config", type=Path, help="TOML file ([sync] table or top-level keys)")
    p.add_argument("--json", action="store_true", help=as_json)
    _setting(p, "db")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Push finished workflows to the cloud.")
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    for verb, text in (("once", "drain what is pending, then exit"),
                       ("run", "daemon: a cycle every --interval seconds (sd_notify)")):  # fmt: skip
        p = sub.add_parser(verb, help=text, description=text)
        _store_flags(p, "print the cycle's summary as JSON")
        p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
        for name in SyncSettings.model_fields:
            if name != "db":
                _setting(p, name)
    text = "backlog, oldest pending, last success/error, quarantine (read-only)"
    p = sub.add_parser("status", help=text, description=text)
    _store_flags(p, "print the figures as JSON")
    _setting(p, "metrics_file")
    text = "records held back from sync: list, send again, or delete"
    q = sub.add_parser("quarantine", help=text, description=text)
    qsub = q.add_subparsers(dest="action", required=True, parser_class=_Parser)
    text = "list quarantined records: kind, id, reason, when (read-only)"
    _store_flags(qsub.add_parser("list", help=text, description=text), "a JSON array")
    for action, text in (("requeue", "send quarantined records again"),
                         ("purge", "delete quarantined records and their data for good")):  # fmt: skip
        p = qsub.add_parser(action, help=text, description=text)
        _store_flags(p, "print the records as a JSON array")
        p.add_argument("id", nargs="?", help="a record id from `quarantine list`")
        p.add_argument("--all", action="store_true", help="every quarantined record")
        if action == "purge":
            p.add_argument("--yes", action="store_true", help="confirm: unsynced data is deleted")
    return parser


def _open_provider(settings: SyncSettings, read_only: bool = False) -> EdgeSyncStore:
    if not settings.db.exists():
        raise SettingsError(f"database {settings.db} does not exist")
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

    return SQLitePersistenceProvider(str(settings.db), read_only=read_only)


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def _summary(report: CycleReport) -> dict:
    return {
        "ok": report.ok, "batches": report.batches, "workflows_acked": report.workflows_acked,
        "audit_logs_acked": report.audit_acked, "deleted": report.deleted, "quarantined": report.quarantined,
        "released": report.released, "rejected_retryable": report.rejected_retryable,
        "stopped": report.stopped, "auth_refused": report.auth_refused, "body_bytes": report.body_bytes,
        "wire_bytes": report.wire_bytes, "errors": report.errors, "duration_s": round(report.duration_s, 3),
    }  # fmt: skip


async def _cycle(agent: SyncAgent, provider: EdgeSyncStore, metrics: Path | None) -> CycleReport:
    with _sync_lock(agent.settings.lock_path):
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
    if as_json:
        print(json.dumps(_summary(report)))
    else:
        print(
            f"synced {report.deleted} workflow(s) and {report.audit_acked} audit row(s) in {report.batches} batch(es); "
            f"quarantined {report.quarantined}" + (" (stopped early)" if report.stopped else "")
        )
    return OK if report.ok else FAILURE


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
    return OK


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
    async with _open_provider(settings, read_only=True) as provider:
        figures = await status.collect(provider)
    if settings.metrics_file:
        status.write_metrics(settings.metrics_file, figures)
    print(json.dumps(figures) if as_json else status.render_text(figures))
    return OK


async def _quarantine(settings: SyncSettings, args: argparse.Namespace) -> int:
    if args.action == "list":
        async with _open_provider(settings, read_only=True) as provider:
            records = await provider.list_sync_quarantine()
    else:
        if bool(args.id) == bool(args.all):
            raise SettingsError(f"quarantine {args.action}: give one record id or --all")
        if args.action == "purge" and not args.yes:
            raise SettingsError("quarantine purge deletes data the cloud never received; add --yes")
        ids = None if args.all else [args.id]
        act = quarantine.requeue if args.action == "requeue" else quarantine.purge
        with _sync_lock(settings.lock_path):
            async with _open_provider(settings) as provider:
                records = await act(provider, ids)
    if args.json:
        print(quarantine.as_json(records))
    elif args.action == "list":
        print(quarantine.as_text(records))
    else:
        done = "requeued (sent by the next cycle)" if args.action == "requeue" else "purged"
        print(f"{done}: {len(records)} record(s)")
    return OK


def _warn_secret_flag(args: argparse.Namespace) -> None:
    if getattr(args, "secret", None) is not None:
        log.warning("secret_on_command_line", message="--secret is visible to every user in `ps`; "
                    "use --secret-file, RUVON_SYNC_SECRET_FILE or a systemd credential")  # fmt: skip


def _dispatch(args: argparse.Namespace) -> int:
    flags = {k: v for k, v in vars(args).items() if k in SyncSettings.model_fields}
    settings = load_settings(flags, args.config)
    if args.verb == "status":
        return asyncio.run(_status(settings, args.json))
    if args.verb == "quarantine":
        return asyncio.run(_quarantine(settings, args))
    _warn_secret_flag(args)
    settings.require_remote()
    return asyncio.run(_once(settings, args.json) if args.verb == "once" else _run(settings))


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    """Say what went wrong in one line: a JSON line for the daemons, plain text otherwise."""
    if args.verb in _DAEMON_VERBS:
        log.error("sync_error", error=message, exit_code=code)
    else:
        print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level: Any = getattr(args, "log_level", "warning")
    configure_json_logs(level, sys.stderr)
    for chatty in ("httpx", "httpcore"):  # a line per request; batch_synced/batch_retry say more
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        return _dispatch(args)
    except (SettingsError, quarantine.UnknownRecord) as exc:
        return _fail(args, str(exc), USAGE)
    except (LockBusy, PersistenceError, OSError) as exc:
        return _fail(args, str(exc), FAILURE)
    except KeyboardInterrupt:
        return OK


if __name__ == "__main__":
    sys.exit(main())
