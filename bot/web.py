"""The bot's small web server: `/healthz` and the OAuth callback pages (never a 500)."""

from __future__ import annotations

import html
import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.accounts import AccountService, LinkFailed
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

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title} · mutebot</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#0f1419}}
h1{{font-size:1.4rem}}</style></head>
<body><h1>{title}</h1><p>{message}</p></body></html>
"""


def page(status: int, title: str, message: str) -> web.Response:
    body = _PAGE.format(title=html.escape(title), message=html.escape(message))
    return web.Response(status=status, text=body, content_type="text/html", charset="utf-8",
                        headers=SECURITY_HEADERS)


@web.middleware
async def never_500(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        incident = secrets.token_hex(4)
        log.exception("incident %s while serving %s", incident, request.path)
        if request.path.startswith("/oauth/"):
            return page(400, "Linking failed",
                        f"Something went wrong while linking (incident {incident}). Run /link again in Discord.")
        return web.json_response({"status": "error", "incident": incident}, status=503)


def build_app(db: Database, accounts: AccountService) -> web.Application:
    app = web.Application(middlewares=[never_500])

    async def healthz(request: web.Request) -> web.Response:
        try:
            ok = await db.ping()
        except Exception:
            ok = False
        if not ok:
            return web.json_response({"status": "unavailable", "database": "error"}, status=503)
        return web.json_response({"status": "ok", "database": "ok"})

    async def callback(request: web.Request) -> web.Response:
        query = request.query
        try:
            if "oauth_token" in query or "denied" in query:
                if "denied" in query:
                    return page(400, "Linking cancelled", "You cancelled on X; nothing was linked.")
                user = await accounts.complete_oauth1(query["oauth_token"], query.get("oauth_verifier", ""))
            else:
                state = query.get("state", "")
                if not state:
                    return page(400, "Link not recognised", "This address is missing its state. Run /link again.")
                if "error" in query:
                    try:
                        await accounts.consume_state(state)
                    except LinkFailed as exc:
                        return page(400, "Link not recognised", exc.page)
                    if query["error"] == "access_denied":
                        return page(400, "Linking cancelled",
                                    "You cancelled the authorization on X, so nothing was linked. "
                                    "Run /link again whenever you like.")
                    return page(400, "Linking failed", "X reported an error; nothing was linked. Run /link again.")
                code = query.get("code", "")
                if not code:
                    return page(400, "Link not recognised", "This address is missing its code. Run /link again.")
                user = await accounts.complete_oauth2(state, code)
        except LinkFailed as exc:
            return page(400, "Linking failed", exc.page)
        return page(200, f"Linked @{user.username}", f"Linked @{user.username} — return to Discord.")

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/oauth/callback", callback)
    return app


class WebServer:
    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]
        log.info("web server listening on http://%s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
