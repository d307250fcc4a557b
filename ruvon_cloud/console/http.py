"""The little HTTP the console needs on raw ASGI: a request view, HTML/redirect/401 answers.

Every console answer carries the same hardening headers: a CSP that allows only
the console's own stylesheet (no script at all), no caching, no framing, no
referrer -- pages show fleet data that should not linger in shared caches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlencode

MAX_FORM_BYTES = 4096
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
]  # fmt: skip


class FormTooLarge(Exception):
    """A login form body over ``MAX_FORM_BYTES``."""


@dataclass
class Request:
    """What a console handler reads from an ASGI ``scope``."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    secure: bool
    cookies: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_scope(cls, scope: dict) -> Request:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        raw_query = scope.get("query_string", b"").decode("latin-1")
        query = {k: v[0].strip() for k, v in parse_qs(raw_query).items() if v[0].strip()}
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except CookieError:  # a malformed Cookie header counts as no cookies
            cookies = SimpleCookie()
        return cls(
            method=scope["method"],
            path=scope["path"],
            query=query,
            headers=headers,
            secure=scope.get("scheme") == "https",
            cookies={k: m.value for k, m in cookies.items()},
        )

    def wants_html(self) -> bool:
        """A browser navigation (redirect it to the login form) rather than an API client (401)."""
        return "text/html" in self.headers.get("accept", "")

    def bearer(self) -> str | None:
        """The token of an ``Authorization: Bearer`` header, if any."""
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def read_form(receive) -> dict[str, str]:
    """Read a small urlencoded body; ``FormTooLarge`` past ``MAX_FORM_BYTES``."""
    body, more = b"", True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return {}
        body += message.get("body", b"")
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge
        more = message.get("more_body", False)
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


async def send_response(
    send, status: int, body: bytes, content_type: bytes, extra: list | None = None
) -> None:
    """Send a complete response with the console's hardening headers."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status,
         "headers": headers + SECURITY_HEADERS + (extra or [])}
    )  # fmt: skip
    await send({"type": "http.response.body", "body": body})


async def send_html(send, status: int, html: str, extra: list | None = None) -> None:
    """Send a rendered page."""
    await send_response(send, status, html.encode(), b"text/html; charset=utf-8", extra)


async def send_redirect(send, location: str, extra: list | None = None) -> None:
    """303 to ``location`` (a path on this server)."""
    await send_response(
        send, 303, b"", b"text/plain", [(b"location", location.encode("latin-1"))] + (extra or [])
    )


async def send_unauthorized(send) -> None:
    """401 for API clients: a bearer token is what opens the console."""
    body = json.dumps({"error": "operator token required"}).encode()
    await send_response(
        send,
        401,
        body,
        b"application/json",
        [(b"www-authenticate", b'Bearer realm="ruvon-console"')],
    )


def login_location(request: Request) -> str:
    """The login form, remembering where the browser was going."""
    target = request.path + ("?" + urlencode(request.query) if request.query else "")
    return "/console/login?" + urlencode({"next": target})


def safe_next(target: str | None) -> str:
    """Only console paths are followed after login (never another host: no open redirect)."""
    if (
        target
        and target.isascii()
        and target.isprintable()
        and target.startswith("/console")
        and "//" not in target
        and "\\" not in target
    ):
        return target
    return "/console"
