"""Timed mutes end to end: `/mute username duration`, timers that survive restarts, and `/why`.

Time is driven through the sandbox's clock (`Sandbox.advance`), read by the bot and the X emulator alike;
no test sleeps for the length of a mute."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Member, Message
from tests.helpers import until

HOUR = 3600
DAY = 24 * HOUR
DELETES = "DELETE /2/users/:source_user_id/muting/:target_user_id"


def x_calls(sandbox: Sandbox) -> int:
    return sum(n for key, n in sandbox.x.calls.items() if key.startswith(("GET /2", "POST /2", "DELETE /2")))


def muted(sandbox: Sandbox, who: str, target: str) -> bool:
    return sandbox.x.user(target).id in sandbox.x.mutes_of(who)


def ended(message: Message) -> bool:
    title = message.embeds[0]["title"] if message.embeds else ""
    return title.startswith("Finished") and "timed mute" in title


async def let_pass(sandbox: Sandbox, seconds: float, *members: Member) -> None:
    """Move the clock on; wait until the timer task has looked at it and the members' queued work is sent."""
    assert sandbox.bot is not None
    services = sandbox.bot.services
    rounds = services.timers.rounds
    sandbox.advance(seconds)
    await until(lambda: services.timers.rounds > rounds, what="the timer task to look at the clock")

    async def sent() -> bool:
        return all([await services.queue.pending_for(m.id) == 0 for m in members])

    await until(sent, what="the queue to send what the timers queued")


@pytest.fixture
async def linked(sandbox: Sandbox, alice: Member) -> Member:
    await sandbox.link(alice, "user1")
    return alice


async def test_a_timed_mute_ends_on_time_and_says_so(sandbox: Sandbox, linked: Member) -> None:
    reply = await linked.slash("mute", username="user5", duration="2h")
    assert reply.embeds[0]["title"] == "Muted on X", reply
    assert "For 2 hours: mutebot unmutes it <t:" in reply.embeds[0]["description"]
    assert muted(sandbox, "user1", "user5")
    page = await linked.slash("mutes")
    assert "([@user5](https://x.com/user5)) · until <t:" in page.embeds[0]["description"]

    await let_pass(sandbox, HOUR, linked)
    assert muted(sandbox, "user1", "user5")  # not yet
    assert sandbox.x.calls[DELETES] == 0

    await let_pass(sandbox, HOUR + 5, linked)
    await until(lambda: not muted(sandbox, "user1", "user5"), what="the unmute")
    summary = await linked.wait_for_dm(ended)
    assert summary.embeds[0]["title"] == "Finished: 1 timed mute ended"
    assert "Unmuted **1**" in summary.embeds[0]["description"]
    assert sandbox.x.calls[DELETES] == 1
    assert "user5" not in (await linked.slash("mutes")).embeds[0]["description"]


async def test_a_timer_due_while_the_bot_was_down_fires_once_after_the_restart(sandbox: Sandbox,
                                                                               linked: Member) -> None:
    await linked.slash("mute", username="user6", duration="1h")
    await sandbox.stop_bot()
    sandbox.advance(3 * HOUR)  # due while nothing runs
    await sandbox.start_bot()
    await until(lambda: not muted(sandbox, "user1", "user6"), what="the unmute after the restart")
    await linked.wait_for_dm(ended)
    await sandbox.stop_bot()
    await sandbox.start_bot()
    await let_pass(sandbox, HOUR, linked)
    assert sandbox.x.calls[DELETES] == 1  # once, not again after the second restart
    assert len([m for m in await linked.dms() if ended(m)]) == 1


async def test_a_plain_mute_during_a_timed_one_makes_it_permanent(sandbox: Sandbox, linked: Member) -> None:
    await linked.slash("mute", username="user7", duration="30m")
    reply = await linked.slash("mute", username="user7")
    assert "now it stays muted until you unmute it" in reply.embeds[0]["description"]
    await let_pass(sandbox, HOUR, linked)
    assert muted(sandbox, "user1", "user7")
    assert sandbox.x.calls[DELETES] == 0
    assert "until <t:" not in (await linked.slash("mutes")).embeds[0]["description"]


async def test_a_plain_mute_cancels_an_unmute_its_end_already_queued(sandbox: Sandbox, linked: Member) -> None:
    await linked.slash("mute", username="user8", duration="1h")
    sandbox.x.fail_next[DELETES] = 1  # X is down when the end comes: the unmute waits in the queue to be retried
    sandbox.advance(2 * HOUR)
    await until(lambda: sandbox.x.calls[DELETES] == 1, what="the timer's first unmute attempt")
    reply = await linked.slash("mute", username="user8")  # the member wants it muted after all
    assert reply.embeds[0]["title"] == "Muted on X"
    await let_pass(sandbox, 10 * 60, linked)  # well past the retry's back-off
    assert muted(sandbox, "user1", "user8")
    assert sandbox.x.calls[DELETES] == 1


async def test_unmute_cancels_the_timer(sandbox: Sandbox, linked: Member) -> None:
    assert sandbox.bot is not None
    timers = sandbox.bot.services.stores.timers
    target = sandbox.x.user("user9").id
    await linked.slash("mute", username="user9", duration="1d")
    assert target in await timers.ends(linked.id, [target])
    reply = await linked.slash("unmute", username="user9")
    assert reply.embeds[0]["title"] == "Unmuted on X"
    assert not muted(sandbox, "user1", "user9")
    assert sandbox.x.calls[DELETES] == 1  # the /unmute's own
    assert await timers.ends(linked.id, [target]) == {}  # the /unmute itself took the timer out
    assert await timers.count() == 0
    dms = len(await linked.dms())
    await let_pass(sandbox, 2 * DAY, linked)  # well past the end it had
    assert sandbox.x.calls[DELETES] == 1  # no second unmute from the timer
    assert len(await linked.dms()) == dms  # and no "ended" message
    assert [m for m in await linked.dms() if ended(m)] == []


async def test_a_sooner_timer_wakes_the_sleeping_task_early(sandbox: Sandbox, linked: Member) -> None:
    """RoboDanny's model: the task sleeps until the earliest end; setting a sooner one wakes it at once. Nothing
    here pokes the task (no `Sandbox.advance`): only the /mute's own wake, and then the clock, move it."""
    assert sandbox.bot is not None
    services = sandbox.bot.services
    timers, store = services.timers, services.stores.timers
    timers.clock_check = 0.05  # while asleep, re-read the (injected) clock often, so moving it alone is seen
    timers.idle = 2 * DAY  # and sleep all the way to the 1d end, not to the hourly look (IDLE)
    day, minute = sandbox.x.user("user15").id, sandbox.x.user("user16").id
    await linked.slash("mute", username="user15", duration="1d")
    day_end = (await store.ends(linked.id, [day]))[day]
    await until(lambda: timers.sleeping_until == day_end, what="the task to sleep until the 1d timer's end")

    await linked.slash("mute", username="user16", duration="1m")
    minute_end = (await store.ends(linked.id, [minute]))[minute]
    assert minute_end < day_end
    await until(lambda: timers.sleeping_until == minute_end, what="the task to wake and sleep until the 1m end")
    assert timers.fired == 0 and muted(sandbox, "user1", "user16")

    sandbox.clock.offset += 61  # the clock alone: no poke of the timer task or the queue
    await until(lambda: timers.fired == 1, what="the 1m timer to fire")
    await until(lambda: not muted(sandbox, "user1", "user16"), what="the 1m timer's unmute")
    summary = await linked.wait_for_dm(ended)
    assert summary.embeds[0]["title"] == "Finished: 1 timed mute ended"
    assert muted(sandbox, "user1", "user15")  # the 1d one still runs
    assert sandbox.x.calls[DELETES] == 1
    await until(lambda: timers.sleeping_until == day_end, what="the task to sleep until the 1d end again")


@pytest.mark.parametrize("typed", ["0m", "30s", "1y", "366d", "53w", "abc", "1.5h", "-5m", "5", "1h1h", "h",
                                   "12 hours", "\uff15m", "\u0665h", "1\u0660m"])  # fullwidth and Arabic-Indic digits
async def test_bad_durations_are_refused_with_no_x_call(sandbox: Sandbox, linked: Member, typed: str) -> None:
    before = x_calls(sandbox)
    reply = await linked.slash("mute", username="user10", duration=typed)
    assert reply.ephemeral
    text = reply.embeds[0]["description"]
    assert "Nothing was changed" in text and "30m" in text and "365 days" in text, text
    assert "Traceback" not in text and "incident" not in text.lower()
    assert x_calls(sandbox) == before
    assert not muted(sandbox, "user1", "user10")


@pytest.mark.parametrize(("typed", "hours"), [("1m", 1 / 60), ("1d12h", 36), ("2W", 336), ("365d", 8760),
                                              (" 1h 30m ", 1.5)])
async def test_durations_members_type(sandbox: Sandbox, linked: Member, typed: str, hours: float) -> None:
    reply = await linked.slash("mute", username="user11", duration=typed)
    assert reply.embeds[0]["title"] == "Muted on X", reply
    assert sandbox.bot is not None
    ends = await sandbox.bot.services.stores.timers.ends(linked.id, [sandbox.x.user("user11").id])
    assert abs(ends[sandbox.x.user("user11").id] - sandbox.clock() - hours * HOUR) < 5


async def test_a_list_the_member_follows_keeps_it_muted_and_why_names_it(sandbox: Sandbox, linked: Member,
                                                                         mod: Member) -> None:
    await sandbox.link(mod, "user2")
    await mod.slash("mutelist create", name="spoilers")
    await mod.slash("mutelist add", name="spoilers", username="user12", reason="leaks the finale")
    await linked.slash("mutelist subscribe", name="spoilers")
    await until(lambda: muted(sandbox, "user1", "user12"), what="the list's mute")
    await linked.slash("mute", username="user12", duration="1d")
    why = await linked.slash("why", username="@USER12")
    assert why.ephemeral and len(why.embeds) == 1
    assert "a list you subscribe to holds it, so it will stay muted" in why.embeds[0]["description"]

    await let_pass(sandbox, 2 * DAY, linked)
    summary = await linked.wait_for_dm(ended)
    assert "1 account stays muted because a list you subscribe to holds it" in summary.embeds[0]["title"]
    assert muted(sandbox, "user1", "user12")
    why = await linked.slash("why", username="https://x.com/user12")
    assert why.ephemeral and len(why.embeds) == 1
    embed = why.embeds[0]
    assert embed["title"] == "Why @user12 is muted for you"
    assert "You muted it yourself" not in embed["description"]  # the timed choice is over
    [field] = embed["fields"]
    assert field["name"] == "`spoilers` in Sandbox Server"
    assert re.search(rf"Added by <@{mod.id}> <t:\d+:f>", field["value"]), field  # when, as a Discord timestamp
    assert "Reason: leaks the finale" in field["value"]


async def test_a_list_that_kept_a_timed_mute_is_its_reason_from_then_on(sandbox: Sandbox, linked: Member,
                                                                         mod: Member) -> None:
    """The member muted it for an hour before subscribing to a list that holds it, so the list never muted it
    for them. When the hour is up the list keeps it muted: from then on the list is the reason, and taking the
    account off the list unmutes it, as for any mute a list made."""
    await sandbox.link(mod, "user2")
    await linked.slash("mute", username="user13", duration="1h")
    await mod.slash("mutelist create", name="spoilers")
    await mod.slash("mutelist add", name="spoilers", username="user13")
    await linked.slash("mutelist subscribe", name="spoilers")
    await let_pass(sandbox, 2 * HOUR, linked)
    summary = await linked.wait_for_dm(ended)
    assert "1 account stays muted because a list you subscribe to holds it" in summary.embeds[0]["title"]
    assert muted(sandbox, "user1", "user13")

    await mod.slash("mutelist remove", name="spoilers", username="user13")
    await until(lambda: not muted(sandbox, "user1", "user13"), what="the list's removal to unmute it")
    assert sandbox.x.calls[DELETES] == 1


async def test_a_list_the_member_left_does_not_keep_a_timed_mute(sandbox: Sandbox, linked: Member,
                                                                 mod: Member) -> None:
    """Only a list the member still subscribes to keeps it muted past its end: one they left, though it muted the
    account for them once (and that mute was kept when they left), does not."""
    await sandbox.link(mod, "user2")
    await mod.slash("mutelist create", name="spoilers")
    await mod.slash("mutelist add", name="spoilers", username="user17")
    await linked.slash("mutelist subscribe", name="spoilers")
    await until(lambda: muted(sandbox, "user1", "user17"), what="the list's mute")
    await linked.slash("mutelist unsubscribe", name="spoilers")  # without undo: what it muted stays muted
    assert muted(sandbox, "user1", "user17")
    await linked.slash("mute", username="user17", duration="1h")
    why = (await linked.slash("why", username="user17")).embeds[0]["description"]
    assert "so it will stay muted" not in why and "It is a timed mute: mutebot unmutes it <t:" in why
    await let_pass(sandbox, 2 * HOUR, linked)
    summary = await linked.wait_for_dm(ended)
    assert summary.embeds[0]["title"] == "Finished: 1 timed mute ended"
    assert "Unmuted **1**" in summary.embeds[0]["description"]
    assert not muted(sandbox, "user1", "user17")
    assert sandbox.x.calls[DELETES] == 1


async def test_a_thousand_timers_due_at_once_end_within_x_limits_in_one_message(tmp_path: Path) -> None:
    async with Sandbox(tmp_path, x_users=1100, window_seconds=0.1) as sandbox:
        alice = sandbox.member("alice")
        await sandbox.link(alice, "user1")
        names = [f"user{n}" for n in range(2, 1002)]
        for name in names:
            while True:
                reply = await alice.slash("mute", username=name, duration="1h")
                if reply.embeds[0].get("title") == "Muted on X":
                    break
                assert "Try again" in reply.embeds[0]["description"], reply
                await asyncio.sleep(0.05)  # X's window for mutes is spent: wait for the next one
        assert len(sandbox.x.mutes_of("user1")) == 1000
        before_429 = sandbox.x.calls["429"]
        dms_before = len(await alice.dms())
        sandbox.advance(2 * HOUR)
        await until(lambda: not sandbox.x.mutes_of("user1"), timeout=60, what="all 1,000 unmutes")
        summary = await alice.wait_for_dm(ended)
        assert summary.embeds[0]["title"] == "Finished: 1000 timed mutes ended"
        assert "Unmuted **1000**" in summary.embeds[0]["description"]
        assert sandbox.x.calls["429"] == before_429  # the queue kept within X's window
        assert sandbox.x.calls[DELETES] == 1000
        assert len([m for m in await alice.dms() if ended(m)]) == 1
        assert sandbox.bot is not None
        assert await sandbox.bot.services.queue.pending_for(alice.id) == 0
        assert len(await alice.dms()) == dms_before + 1  # that one message is all she heard of the 1,000


async def test_unlinking_ends_the_timers_of_the_account_it_forgets(sandbox: Sandbox, linked: Member) -> None:
    await linked.slash("mute", username="user13", duration="1h")
    await linked.slash("unlink")
    assert sandbox.bot is not None
    assert await sandbox.bot.services.stores.timers.count() == 0
    await sandbox.link(linked, "user14")  # another X account: the old one's timed mute is not its business
    await let_pass(sandbox, 2 * HOUR, linked)
    assert sandbox.x.calls[DELETES] == 0
