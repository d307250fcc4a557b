"""``ruvon-edge``: validate, run and inspect durable workflows on a device's SQLite file.

Nothing imports this module; it builds the engine from the settings, calls it
and turns the outcome into text (or one JSON document) and an exit code. The
engine, the registry and the store are imported inside the verbs so that
``--help`` and usage errors answer instantly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn
from uuid import UUID

from ruvon_edge import _cli_config
from ruvon_edge.status import TERMINAL, WorkflowStatus

PROG = "ruvon-edge"
OK, FAILURE, USAGE = 0, 1, 2

EPILOG = """\
settings: flags > environment > --config FILE.toml > defaults.
  --db          $RUVON_DB, TOML "db"; default ./ruvon_edge.db
  --definitions $RUVON_DEFINITIONS (os.pathsep-separated), TOML "definitions" (list)
  --allow-module $RUVON_ALLOW_MODULES (comma-separated), TOML "allow_modules" (list)
  --module-path $RUVON_MODULE_PATH (os.pathsep-separated), TOML "module_path" (list)
  Relative paths in the TOML file are relative to that file.

exit codes:
  0  ok; for run/resume/retry: the workflow COMPLETED or is waiting (WAITING_HUMAN, PENDING_ASYNC, ...)
  1  runtime failure: the workflow ended FAILED*/CANCELLED, or the store failed
  2  bad usage or bad input: unknown flag, invalid YAML or JSON, unknown workflow id,
     input refused by the step's input_model, a request the workflow's status forbids

Errors are one line on stderr; with --json, stdout holds exactly one JSON document.
"""


class UsageError(Exception):
    """Bad input found by the CLI itself (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (usage stays in ``--help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{PROG}: error: {message} (see {self.prog} --help)\n")


# -- parser -------------------------------------------------------------------------


# fmt: off
_COMMON: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--db", dict(metavar="PATH", help="SQLite file (default: $RUVON_DB or ./ruvon_edge.db)")),
    ("--json", dict(action="store_true", help="print one JSON document on stdout")),
    ("--config", dict(metavar="FILE.toml", help="keys: db, definitions, allow_modules, module_path")),
)
_DEFS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--definitions", dict(metavar="PATH", action="append", help="YAML file or directory (repeatable)")),
    ("--allow-module", dict(dest="allow_modules", metavar="MOD", action="append", help="module callables may come from (repeatable)")),
    ("--module-path", dict(dest="module_path", metavar="DIR", action="append", help="prepended to sys.path (repeatable)")),
)
# verb -> (help, takes definition options, its own arguments)
_VERBS: dict[str, tuple[str, bool, tuple[tuple[str, dict], ...]]] = {
    "validate": ("check a workflow YAML file: shape, routes, expressions, callables", True, (("file", dict(metavar="FILE.yaml")),)),
    "run": ("register FILE.yaml, start a workflow of its type, run it until it ends or waits", True, (
        ("file", dict(metavar="FILE.yaml")),
        ("--data", dict(default="{}", metavar="JSON", help="initial state: a JSON object or @FILE (default: {})")),
        ("--idempotency-key", dict(metavar="KEY", help="a second run with this key returns the first workflow")))),
    "list": ("list workflows, newest first", False, (
        ("--status", dict(metavar="S", type=str.upper, choices=[s.value for s in WorkflowStatus])),
        ("--type", dict(dest="workflow_type", metavar="T")),
        ("--limit", dict(type=int, default=20, metavar="N")),
        ("--offset", dict(type=int, default=0, metavar="N")))),
    "show": ("show one workflow", False, (("id", dict(metavar="ID")), ("--audit", dict(action="store_true", help="add the audit trail")))),
    "resume": ("give a waiting step its input and run on", True, (
        ("id", dict(metavar="ID")), ("--input", dict(default="{}", metavar="JSON", help="a JSON object or @FILE")))),
    "cancel": ("cancel a workflow that has not ended", True, (("id", dict(metavar="ID")),)),
    "retry": ("restart a failed workflow at its failed step and run on", True, (("id", dict(metavar="ID")),)),
    "serve": ("long-running worker: resume unfinished workflows, run ASYNC tasks, reap zombies", True, ()),
    "import-ruvon-db": ("switch a device over: copy a ruvon-sdk database (read-only) into --db", True, (
        ("old", dict(metavar="OLD.db", help="the ruvon-sdk SQLite file; opened read-only, never changed")),)),
    "demo": ("the README's main job: offline payments on a till, synced to a local receiver", False, (
        ("--workdir", dict(metavar="DIR", help="where its files go (default: a new temp dir)")),
        ("--payments", dict(type=int, default=20, metavar="N")))),
}
# fmt: on


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser; common options work before or after the verb."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=PROG, description=__doc__.splitlines()[0], epilog=EPILOG, formatter_class=fmt
    )
    for flag, kw in _COMMON:
        parser.add_argument(flag, **kw)
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, (help_, defs, own) in _VERBS.items():
        p = sub.add_parser(name, help=help_, description=help_, epilog=EPILOG, formatter_class=fmt)
        # SUPPRESS: an option given before the verb is not reset by the verb's parser.
        for flag, kw in _COMMON:
            p.add_argument(flag, **kw, default=argparse.SUPPRESS)
        for flag, kw in (*(_DEFS if defs else ()), *own):
            p.add_argument(flag, **kw)
    return parser


# -- helpers ------------------------------------------------------------------------


def _parse_json_object(text: str, option: str) -> dict[str, Any]:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{option} {text[1:]}: {exc.strerror or exc}") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{option}: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise UsageError(f"{option}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # NaN / Infinity
        raise UsageError(f"{option}: invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{option}: expected a JSON object, got {type(value).__name__}")
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not standard JSON (use null or a string)")


def _workflow_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise UsageError(f"invalid workflow id {text!r} (expected a UUID)") from None


def _build_registry(
    settings: _cli_config.Settings, extra: Sequence[str] = ()
) -> tuple[Any, list[Any]]:
    """Return the registry (``--definitions`` loaded) and the definitions of the ``extra`` files."""
    from ruvon_edge import WorkflowRegistry

    for directory in reversed(settings.module_path):
        if os.path.abspath(directory) not in sys.path:
            sys.path.insert(0, os.path.abspath(directory))
    registry = WorkflowRegistry(allowed_modules=settings.allow_modules)
    for path in settings.definitions:
        _register(registry, path)
    return registry, [_register(registry, path, directory_ok=False) for path in extra]


def _register(registry: Any, raw: str, directory_ok: bool = True) -> Any:
    from ruvon_edge.errors import DefinitionError

    path = Path(raw)
    if path.is_dir() and directory_ok:
        return registry.register_directory(path)
    if not path.is_file():
        raise UsageError(f"{raw}: no such file" + (" or directory" if directory_ok else ""))
    try:
        return registry.register_file(path)
    except DefinitionError as exc:
        if str(path) in str(exc):
            raise
        raise type(exc)(exc.reason, exc.path, source=str(path)) from None


def _check_db(path: str, must_exist: bool) -> None:
    if path == ":memory:":
        return
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"--db {path}: is a directory")
    if not p.exists():
        if must_exist:
            raise UsageError(f"--db {path}: no such database")
        if not p.parent.is_dir():
            raise UsageError(f"--db {path}: directory {p.parent} does not exist")
        return
    with p.open("rb") as fh:
        head = fh.read(16)
    if head and head != b"SQLite format 3\x00":
        raise UsageError(f"--db {path}: not a SQLite database")


@asynccontextmanager
async def _engine(settings: _cli_config.Settings, registry: Any, must_exist: bool = True):
    from ruvon_edge import WorkflowEngine
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

    _check_db(settings.db, must_exist)
    async with WorkflowEngine(
        persistence=SQLitePersistenceProvider(settings.db), registry=registry
    ) as engine:
        yield engine


def _emit(args: argparse.Namespace, document: Any, text: str) -> None:
    print(json.dumps(document, default=str, indent=2) if args.json else text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _describe(d: dict[str, Any]) -> str:
    rows = [
        ("id", d["id"]),
        ("type", f"{d['workflow_type']} {d.get('workflow_version') or ''}".strip()),
        ("status", d["status"]),
        ("current_step", d.get("current_step") or "-"),
        ("error", d.get("error") or "-"),
        ("created_at", d.get("created_at")),
        ("updated_at", d.get("updated_at")),
        ("completed_at", d.get("completed_at") or "-"),
        ("state", json.dumps(d.get("state"), default=str, sort_keys=True)),
    ]
    return "\n".join(f"{k + ':':<14}{v}" for k, v in rows)


def _outcome(args: argparse.Namespace, wf: Any) -> int:
    doc = wf.to_dict()
    _emit(args, doc, _describe(doc))
    return FAILURE if wf.status in TERMINAL and wf.status != WorkflowStatus.COMPLETED else OK


# -- verbs --------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace, settings: _cli_config.Settings) -> int:
    _, (definition,) = _build_registry(settings, [args.file])
    doc = {
        "valid": True,
        "file": args.file,
        "workflow_type": definition.workflow_type,
        "workflow_version": definition.workflow_version,
        "steps": [s.name for s in definition.steps],
    }
    text = f"ok: {args.file}: {definition.workflow_type} {definition.workflow_version} ({len(definition.steps)} steps: {', '.join(doc['steps'])})"
    _emit(args, doc, text)
    return OK


async def cmd_run(args: argparse.Namespace, settings: _cli_config.Settings) -> int:
    from ruvon_edge.providers.persistence import IdempotencyKeySyncedError

    data = _parse_json_object(args.data, "--data")
    registry, (definition,) = _build_registry(settings, [args.file])
    async with _engine(settings, registry, must_exist=False) as engine:
        try:
            wf = await engine.start_workflow(
                definition.workflow_type, data, idempotency_key=args.idempotency_key
            )
        except IdempotencyKeySyncedError as synced:  # it ran before and has left the device
            _emit(args, synced.record(), str(synced))
            return OK if synced.status == WorkflowStatus.COMPLETED else FAILURE
        return _outcome(args, await engine.run(wf.id))


_ROW_KEYS = ("workflow_type", "workflow_version", "status", "current_step", "parent_id", "idempotency_key", "error", "version", "created_at", "updated_at", "completed_at", "state")  # fmt: skip


def _row_dict(row: dict[str, Any]) -> dict[str, Any]:
    """The ``Workflow.to_dict()`` shape, from a stored row: no user code needed to inspect."""
    return {"id": str(row["id"]), **{k: row.get(k) for k in _ROW_KEYS}}


@asynccontextmanager
async def _store(settings: _cli_config.Settings):
    """The store opened read-only: inspecting works on a read-only file and beside a busy writer."""
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider

    _check_db(settings.db, must_exist=True)
    async with SQLitePersistenceProvider(settings.db, read_only=True) as store:
        yield store


async def cmd_list(args: argparse.Namespace, settings: _cli_config.Settings) -> int:
    if args.limit < 1 or args.offset < 0:
        raise UsageError("--limit must be >= 1 and --offset >= 0")
    async with _store(settings) as store:
        rows = await store.list_workflows(args.status, args.workflow_type, args.limit, args.offset)
    docs = [_row_dict(r) for r in rows]
    for row, doc in zip(rows, docs, strict=True):  # listed, and named, rather than failing the list
        if row.get("unreadable"):
            doc["unreadable"] = row["unreadable"]
            print(f"{PROG}: warning: workflow {doc['id']}: {row['unreadable']}", file=sys.stderr)
    table = [
        (d["id"], d["workflow_type"], d["status"], d["current_step"], d["updated_at"]) for d in docs
    ]
    _emit(
        args,
        docs,
        _table(("ID", "TYPE", "STATUS", "STEP", "UPDATED"), table) if docs else "no workflows",
    )
    return OK


async def cmd_show(args: argparse.Namespace, settings: _cli_config.Settings) -> int:
    wid = _workflow_id(args.id)
    async with _store(settings) as store:
        doc = _row_dict(await store.load_workflow(wid))
        audit = (
            [a.model_dump() for a in await store.get_audit_logs(str(wid))] if args.audit else None
        )
    text = _describe(doc)
    if audit is not None:
        doc["audit"] = audit
        rows = [(a["recorded_at"], a["event_type"], a["step_name"], _arrow(a)) for a in audit]
        text += "\n\n" + _table(("RECORDED_AT", "EVENT", "STEP", "STATUS"), rows)
    _emit(args, doc, text)
    return OK


def _arrow(a: dict[str, Any]) -> str:
    old, new = a.get("old_status"), a.get("new_status")
    return f"{old or '-'} -> {new}" if new and new != old else (new or "-")


async def cmd_resume(args: argparse.Namespace, settings: _cli_config.Settings) -> int:
    wid, data = _workflow_id(args.id), _parse_json_object(args.input, "--input")
    registry, _ = _build_registry(settings)
    async with _engine(settings, registry) as engine:
        return _outcome(args, await engine.resume(wid, data))


async def cmd_cancel(args: argparse.Namespace, settings: _cli_config.Settings) -> int:
    wid = _workflow_id(args.id)
    registry, _ = _build_registry(settings)
    async with _engine(settings, registry) as engine:
        wf = await engine.cancel(wid)
    doc = wf.to_dict()
    _emit(args, doc, _describe(doc))
    return OK


async def cmd_retry(args: argparse.Namespace, settings: _cli_config.Settings) -> int:
    wid = _workflow_id(args.id)
    registry, _ = _build_registry(settings)
    async with _engine(settings, registry) as engine:
        return _outcome(args, await engine.retry(wid))


def cmd_serve(args: argparse.Namespace, settings: _cli_config.Settings) -> int:
    worker = _optional("worker", "serve")
    _check_db(settings.db, must_exist=False)
    return int(worker.main(settings, _build_registry(settings)[0]) or 0)


async def cmd_import_ruvon_db(args: argparse.Namespace, settings: _cli_config.Settings) -> int:
    """Exit 0 when every workflow was imported or already there, 1 when some were refused."""
    from ruvon_edge.implementations.persistence.sqlite import SQLitePersistenceProvider
    from ruvon_edge.ruvon_sdk_db import NotARuvonSdkDatabase, RuvonSdkDatabase
    from ruvon_edge.ruvon_sdk_import import import_ruvon_db

    registry, _ = _build_registry(settings)
    _check_db(settings.db, must_exist=False)
    if (
        Path(settings.db).exists()
        and Path(args.old).exists()
        and Path(settings.db).samefile(args.old)
    ):
        raise UsageError(f"{args.old} is both the old database and --db; import into a new file")
    try:
        old = RuvonSdkDatabase(args.old)
    except NotARuvonSdkDatabase as exc:
        raise UsageError(str(exc)) from None
    with old:
        async with SQLitePersistenceProvider(settings.db) as store:
            report = await import_ruvon_db(old, store, registry)
    _emit(args, report.to_dict(), report.text())
    return FAILURE if report.refused else OK


def cmd_demo(args: argparse.Namespace) -> int:
    demo = _optional("demo", "demo")
    return int(demo.main(workdir=args.workdir, payments=args.payments, as_json=args.json) or 0)


def _optional(module: str, verb: str) -> Any:
    from importlib import import_module

    try:
        return import_module(f"ruvon_edge.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"ruvon_edge.{module}":
            raise
        raise UsageError(
            f"{verb} is not available in this build (ruvon_edge.{module} is missing)"
        ) from None


# -- entry point --------------------------------------------------------------------

_ASYNC_VERBS = {"run": cmd_run, "list": cmd_list, "show": cmd_show, "resume": cmd_resume, "cancel": cmd_cancel, "retry": cmd_retry, "import-ruvon-db": cmd_import_ruvon_db}  # fmt: skip


def _dispatch(args: argparse.Namespace) -> int:
    flags = {
        k: getattr(args, k, None)
        for k in ("db", "definitions", "allow_modules", "module_path", "config")
    }
    settings = _cli_config.resolve(flags)
    if args.verb == "validate":
        return cmd_validate(args, settings)
    if args.verb == "serve":
        return cmd_serve(args, settings)
    # A one-shot verb reports a failure as its one error line; the library's log lines
    # (e.g. "disk full: released the reserve") belong to the daemons' logs, not here.
    logging.getLogger("ruvon_edge").addHandler(logging.NullHandler())
    if args.verb == "demo":
        return cmd_demo(args)
    return asyncio.run(_ASYNC_VERBS[args.verb](args, settings))


def _exit_code(exc: BaseException) -> int | None:
    """Map a known error to its exit code; None means unexpected (a bug)."""
    from pydantic import ValidationError

    from ruvon_edge.errors import (
        DefinitionError,
        InvalidInputError,
        InvalidTransitionError,
        RuvonError,
    )
    from ruvon_edge.providers.persistence import PersistenceError, WorkflowNotFoundError

    user = (UsageError, _cli_config.ConfigError, DefinitionError, InvalidInputError, InvalidTransitionError, WorkflowNotFoundError, ValidationError)  # fmt: skip
    if isinstance(exc, user):
        return USAGE
    if isinstance(exc, RuvonError | PersistenceError | OSError):
        return FAILURE
    return None


def _one_line(exc: BaseException) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "input"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"invalid data: {where}: {first['msg']}{more}"
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ruvon-edge`` command; return its exit code."""
    args = build_parser().parse_args(argv)  # exits 2 on bad usage
    args.json = bool(getattr(args, "json", False))
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code = _exit_code(exc)
        if code is None:
            if os.environ.get("RUVON_DEBUG"):
                raise
            print(
                f"{PROG}: error: internal error: {type(exc).__name__}: {_one_line(exc)} (RUVON_DEBUG=1 shows the traceback)",
                file=sys.stderr,
            )
            return FAILURE
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
