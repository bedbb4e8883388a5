"""Prometheus metrics of one bot, served at /metrics on METRICS_PORT: commands, X calls, the queue, rate-limit
waits and how fast interactions are acknowledged.

Metric (type; labels): what it counts
- `mutebot_commands_total` (counter; command, outcome): slash commands handled; outcome `ok`, `refused` (the
  member was told why: not linked, not a moderator, X said no, ...) or `error` (a bug, logged with an incident id)
- `mutebot_x_calls_total` (counter; endpoint, status) and `mutebot_x_call_seconds` (histogram; endpoint): every
  call to X's API, retries included; status `none` when X did not answer
- `mutebot_queued_actions` (gauge; status): queued mutes and unmutes by status, read from the database at each scrape
- `mutebot_x_rate_limit_waits_total` (counter; endpoint) and `mutebot_x_rate_limit_wait_seconds_total` (counter;
  endpoint): each time an account's X rate-limit window was used up, so that its next call waits for the reset,
  and the seconds to that reset
- `mutebot_interaction_ack_seconds` (histogram): from an interaction's creation at Discord (its id's timestamp) to
  mutebot's first answer to it, a reply or a defer; Discord gives up on an interaction after 3 s
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.x_client import RateLimits, XCall

log = logging.getLogger(__name__)

DISCORD_EPOCH_MS = 1_420_070_400_000  # Discord ids carry their creation time in ms since this, shifted by 22 bits
ACTION_STATUSES = ("pending", "in_flight", "done", "skipped", "failed", "cancelled")
X_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ACK_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0)  # 3 s: Discord's deadline
# The text format generate_latest writes; prometheus_client's CONTENT_TYPE_LATEST names a newer one.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_CALLBACK = re.compile(r"/interactions/(\d+)/[^/]+/callback$")


@dataclass
class CountedRateLimits(RateLimits):
    """The X client's rate-limit windows, telling `on_used_up` once for each window that runs out."""

    on_used_up: Callable[[str, float], None] | None = None
    _counted: dict[tuple[str, str], float] = field(default_factory=dict)

    def record(self, x_user_id: str, endpoint: str, headers: Mapping[str, str]) -> None:
        super().record(x_user_id, endpoint, headers)
        key = (x_user_id, endpoint)
        state = self.states.get(key)
        if state is None or state.remaining > 0 or self._counted.get(key) == state.reset_at:
            return
        self._counted[key] = state.reset_at  # a 429 in the same window is the same wait
        if self.on_used_up is not None:
            self.on_used_up(endpoint, max(0.0, state.reset_at - self.clock()))


class Metrics:
    """One registry per bot, not prometheus_client's global one, so that several bots in one process (the tests,
    the benchmarks) each count their own."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.registry = CollectorRegistry()
        registry = self.registry
        self.commands = Counter(
            "mutebot_commands", "Slash commands handled, by command and outcome (ok, refused, error)",
            ["command", "outcome"], registry=registry,
        )
        self.x_calls = Counter(
            "mutebot_x_calls", "Calls to X's API, by endpoint and HTTP status (none: X did not answer)",
            ["endpoint", "status"], registry=registry,
        )
        self.x_call_seconds = Histogram(
            "mutebot_x_call_seconds", "How long each call to X took, by endpoint", ["endpoint"],
            buckets=X_CALL_BUCKETS, registry=registry,
        )
        self.queued_actions = Gauge(
            "mutebot_queued_actions", "Queued mutes and unmutes by status, as the database holds them",
            ["status"], registry=registry,
        )
        self.rate_limit_waits = Counter(
            "mutebot_x_rate_limit_waits",
            "Times an account's X rate-limit window was used up, so that its next call waits for the reset",
            ["endpoint"], registry=registry,
        )
        self.rate_limit_wait_seconds = Counter(
            "mutebot_x_rate_limit_wait_seconds", "Seconds from each used-up window to its reset", ["endpoint"],
            registry=registry,
        )
        self.ack_seconds = Histogram(
            "mutebot_interaction_ack_seconds",
            "From an interaction's creation at Discord to mutebot's first answer to it (a reply or a defer)",
            buckets=ACK_BUCKETS, registry=registry,
        )
        for status in ACTION_STATUSES:
            self.queued_actions.labels(status).set(0)
        self.queue_counts: Callable[[], Awaitable[Mapping[str, int]]] | None = None
        self._runner: web.AppRunner | None = None

    # -- what the bot reports ----------------------------------------------------------------------

    def command(self, name: str, outcome: str) -> None:
        self.commands.labels(name, outcome).inc()

    def x_call(self, call: XCall) -> None:
        """An observer of XClient: one per call that went out."""
        self.x_calls.labels(call.endpoint, str(call.status) if call.status is not None else "none").inc()
        self.x_call_seconds.labels(call.endpoint).observe(call.seconds)

    def rate_limit_used_up(self, endpoint: str, wait_seconds: float) -> None:
        self.rate_limit_waits.labels(endpoint).inc()
        self.rate_limit_wait_seconds.labels(endpoint).inc(wait_seconds)

    def counted_rate_limits(self, rate_limits: RateLimits) -> CountedRateLimits:
        """The same windows, counted: for the X client before anything has used it."""
        return CountedRateLimits(clock=rate_limits.clock, states=rate_limits.states,
                                 on_used_up=self.rate_limit_used_up)

    def discord_trace(self) -> aiohttp.TraceConfig:
        """For discord.py's HTTP session (`http_trace`): times each interaction callback, the acknowledgement,
        whether it is a reply or a defer, from the interaction's id to Discord's answer."""
        trace = aiohttp.TraceConfig()

        async def on_request_end(
            session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
        ) -> None:
            match = _CALLBACK.search(params.url.path)
            if match is not None and params.response.status < 300:
                created = ((int(match.group(1)) >> 22) + DISCORD_EPOCH_MS) / 1000
                self.ack_seconds.observe(max(0.0, self.clock() - created))

        trace.on_request_end.append(on_request_end)
        return trace

    # -- serving --------------------------------------------------------------------------------

    async def render(self) -> bytes:
        if self.queue_counts is not None:
            counts = await self.queue_counts()
            for status in {*ACTION_STATUSES, *counts}:
                self.queued_actions.labels(status).set(counts.get(status, 0))
        return generate_latest(self.registry)

    async def _serve(self, request: web.Request) -> web.Response:
        body = await self.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def start(self, host: str, port: int) -> None:
        """Serve `GET /metrics` on host:port (a site of its own, apart from the public web server)."""
        app = web.Application()
        app.router.add_get("/metrics", self._serve)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("metrics at http://%s:%d/metrics", host, port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
