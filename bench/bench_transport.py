"""HTTP clients for the X API, against one aiohttp server in the same loop: cost per request, one at a time
and with 500 in flight. `python -m bench transport`.

The X client sends through aiohttp (what discord.py uses) and hands authlib's httpx clients a transport over the
same session; this shows why: httpx's request machinery, whatever the transport under it, against aiohttp's
own client as the floor, and mutebot's XClient itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
from aiohttp import web
from httpx_aiohttp import AiohttpTransport

from bot.secrets import Secret
from bot.x_client import POOL_LIMITS, UserAuth, XClient

REQUESTS = 500
BODY = {"data": {"id": "2244994945", "username": "XDevelopers", "name": "Developers"}}


async def _serve() -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(BODY, headers={"x-rate-limit-remaining": "49"})

    app = web.Application()
    app.router.add_get("/2/users/by/username/{name}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def _measure(call: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    for i in range(20):  # warm the pool
        await call(i)
    started = time.perf_counter()
    for i in range(REQUESTS):
        await call(i)
    one_at_a_time = (time.perf_counter() - started) / REQUESTS * 1000
    started = time.perf_counter()
    await asyncio.gather(*(call(i) for i in range(REQUESTS)))
    in_flight = (time.perf_counter() - started) / REQUESTS * 1000
    return one_at_a_time, in_flight


async def run() -> dict[str, tuple[float, float]]:
    runner, base = await _serve()
    results: dict[str, tuple[float, float]] = {}
    try:
        async with aiohttp.ClientSession(base_url=base) as session:
            async def raw(i: int) -> object:
                async with session.get(f"/2/users/by/username/u{i}") as response:
                    return await response.json()

            results["aiohttp ClientSession (floor)"] = await _measure(raw)
        for label, transport in (
            ("httpx, default transport", None),
            ("httpx + httpx-aiohttp transport", AiohttpTransport(limits=POOL_LIMITS)),
        ):
            async with httpx.AsyncClient(base_url=base, transport=transport, limits=POOL_LIMITS) as client:
                async def via_httpx(i: int, client: httpx.AsyncClient = client) -> object:
                    return (await client.get(f"/2/users/by/username/u{i}")).json()

                results[label] = await _measure(via_httpx)
        async with XClient(base) as x:
            auth = UserAuth("1", Secret("token"))

            async def via_x_client(i: int) -> object:
                return await x.user_by_username(auth, f"u{i}")

            results["mutebot XClient (aiohttp + typed errors)"] = await _measure(via_x_client)
    finally:
        await runner.cleanup()
    return results


def main() -> int:
    results = asyncio.run(run())
    floor = results["aiohttp ClientSession (floor)"]
    print(f"ms per request against a loopback aiohttp server ({REQUESTS} requests):")
    print(f"  {'client':<36} {'one at a time':>14} {'500 in flight':>14}   ratio to floor")
    for label, (single, burst) in results.items():
        print(f"  {label:<36} {single:11.3f} ms {burst:11.3f} ms   {single / floor[0]:.2f} / {burst / floor[1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
