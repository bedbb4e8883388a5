"""Prometheus metrics on METRICS_PORT, scraped over HTTP after real work through the sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.sandbox.harness import Sandbox, free_port
from bot.sandbox.members import Member

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(sandbox: Sandbox) -> Samples:
    port = sandbox.extra_env["METRICS_PORT"]
    response = await sandbox.http.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def measured(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with Sandbox(tmp_path, x_users=60, env={"METRICS_PORT": str(free_port())}) as running:
        yield running


async def test_a_mute_moves_commands_x_calls_and_acknowledgements(measured: Sandbox) -> None:
    alice = measured.member("alice")
    await measured.link(alice, "user1")
    before = await scrape(measured)
    assert value(before, "mutebot_commands_total", command="link", outcome="ok") == 1

    reply = await alice.slash("mute", username="@user5")
    assert reply.embeds[0]["title"] == "Muted on X"
    refused = await alice.slash("mute", username="user1")  # herself: refused with a reason
    assert "your own X account" in refused.embeds[0]["description"]
    after = await scrape(measured)

    assert value(after, "mutebot_commands_total", command="mute", outcome="ok") == 1
    assert value(after, "mutebot_commands_total", command="mute", outcome="refused") == 1
    assert value(after, "mutebot_commands_total", command="mute", outcome="error") == 0
    posts = measured.x.calls["POST /2/users/:id/muting"]
    assert posts == 1
    assert value(after, "mutebot_x_calls_total", endpoint="muting.post", status="200") == posts
    assert value(after, "mutebot_x_call_seconds_count", endpoint="muting.post") == posts
    assert value(after, "mutebot_x_call_seconds_sum", endpoint="muting.post") > 0
    # /link, then both /mute: each acknowledged once (a defer), each measured from the interaction's id
    acks = value(after, "mutebot_interaction_ack_seconds_count")
    assert acks - value(before, "mutebot_interaction_ack_seconds_count") == 2
    assert 0 < value(after, "mutebot_interaction_ack_seconds_sum") < 3 * acks
    assert value(after, "mutebot_interaction_ack_seconds_bucket", le="3.0") == acks  # all within Discord's 3 s


async def test_queued_actions_are_counted_by_status(measured: Sandbox) -> None:
    mod, alice = measured.member("mod", moderator=True), measured.member("alice")
    await measured.link(mod, "user1")
    await measured.link(alice, "user2")
    await mod.slash("mutelist create", name="spam")
    for name in ("user10", "user11", "user12"):
        await mod.slash("mutelist add", name="spam", username=name)
    assert value(await scrape(measured), "mutebot_queued_actions", status="done") == 0
    await alice.slash("mutelist apply", name="spam")
    await alice.wait_for_dm(lambda m: bool(m.embeds) and str(m.embeds[0].get("title", "")).startswith("Finished"))
    samples = await scrape(measured)
    assert value(samples, "mutebot_queued_actions", status="done") == 3
    assert value(samples, "mutebot_queued_actions", status="pending") == 0
    assert value(samples, "mutebot_commands_total", command="mutelist apply", outcome="ok") == 1


async def test_a_used_up_rate_limit_window_is_a_wait(measured: Sandbox, tmp_path: Path) -> None:
    alice: Member = measured.member("alice")
    await measured.link(alice, "user1")
    for number in range(2, 52):  # X allows 50 mutes per 15-minute window
        reply = await alice.slash("mute", username=f"user{number}")
        assert reply.embeds[0]["title"] == "Muted on X", reply.embeds
    samples = await scrape(measured)
    assert value(samples, "mutebot_x_rate_limit_waits_total", endpoint="muting.post") == 1
    # X gives the reset in whole seconds
    assert 0 < value(samples, "mutebot_x_rate_limit_wait_seconds_total", endpoint="muting.post") <= 901
    over = await alice.slash("mute", username="user52")
    assert "every 15 minutes" in over.embeds[0]["description"]
    samples = await scrape(measured)
    assert value(samples, "mutebot_x_rate_limit_waits_total", endpoint="muting.post") == 1  # the same window
    assert value(samples, "mutebot_commands_total", command="mute", outcome="refused") == 1


async def test_each_bot_counts_in_a_registry_of_its_own(measured: Sandbox) -> None:
    alice = measured.member("alice")
    await alice.slash("status")
    await alice.slash("status")
    assert value(await scrape(measured), "mutebot_commands_total", command="status", outcome="ok") == 2
    # A second bot in the same process (a restart here; the tests and benchmarks run several): with
    # prometheus_client's global registry it could not even register its metrics.
    await measured.stop_bot()
    await measured.start_bot()
    await alice.slash("status")
    assert value(await scrape(measured), "mutebot_commands_total", command="status", outcome="ok") == 1


async def test_no_metrics_port_no_metrics(sandbox: Sandbox) -> None:
    assert sandbox.bot is not None and sandbox.bot.metrics is None
