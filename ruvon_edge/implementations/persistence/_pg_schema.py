"""PostgreSQL schema of the persistence provider, as ordered migrations.

Columns mirror the SQLite schema (``_schema``) and are filled by the shared
row shaping (``_rows``), with PostgreSQL types: JSONB, TIMESTAMPTZ, BIGSERIAL.
``migrate`` runs under a transaction-scoped advisory lock, so several
processes starting at once apply each migration exactly once; the applied
versions are rows of ``schema_version``.
"""

from __future__ import annotations

from typing import Any

from ruvon_edge.providers.persistence import PersistenceError

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE SEQUENCE IF NOT EXISTS workflow_sync_seq;
        CREATE TABLE IF NOT EXISTS workflows (
            id TEXT PRIMARY KEY,
            seq BIGSERIAL,
            workflow_type TEXT NOT NULL,
            workflow_version TEXT,
            status TEXT NOT NULL,
            state JSONB NOT NULL DEFAULT '{}',
            current_step TEXT,
            definition JSONB,
            parent_id TEXT,
            idempotency_key TEXT,
            owner_id TEXT,
            data_region TEXT,
            saga_log JSONB,
            context JSONB,
            error JSONB,
            extra JSONB,
            version BIGINT NOT NULL,
            sync_seq BIGINT,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            completed_at TIMESTAMPTZ
        );
        CREATE UNIQUE INDEX IF NOT EXISTS workflows_idempotency_key
            ON workflows (idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE INDEX IF NOT EXISTS workflows_created ON workflows (created_at DESC, seq DESC);
        CREATE INDEX IF NOT EXISTS workflows_status ON workflows (status, created_at DESC, seq DESC);
        CREATE INDEX IF NOT EXISTS workflows_type ON workflows (workflow_type, created_at DESC, seq DESC);
        CREATE INDEX IF NOT EXISTS workflows_parent ON workflows (parent_id) WHERE parent_id IS NOT NULL;
        CREATE TABLE IF NOT EXISTS audit_log (
            seq BIGSERIAL PRIMARY KEY,
            audit_id TEXT NOT NULL UNIQUE,
            workflow_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            step_name TEXT,
            old_status TEXT,
            new_status TEXT,
            details JSONB,
            recorded_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX IF NOT EXISTS audit_log_workflow ON audit_log (workflow_id, seq);
        CREATE TABLE IF NOT EXISTS execution_logs (
            id BIGSERIAL PRIMARY KEY,
            workflow_id TEXT NOT NULL,
            step_name TEXT,
            level TEXT NOT NULL,
            message TEXT NOT NULL,
            metadata JSONB,
            logged_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX IF NOT EXISTS execution_logs_workflow ON execution_logs (workflow_id, id);
        CREATE TABLE IF NOT EXISTS metrics (
            id BIGSERIAL PRIMARY KEY,
            workflow_id TEXT NOT NULL,
            step_name TEXT,
            metric_name TEXT NOT NULL,
            metric_value DOUBLE PRECISION NOT NULL,
            metadata JSONB,
            recorded_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX IF NOT EXISTS metrics_workflow ON metrics (workflow_id, id);
        CREATE TABLE IF NOT EXISTS tasks (
            task_id TEXT PRIMARY KEY,
            seq BIGSERIAL,
            workflow_id TEXT,
            step_name TEXT,
            function_path TEXT,
            payload JSONB,
            status TEXT NOT NULL
                CHECK (status IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
            attempts INT NOT NULL DEFAULT 0,
            max_attempts INT NOT NULL,
            worker_id TEXT,
            claimed_at TIMESTAMPTZ,
            heartbeat_at TIMESTAMPTZ,
            result JSONB,
            error TEXT,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX IF NOT EXISTS tasks_queued ON tasks (created_at, seq) WHERE status = 'QUEUED';
        CREATE INDEX IF NOT EXISTS tasks_running ON tasks (heartbeat_at) WHERE status = 'RUNNING';
        CREATE INDEX IF NOT EXISTS tasks_workflow ON tasks (workflow_id);
        CREATE TABLE IF NOT EXISTS heartbeats (
            workflow_id TEXT PRIMARY KEY,
            worker_id TEXT NOT NULL,
            current_step TEXT,
            metadata JSONB,
            last_heartbeat TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX IF NOT EXISTS heartbeats_last ON heartbeats (last_heartbeat);
        """,
    ),
]

LATEST = MIGRATIONS[-1][0]


async def migrate(
    conn: Any,
    schema: str,
    migrations: list[tuple[int, str]] = MIGRATIONS,
    table: str = "schema_version",
) -> int:
    """Create ``schema`` and apply the ``migrations`` it lacks (recorded in ``table``); return the version.

    The PostgreSQL task queue keeps its own migrations and table, so both can share a schema.
    """
    latest = migrations[-1][0]
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"ruvon-schema:{schema}")
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".{table} ('
            "version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        current = await conn.fetchval(f'SELECT coalesce(max(version), 0) FROM "{schema}".{table}')
        if current > latest:
            raise PersistenceError(
                f"schema {schema!r} is at version {current} ({table}), newer than this code ({latest})"
            )
        for version, ddl in migrations:
            if version > current:
                await conn.execute(f'SET LOCAL search_path TO "{schema}"')
                await conn.execute(ddl)
                await conn.execute(f'INSERT INTO "{schema}".{table} (version) VALUES ({version})')
        return latest
