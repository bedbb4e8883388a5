"""The bot's small web server: `/healthz`, the link start page and the OAuth callback pages (never a 500)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from bot.accounts import STATE_TTL, AccountService, Linked, link_cookie_name
from bot.errors import LinkFailed
from bot.replies import incident_page, linked_page, page_html, server_error_page
from bot.store import Database

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
SERVER_NAME = "mutebot"  # instead of aiohttp's "Python/3.x aiohttp/3.y": no versions for scanners to match

# Bounds on what a client may send. Nothing here reads a body; a head is a request line, a few headers, a cookie.
HEAD_TIMEOUT = 10.0  # seconds to send a whole request head (and the idle time allowed between kept-alive requests)
MAX_LINE = 8190  # the request line (the callback's query) and each header line
MAX_HEADERS = 48
MAX_BODY = 16 * 1024


def refused(failure: LinkFailed) -> web.Response:
    """A link that cannot go on: 400, with the heading its reason always has."""
    return page(400, failure.title, failure.page)


def page(status: int, title: str, message: str) -> web.Response:
    return web.Response(status=status, text=page_html(title, message), content_type="text/html", charset="utf-8",
                        headers={**SECURITY_HEADERS, "Server": SERVER_NAME})


def error_page(status: int) -> web.Response:
    return page(status, *server_error_page(status))


class HeadTimeoutHandler(web.RequestHandler):
    """aiohttp's connection protocol with a deadline for each request head, which aiohttp lacks: a client that
    trickles its head a byte at a time (slowloris) is cut off, as is a kept-alive connection left idle."""

    __slots__ = ("_head_timeout", "_head_timer", "_serving")

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._serving = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def request_started(self) -> None:
        self._serving += 1
        self._disarm()

    def request_finished(self) -> None:
        self._serving -= 1
        if self._serving == 0:
            self._arm()  # the next request on this kept-alive connection gets the same deadline

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = asyncio.get_running_loop().call_later(self._head_timeout, self._late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _late(self) -> None:
        self._head_timer = None
        if self._serving == 0 and self.transport is not None:
            log.debug("closed a connection that sent no complete request head within %.0f s", self._head_timeout)
            self.transport.close()

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """Requests aiohttp refuses before any handler runs (a malformed head, one too large): our page, with our
        headers, and no traceback in the log."""
        if request.writer.output_size > 0:
            raise ConnectionError("the response was already being sent")
        log.info("refused a request that could not be served (%s, %s)", status, type(exc).__name__ if exc else "-")
        response = error_page(503 if status >= 500 else status)
        response.force_close()
        return response


@web.middleware
async def guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Our pages for every refusal, bounded bodies, and never a 500; tells the connection a request is served."""
    protocol = request.protocol
    watched = protocol if isinstance(protocol, HeadTimeoutHandler) else None
    if watched is not None:
        watched.request_started()
    try:
        if request.content_length is not None and request.content_length > MAX_BODY:
            response = error_page(413)
            response.force_close()  # its body is not read
            return response
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_page(exc.status)
        except Exception:
            incident = secrets.token_hex(4)
            log.exception("incident %s while serving %s", incident, request.path)
            if request.path.startswith("/oauth/"):
                return page(400, *incident_page(incident))
            return web.json_response({"status": "error", "incident": incident}, status=503)
    finally:
        if watched is not None:
            watched.request_finished()


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response of the app carries the security headers and our server name."""
    response.headers["Server"] = SERVER_NAME
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _linked_page(linked: Linked) -> web.Response:
    return page(200, *linked_page(linked))


def build_app(db: Database, accounts: AccountService) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app.on_response_prepare.append(_headers)
    base = accounts.settings.public_base_url or ""
    secure = base.startswith("https://")
    cookie_path = base.partition("//")[2].partition("/")[2].rstrip("/")
    cookie_path = f"/{cookie_path}/oauth/" if cookie_path else "/oauth/"

    async def healthz(request: web.Request) -> web.Response:
        try:
            ok = await db.ping()
        except Exception:
            ok = False
        if not ok:
            return web.json_response({"status": "unavailable", "database": "error"}, status=503)
        return web.json_response({"status": "ok", "database": "ok"})

    async def start(request: web.Request) -> web.Response:
        """The /link button's page: bind the link to this browser (a signed cookie), then on to X."""
        state = request.query.get("state", "")
        if not state:
            return refused(LinkFailed("incomplete"))
        try:
            opened = await accounts.open_link(state, request.cookies)
        except LinkFailed as exc:
            return refused(exc)
        response = web.Response(status=302, headers={**SECURITY_HEADERS, "Location": opened.url})
        if opened.cookie_value is not None:
            response.set_cookie(opened.cookie_name, opened.cookie_value, max_age=int(STATE_TTL), path=cookie_path,
                                secure=secure, httponly=True, samesite="Lax")
        return response

    async def callback(request: web.Request) -> web.Response:
        query = request.query
        state = query.get("oauth_token") or query.get("denied") or query.get("state", "")
        try:
            if "oauth_token" in query or "denied" in query:
                if "denied" in query:
                    response = refused(LinkFailed("cancelled"))
                else:
                    linked = await accounts.complete_oauth1(query["oauth_token"], query.get("oauth_verifier", ""),
                                                            request.cookies)
                    response = _linked_page(linked)
            else:
                if not state:
                    return refused(LinkFailed("incomplete"))
                if "error" in query:
                    try:
                        await accounts.consume_state(state)
                    except LinkFailed as exc:
                        return refused(exc)
                    if query["error"] == "access_denied":
                        response = refused(LinkFailed("cancelled"))
                    else:
                        response = refused(LinkFailed("x_error"))
                else:
                    code = query.get("code", "")
                    if not code:
                        return refused(LinkFailed("incomplete"))
                    response = _linked_page(await accounts.complete_oauth2(state, code, request.cookies))
        except LinkFailed as exc:
            response = refused(exc)
        if state and link_cookie_name(state) in request.cookies:
            response.del_cookie(link_cookie_name(state), path=cookie_path, secure=secure, httponly=True,
                                samesite="Lax")  # the link is over either way
        return response

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/oauth/start", start, allow_head=False)  # a HEAD must not bind a link to a browser
    app.router.add_get("/oauth/callback", callback)
    return app


class WebServer:
    def __init__(self, app: web.Application, host: str, port: int, *, head_timeout: float = HEAD_TIMEOUT) -> None:
        self.app, self.host, self.port = app, host, port
        self.head_timeout = head_timeout
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        manager = self._runner.server
        assert manager is not None
        loop = asyncio.get_running_loop()

        def connection() -> HeadTimeoutHandler:
            return HeadTimeoutHandler(
                manager, loop=loop, head_timeout=self.head_timeout, keepalive_timeout=self.head_timeout,
                access_log=None, max_line_size=MAX_LINE, max_field_size=MAX_LINE, max_headers=MAX_HEADERS,
            )

        self._server = await loop.create_server(connection, self.host, self.port)
        if self.port == 0:
            self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("web server listening on http://%s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()  # no new connections; the runner's clean-up ends the open ones
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
