"""HTTP steps: one request described by ``http_config``, its response mapped into the state.

Rendering. Every string in ``url``, ``headers``, ``params``, ``json`` and
``body`` is rendered at run time by the engine's (sandboxed) template engine
against ``state``, ``workflow_id``, ``workflow_type`` and ``step_name``; a
render error fails the step and names the field.

Sending. httpx, imported on first use; TLS verification is always on and
redirects are not followed (a 3xx is unexpected unless listed). ``timeout``
bounds each attempt as a whole (connect, send, read). ``retry`` (or else the
step's ``retry``) retries connection failures, 5xx and 429 with exponential
backoff; a ``Retry-After`` header replaces the backoff, capped at
``max_backoff_seconds``. A response body larger than 5 MB fails the step.

Result. The status must be in ``expected_status``. The body (parsed as JSON
when the server says JSON, else text) is stored under ``output_key``, as the
reference's how-to routes on it; with ``includes`` (any of ``status_code``,
``headers``, ``body``) a wrapper of those parts is stored instead. Without
``output_key`` or ``response_mapping``, ``{"status_code", "body"}`` goes under
``<step>_response``. ``response_mapping`` maps state keys to expressions over
``body``, ``status_code`` and ``headers`` (e.g. ``{order_status: "body.status"}``). Nothing here logs header values,
and errors name the URL without its query string.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from ruvon_edge.definition.models import HttpConfig, RetryPolicy
from ruvon_edge.engine.outcome import Outcome, StepRun
from ruvon_edge.engine.templating import render_structure, template_context
from ruvon_edge.errors import ExpressionError, StepFailedError
from ruvon_edge.expressions import evaluate

MAX_RESPONSE_BYTES = 5_000_000


@dataclass
class _Reply:
    status_code: int
    headers: dict[str, str]
    body: Any


class _RetryableStatus(Exception):
    """A 5xx or 429 answer that may be retried."""

    def __init__(self, reply: _Reply, retry_after: float | None) -> None:
        super().__init__(f"HTTP {reply.status_code}")
        self.reply = reply
        self.retry_after = retry_after


async def run_http_step(run: StepRun) -> Outcome:
    """Render the request, send it (with retries), check the status, map the response."""
    config = run.step.http_config
    if config is None:
        raise StepFailedError("an HTTP step needs http_config")
    request = _render(run, config)
    where = _where(request["url"])
    reply, attempts = await _send(request, config, config.retry or run.step.retry, where)
    if reply.status_code not in config.expected_status:
        expected = ", ".join(str(s) for s in config.expected_status)
        raise StepFailedError(
            f"{config.method} {where} answered HTTP {reply.status_code} (expected {expected})"
        )
    details = {"status_code": reply.status_code, "attempts": attempts}
    return Outcome(result=_result(run, config, reply), details=details)


def _render(run: StepRun, config: HttpConfig) -> dict[str, Any]:
    engine, context = run.engine.template_engine, template_context(run)
    if config.json_body is not None and config.body is not None:
        raise StepFailedError("http_config has both 'json' and 'body'; give one")
    request: dict[str, Any] = {
        "method": config.method,
        "url": render_structure(engine, config.url, context, "http_config.url"),
        "headers": render_structure(engine, config.headers, context, "http_config.headers"),
        "params": render_structure(engine, config.params, context, "http_config.params"),
    }
    if config.json_body is not None:
        request["json"] = render_structure(engine, config.json_body, context, "http_config.json")
    if config.body is not None:
        request["content"] = render_structure(engine, config.body, context, "http_config.body")
    return request


def _where(url: str) -> str:
    """The URL without query, fragment or credentials, for error messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else url.split("?", 1)[0]


async def _send(
    request: dict[str, Any], config: HttpConfig, policy: RetryPolicy | None, where: str
) -> tuple[_Reply, int]:
    """Send with tenacity retries; return the last reply and the attempts used."""
    import httpx
    from tenacity import (
        AsyncRetrying,
        retry_if_exception_type,
        stop_after_attempt,
        wait_exponential,
    )

    attempts = policy.max_attempts if policy else 1
    backoff = wait_exponential(
        multiplier=policy.backoff_seconds if policy else 0,
        exp_base=policy.backoff_multiplier if policy else 2,
        max=policy.max_backoff_seconds if policy else 0,
    )
    cap = policy.max_backoff_seconds if policy else 0.0

    def wait(state: Any) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _RetryableStatus) and exc.retry_after is not None:
            return min(exc.retry_after, cap)
        return backoff(state)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry_if_exception_type((httpx.ConnectError, httpx.ConnectTimeout, _RetryableStatus)),
        reraise=True,
    )
    used = 0
    async with httpx.AsyncClient(
        verify=True, follow_redirects=False, timeout=config.timeout_seconds
    ) as client:
        try:
            async for attempt in retrying:
                with attempt:
                    used = attempt.retry_state.attempt_number
                    reply = await _once(client, request, config.timeout_seconds)
                    if reply.status_code == 429 or reply.status_code >= 500:
                        raise _RetryableStatus(
                            reply, _retry_after(reply.headers.get("retry-after"))
                        )
        except _RetryableStatus as exc:
            return exc.reply, used
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise StepFailedError(
                f"{config.method} {where}: cannot connect ({type(exc).__name__})"
            ) from None
        except (TimeoutError, httpx.TimeoutException):
            raise StepFailedError(
                f"{config.method} {where} timed out after {config.timeout_seconds:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise StepFailedError(
                f"{config.method} {where} failed: {type(exc).__name__}: {exc}"
            ) from None
    return reply, used


async def _once(client: Any, request: dict[str, Any], timeout: float) -> _Reply:
    """One request, the whole of it (body included) within ``timeout`` and the size cap."""
    async with asyncio.timeout(timeout), client.stream(**request) as response:
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise StepFailedError(f"response body larger than {MAX_RESPONSE_BYTES} bytes")
            chunks.append(chunk)
        content = b"".join(chunks)
        headers = {k.lower(): v for k, v in response.headers.items()}
        return _Reply(
            response.status_code,
            headers,
            _parse(content, headers.get("content-type", ""), response.encoding),
        )


def _parse(content: bytes, content_type: str, encoding: str | None) -> Any:
    if not content:
        return None
    text = content.decode(encoding or "utf-8", errors="replace")
    if "json" in content_type.lower():
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max((parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def _result(run: StepRun, config: HttpConfig, reply: _Reply) -> dict[str, Any]:
    parts = {"status_code": reply.status_code, "headers": reply.headers, "body": reply.body}
    response = {"status_code": reply.status_code, "body": reply.body}
    if config.includes is not None:
        response = {k: parts[k] for k in config.includes}
    result: dict[str, Any] = {}
    if config.output_key:
        result[config.output_key] = reply.body if config.includes is None else response
    elif config.includes is not None:
        result[f"{run.step.name}_response"] = response
    scope = {"body": reply.body, "status_code": reply.status_code, "headers": reply.headers}
    for key, expression in config.response_mapping.items():
        try:
            result[key] = evaluate(expression, scope)
        except ExpressionError as exc:
            raise StepFailedError(f"http_config.response_mapping.{key}: {exc.reason}") from None
    if not result and not config.response_mapping:
        result[f"{run.step.name}_response"] = response
    return result
