"""HTTP to the receiver: sign, gzip, retry with capped full-jitter backoff, honour Retry-After.

Every attempt is signed afresh (a nonce is single-use), TLS is always
verified (an extra CA bundle may be added, verification is never turned off),
and a response counts only if it parses as the complete v1 answer -- a 200
with ``{}``, an HTML captive portal or a truncated body is an error that acks
nothing.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import ssl
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from sync_agent import protocol, version
from sync_agent.settings import SyncSettings

log = structlog.get_logger("ruvon_sync")


class TransportError(Exception):
    """A batch was not delivered; ``retryable`` says whether trying again may help.

    ``reason`` is a short stable label (the ``reason`` of the
    ``ruvon_sync_cycle_failures_total`` metric); ``attempts`` how many tries it took.
    """

    retryable = True
    reason = "http_error"

    def __init__(
        self,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        self.attempts = 1
        if reason:
            self.reason = reason
        super().__init__(message)


class AuthRefused(TransportError):
    """401/403: the receiver does not accept our key or signature; nothing local changes."""

    retryable = False
    reason = "auth"


class TooLarge(TransportError):
    """413: the body is more than the receiver (or a proxy before it) accepts; split and resend."""

    retryable = False
    reason = "too_large"


class Refused(TransportError):
    """Another 4xx: the receiver refused the batch as a whole."""

    retryable = False
    reason = "refused"


class Stopped(Exception):
    """A stop was requested while waiting to retry."""


def _retry_after(value: str | None, cap: float) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return min(float(value), cap)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when - time.time()), cap)


def clock_offset(date_header: str | None, received_at: float) -> float | None:
    """Seconds the device clock is ahead of the receiver's ``Date`` (negative: behind; 1 s resolution)."""
    if not date_header:
        return None
    try:
        return round(received_at - email.utils.parsedate_to_datetime(date_header).timestamp(), 1)
    except (TypeError, ValueError):
        return None


class Transport:
    """One httpx client per agent run; ``sent_bytes``/``raw_bytes`` count what went on the wire.

    ``retries`` counts failed attempts that were tried again; ``clock_offset``
    is the last offset measured from a response's ``Date`` header.
    """

    def __init__(self, settings: SyncSettings, stop: asyncio.Event | None = None) -> None:
        settings.require_remote()
        assert (
            settings.url and settings.device_id and settings.key_id and settings.secret
        )  # checked just above
        self.settings = settings
        self.device_id: str = settings.device_id
        self._key_id: str = settings.key_id
        self._secret = settings.secret
        self.stop = stop or asyncio.Event()
        prefix = str(urlsplit(settings.url).path)
        self.path = protocol.batch_path(settings.device_id, prefix)
        self.heartbeat_path = protocol.heartbeat_path(settings.device_id, prefix)
        self.raw_bytes = 0
        self.sent_bytes = 0
        self.requests = 0
        self.retries = 0
        self.clock_offset: float | None = None
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Transport:
        verify: ssl.SSLContext | bool = True
        if self.settings.ca_file:
            verify = ssl.create_default_context(cafile=str(self.settings.ca_file))
        self._client = httpx.AsyncClient(
            verify=verify,
            timeout=self.settings.timeout,
            headers={"User-Agent": f"ruvon-sync/{version()}", "Content-Type": "application/json"},
            follow_redirects=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()

    def encode(self, body: bytes) -> tuple[bytes, dict[str, str]]:
        """Return the bytes to send and their content headers (gzip above the threshold)."""
        if len(body) > self.settings.gzip_threshold:
            return gzip.compress(body, compresslevel=5, mtime=0), {"Content-Encoding": "gzip"}
        return body, {}

    async def send(self, body: bytes, batch_id: str) -> tuple[protocol.BatchResponse, int]:
        """Deliver one batch, retrying transient failures; raise ``TransportError`` or ``Stopped``.

        Returns the answer and the bytes this batch put on the wire (all attempts):
        sends may overlap, so ``sent_bytes`` differences do not tell one batch's share.
        """
        wire, content_headers = self.encode(body)
        attempts = 0
        s = self.settings
        jitter = wait_random_exponential(multiplier=s.backoff_base, max=s.backoff_max)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, TransportError) and exc.retry_after is not None:
                return exc.retry_after
            return jitter(state)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.retries += 1
            log.info("batch_retry", batch_id=batch_id, attempt=state.attempt_number,
                     error=str(exc), http_status=getattr(exc, "status", None),
                     retry_in_s=round(state.upcoming_sleep, 3))  # fmt: skip

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, TransportError) and e.retryable),
            stop=stop_after_attempt(s.attempts),
            wait=wait,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    r = await self._post(self.path, wire, content_headers, batch_id)
                    response = _batch_answer(r, batch_id, s.url or "")
        except TransportError as exc:
            exc.attempts = attempts
            raise
        self.raw_bytes += len(body)
        return response, attempts * len(wire)

    async def heartbeat(self, body: bytes) -> bool:
        """Send one signed heartbeat (no retries); False when the receiver does not know the route."""
        try:
            await self._post(self.heartbeat_path, body, {}, str(uuid.uuid4()))
        except TransportError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            return
        raise Stopped()

    async def _post(
        self, path: str, wire: bytes, content_headers: dict[str, str], request_id: str
    ) -> httpx.Response:
        """POST signed bytes under an overall deadline; return a 200, raise for anything else."""
        s = self.settings
        headers = protocol.signed_headers(
            self._key_id, self._secret.get_secret_value(), path, wire, request_id
        )
        headers.update(content_headers)
        self.requests += 1
        self.sent_bytes += len(wire)
        if self._client is None:
            raise RuntimeError("Transport is used outside `async with`")
        url = urlunsplit(urlsplit(s.url or "")._replace(path=path))
        try:
            async with asyncio.timeout(s.timeout):  # httpx's timeout is per read, not overall
                r = await self._client.post(url, content=wire, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            raise TransportError(
                f"no complete answer from {s.url} within {s.timeout:g}s", reason="timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise TransportError(
                f"cannot reach {s.url}: {type(exc).__name__}: {exc}", reason="unreachable"
            ) from None
        if (offset := clock_offset(r.headers.get("date"), time.time())) is not None:
            self.clock_offset = offset
        if r.status_code == 200:
            return r
        reason = _reason(r)
        if r.status_code in (401, 403):
            if "timestamp" in reason and self.clock_offset is not None:
                side = "ahead" if self.clock_offset > 0 else "behind"
                reason += (
                    f"; device clock is {abs(self.clock_offset):.0f} s {side}; check time sync"
                )
            raise AuthRefused(
                f"receiver refused our credentials ({r.status_code}: {reason})", r.status_code
            )
        if r.status_code == 413:
            raise TooLarge(f"batch too large for the receiver (413: {reason})", 413)
        if r.status_code in (408, 425, 429) or r.status_code >= 500:
            retry_after = _retry_after(r.headers.get("retry-after"), s.backoff_max)
            raise TransportError(
                f"receiver answered {r.status_code}: {reason}", r.status_code, retry_after,
                reason="throttled" if r.status_code in (429, 503) else "server_error",
            )  # fmt: skip
        raise Refused(f"receiver refused the request ({r.status_code}: {reason})", r.status_code)


def _batch_answer(r: httpx.Response, batch_id: str, url: str) -> protocol.BatchResponse:
    """The 200's body as a complete v1 answer for this batch, or a ``TransportError``."""
    try:
        parsed = protocol.BatchResponse.model_validate_json(r.content)
    except ValidationError:
        raise TransportError(
            f"200 from {url} is not a v1 batch answer ({r.headers.get('content-type', '?')})",
            reason="bad_answer",
        ) from None
    if parsed.batch_id != batch_id:
        raise TransportError(
            f"answer for batch {parsed.batch_id!r}, expected {batch_id!r}", reason="bad_answer"
        )
    return parsed


def _reason(r: httpx.Response) -> str:
    try:
        error = r.json().get("error")
    except (ValueError, AttributeError):
        error = None
    return str(error or r.reason_phrase or "no reason")[:200]
