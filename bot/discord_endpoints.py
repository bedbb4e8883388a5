"""Points the unmodified discord.py library at a chosen Discord REST base and gateway URL."""

from __future__ import annotations

import discord.gateway
import discord.http
import yarl

DEFAULT_API_BASE = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"


def point_discord_py_at(api_base: str, gateway_url: str) -> None:
    """Send discord.py's REST, gateway and webhook traffic to ``api_base`` and ``gateway_url``.

    Idempotent: it only assigns two class attributes.

    - ``Route.BASE`` is read by every ``Route`` when it is built, and discord.py 2.7's
      ``discord.webhook.async_`` (interaction callbacks, followups, ``@original`` edits) builds its
      ``/webhooks`` and ``/interactions`` routes from the same ``Route`` class, so one assignment
      covers the bot token REST calls and the token-less interaction webhooks alike.  The only
      hardcoded ``https://discord.com`` left in discord.py is the ``Webhook.url`` display property,
      which sends no request.
    - ``DiscordWebSocket.DEFAULT_GATEWAY`` is where ``Client.connect`` opens the first connection
      and where it goes back after an INVALID_SESSION.  RESUME goes to the ``resume_gateway_url``
      the gateway itself sent in READY, so a stand-in sends its own URL there; sharded clients
      take the URL from ``GET /gateway/bot``, which is a REST call under ``api_base``.
    """
    discord.http.Route.BASE = api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
