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
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from sync_agent import protocol
from sync_agent.settings import SyncSettings


class TransportError(Exception):
    """A batch was not delivered; ``retryable`` says whether trying again may help."""

    retryable = True

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class AuthRefused(TransportError):
    """401/403: the receiver does not accept our key or signature; nothing local changes."""

    retryable = False


class TooLarge(TransportError):
    """413: the batch must be split."""

    retryable = False


class Refused(TransportError):
    """Another 4xx: the receiver refused the batch as a whole."""

    retryable = False


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


class Transport:
    """One httpx client per agent run; ``sent_bytes``/``raw_bytes`` count what went on the wire."""

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
        self.path = protocol.batch_path(settings.device_id, str(urlsplit(settings.url).path))
        self.url = settings.url.rstrip("/") + protocol.BATCH_PATH.format(
            device_id=settings.device_id
        )
        self.raw_bytes = 0
        self.sent_bytes = 0
        self.requests = 0
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Transport:
        verify: ssl.SSLContext | bool = True
        if self.settings.ca_file:
            verify = ssl.create_default_context(cafile=str(self.settings.ca_file))
        self._client = httpx.AsyncClient(
            verify=verify,
            timeout=self.settings.timeout,
            headers={"User-Agent": "ruvon-sync/1", "Content-Type": "application/json"},
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

        def wait(state) -> float:
            exc = state.outcome.exception()
            if isinstance(exc, TransportError) and exc.retry_after is not None:
                return exc.retry_after
            return jitter(state)

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, TransportError) and e.retryable),
            stop=stop_after_attempt(s.attempts),
            wait=wait,
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                attempts += 1
                response = await self._post(wire, content_headers, batch_id)
        self.raw_bytes += len(body)
        return response, attempts * len(wire)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            return
        raise Stopped()

    async def _post(
        self, wire: bytes, content_headers: dict[str, str], batch_id: str
    ) -> protocol.BatchResponse:
        s = self.settings
        headers = protocol.signed_headers(
            self._key_id, self._secret.get_secret_value(), self.path, wire, batch_id
        )
        headers.update(content_headers)
        self.requests += 1
        self.sent_bytes += len(wire)
        if self._client is None:
            raise RuntimeError("Transport is used outside `async with`")
        try:
            r = await self._client.post(self.url, content=wire, headers=headers)
        except httpx.TimeoutException:
            raise TransportError(f"no answer from {s.url} within {s.timeout}s") from None
        except httpx.HTTPError as exc:
            raise TransportError(f"cannot reach {s.url}: {type(exc).__name__}: {exc}") from None
        if r.status_code == 200:
            try:
                parsed = protocol.BatchResponse.model_validate_json(r.content)
            except ValidationError:
                raise TransportError(
                    f"200 from {s.url} is not a v1 batch answer ({r.headers.get('content-type', '?')})"
                ) from None
            if parsed.batch_id != batch_id:
                raise TransportError(f"answer for batch {parsed.batch_id!r}, expected {batch_id!r}")
            return parsed
        reason = _reason(r)
        if r.status_code in (401, 403):
            raise AuthRefused(
                f"receiver refused our credentials ({r.status_code}: {reason})", r.status_code
            )
        if r.status_code == 413:
            raise TooLarge(f"batch too large for the receiver (413: {reason})", 413)
        if r.status_code in (408, 425, 429) or r.status_code >= 500:
            retry_after = _retry_after(r.headers.get("retry-after"), s.backoff_max)
            raise TransportError(
                f"receiver answered {r.status_code}: {reason}", r.status_code, retry_after
            )
        raise Refused(f"receiver refused the batch ({r.status_code}: {reason})", r.status_code)


def _reason(r: httpx.Response) -> str:
    try:
        error = r.json().get("error")
    except (ValueError, AttributeError):
        error = None
    return str(error or r.reason_phrase or "no reason")[:200]
