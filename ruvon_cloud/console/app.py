"""The read-only operator console under ``/console``, mounted by the receiver app.

Who may look: an operator token as ``Authorization: Bearer`` (scripts, curl),
or a session cookie set by the login form (browsers). The login POST and the
logout POST are the only state-changing requests; every page is a GET that
changes nothing, and the session cookie is ``SameSite=Strict`` and
``HttpOnly``, so another site can neither read pages nor act through them.
Without credentials a browser is redirected to the form and anything else gets
401. Device keys authenticate batches by signature, never by bearer token, so
they cannot open the console, and operator tokens mean nothing to the batch
route.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from importlib import resources

from ruvon_cloud.console import operators
from ruvon_cloud.console.http import (
    FormTooLarge,
    Request,
    login_location,
    read_form,
    safe_next,
    send_html,
    send_redirect,
    send_response,
    send_unauthorized,
)
from ruvon_cloud.console.pages import NotFound, Page, Pages
from ruvon_cloud.console.render import render
from ruvon_cloud.store import Store, StoreUnavailable

PREFIX = "/console"
COOKIE = "ruvon_console_session"
log = logging.getLogger(__name__)

_STATIC = {"/console/static/console.css": ("console.css", b"text/css; charset=utf-8")}
_PAGES: list[tuple[re.Pattern[str], Callable[..., Awaitable[Page]]]] = [
    (re.compile(r"/console/?"), Pages.fleet),
    (re.compile(r"/console/devices/([^/]+)"), Pages.device),
    (re.compile(r"/console/devices/([^/]+)/workflows/(.+)"), Pages.workflow),
    (re.compile(r"/console/workflows/?"), Pages.search),
    (re.compile(r"/console/failures/?"), Pages.failures),
]


def is_console_path(path: str) -> bool:
    """True for every path the console answers (and only those)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


class ConsoleApp:
    """An ASGI app for ``/console...`` paths over the receiver's store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pages = Pages(store)

    async def __call__(self, scope: dict, receive, send) -> None:
        request = Request.from_scope(scope)
        try:
            await self._dispatch(request, receive, send)
        except NotFound as exc:
            await _error(send, 404, "Not found", str(exc))
        except StoreUnavailable as exc:
            log.error("console_store_unavailable", extra={"path": request.path, "error": str(exc)})
            await _error(
                send, 503, "Store unavailable", "The store did not answer; try again shortly.",
                [(b"retry-after", b"5")],
            )  # fmt: skip

    async def _dispatch(self, request: Request, receive, send) -> None:
        if request.path in _STATIC:
            name, content_type = _STATIC[request.path]
            body = resources.files("ruvon_cloud.console").joinpath("static", name).read_bytes()
            await send_response(send, 200, body, content_type)
            return
        if request.path == "/console/login":
            await self._login(request, receive, send)
            return
        if request.path == "/console/logout" and request.method == "POST":
            await operators.close_session(self.store, request.cookies.get(COOKIE, ""))
            await send_redirect(
                send, "/console/login", [_cookie("", max_age=0, secure=request.secure)]
            )
            return
        operator = await self._operator(request)
        if operator is None:
            if request.wants_html() and request.bearer() is None:
                await send_redirect(send, login_location(request))
            else:
                await send_unauthorized(send)
            return
        if request.method not in ("GET", "HEAD"):
            await _error(send, 405, "Method not allowed", "The console is read-only.")
            return
        for pattern, page in _PAGES:
            match = pattern.fullmatch(request.path)
            if match:
                template, context = await page(self.pages, request, *match.groups())
                html = render(template, operator=operator, **context)
                await send_html(send, 200, html)
                return
        raise NotFound(f"No console page at {request.path}.")

    async def _operator(self, request: Request) -> str | None:
        token = request.bearer()
        if token is not None:
            return await operators.operator_for_token(self.store, token)
        return await operators.operator_for_session(self.store, request.cookies.get(COOKIE, ""))

    async def _login(self, request: Request, receive, send) -> None:
        if request.method != "POST":
            html = render(
                "login.html", operator=None, error=None, next=safe_next(request.query.get("next"))
            )
            await send_html(send, 200, html)
            return
        try:
            form = await read_form(receive)
        except FormTooLarge:
            form = {}
        target = safe_next(form.get("next"))
        operator = await operators.operator_for_token(self.store, form.get("token", "").strip())
        if operator is None:
            log.warning("console_login_refused")
            html = render(
                "login.html",
                operator=None,
                error="That is not a valid operator token.",
                next=target,
            )
            await send_html(send, 401, html)
            return
        session = await operators.open_session(self.store, operator)
        log.info("console_login", extra={"operator": operator})
        await send_redirect(
            send, target, [_cookie(session, operators.SESSION_SECONDS, request.secure)]
        )


async def _error(send, status: int, title: str, message: str, extra: list | None = None) -> None:
    html = render("error.html", operator=None, status=status, title=title, message=message)
    await send_html(send, status, html, extra)


def _cookie(value: str, max_age: int, secure: bool) -> tuple[bytes, bytes]:
    attrs = f"{COOKIE}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    return (b"set-cookie", (attrs + ("; Secure" if secure else "")).encode())
