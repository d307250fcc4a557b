"""``EventPublisherObserver``: every lifecycle hook appended to a Redis Stream.

Why a stream: dashboards, alerting and other services follow workflows with
``XREAD``/consumer groups without touching the store. The stream is capped
(``XADD ... MAXLEN ~ maxlen``), and publishing is best effort: a Redis
outage is logged and never reaches the engine.

Entry layout -- every value is a string; ``None`` values are left out:

==========================  ===============================================
field                       value
==========================  ===============================================
``event``                   hook name without ``on_``: ``workflow_started``,
                            ``step_executed``, ``workflow_completed``,
                            ``workflow_failed``, ``workflow_status_changed``,
                            ``workflow_paused``, ``workflow_resumed``,
                            ``compensation_started``,
                            ``compensation_completed``,
                            ``child_workflow_started``
``workflow_id``             the workflow (for ``child_workflow_started``:
                            the parent)
``ts``                      ISO-8601 UTC time of publishing
``workflow_type``           ``workflow_started``
``step_name``               step hooks, paused/resumed, compensation hooks
``result``                  ``step_executed``: JSON (see ``include_data``)
``duration_ms``             ``step_executed``: decimal milliseconds
``error``                   ``workflow_failed``, ``compensation_completed``
``old_status``/``new_status``  ``workflow_status_changed``
``reason``                  ``workflow_paused``
``resume_data``             ``workflow_resumed``: JSON (see ``include_data``)
``step_index``              ``compensation_started``: decimal integer
``success``                 ``compensation_completed``: ``true``/``false``
``parent_id``, ``child_id``, ``child_type``  ``child_workflow_started``
==========================  ===============================================

JSON values longer than ``max_value_chars`` are cut and end with ``…``. With
``include_data=False``, ``result`` and ``resume_data`` carry only the sorted
list of their keys, for streams readable by people who must not see payloads.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from ruvon_edge.providers.observer import WorkflowObserver

logger = logging.getLogger(__name__)


class EventPublisherObserver(WorkflowObserver):
    """Publishes workflow lifecycle events to the Redis Stream ``stream``."""

    def __init__(
        self,
        redis_url: str,
        stream: str = "ruvon:events",
        maxlen: int = 10000,
        *,
        include_data: bool = True,
        max_value_chars: int = 8192,
        socket_timeout: float = 2.0,
    ) -> None:
        self.redis_url = redis_url
        self.stream = stream
        self.maxlen = maxlen
        self.include_data = include_data
        self.max_value_chars = max_value_chars
        self._socket_timeout = socket_timeout
        self._client: Any = None

    async def close(self) -> None:
        """Close the Redis connection; safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _connect(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.from_url(
                self.redis_url,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._socket_timeout,
            )
        return self._client

    def _json(self, value: Any) -> str:
        if not self.include_data:
            value = sorted(map(str, value)) if isinstance(value, dict) else type(value).__name__
        text = json.dumps(value, default=str, separators=(",", ":"))
        return text if len(text) <= self.max_value_chars else text[: self.max_value_chars - 1] + "…"

    async def _publish(self, event: str, workflow_id: Any, **fields: Any) -> None:
        """XADD one entry; any failure is logged, never raised."""
        entry = {
            "event": event,
            "workflow_id": str(workflow_id),
            "ts": datetime.now(UTC).isoformat(),
        }
        entry.update({k: str(v) for k, v in fields.items() if v is not None})
        try:
            await self._connect().xadd(self.stream, entry, maxlen=self.maxlen, approximate=True)
        except Exception as exc:  # best effort: the engine must never see an event-bus failure
            logger.warning("could not publish %s of workflow %s to stream %s: %s", event, workflow_id, self.stream,
                           f"{type(exc).__name__}: {exc}")  # fmt: skip

    async def on_workflow_started(self, workflow_id, workflow_type: str) -> None:
        await self._publish("workflow_started", workflow_id, workflow_type=workflow_type)

    async def on_step_executed(
        self, workflow_id, step_name: str, result: Any, duration_ms: float | None = None
    ) -> None:
        await self._publish("step_executed", workflow_id, step_name=step_name, result=self._json(result),
                            duration_ms=duration_ms)  # fmt: skip

    async def on_workflow_completed(self, workflow_id) -> None:
        await self._publish("workflow_completed", workflow_id)

    async def on_workflow_failed(self, workflow_id, error: Any) -> None:
        await self._publish("workflow_failed", workflow_id, error=error)

    async def on_workflow_status_changed(
        self, workflow_id, old_status: str, new_status: str
    ) -> None:
        await self._publish(
            "workflow_status_changed", workflow_id, old_status=old_status, new_status=new_status
        )

    async def on_workflow_paused(self, workflow_id, step_name: str, reason: str) -> None:
        await self._publish("workflow_paused", workflow_id, step_name=step_name, reason=reason)

    async def on_workflow_resumed(self, workflow_id, step_name: str, resume_data: Any) -> None:
        await self._publish(
            "workflow_resumed",
            workflow_id,
            step_name=step_name,
            resume_data=self._json(resume_data),
        )

    async def on_compensation_started(self, workflow_id, step_name: str, step_index: int) -> None:
        await self._publish(
            "compensation_started", workflow_id, step_name=step_name, step_index=step_index
        )

    async def on_compensation_completed(
        self, workflow_id, step_name: str, success: bool, error: Any = None
    ) -> None:
        await self._publish("compensation_completed", workflow_id, step_name=step_name,
                            success="true" if success else "false", error=error)  # fmt: skip

    async def on_child_workflow_started(self, parent_id, child_id, child_type: str) -> None:
        await self._publish("child_workflow_started", parent_id, parent_id=parent_id, child_id=child_id,
                            child_type=child_type)  # fmt: skip
