"""/why end to end: every reason mutebot knows for a mute, in every username form /mute accepts."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.sandbox.discord_payloads import MODERATOR_PERMISSIONS
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Member
from tests.helpers import until


def muted(sandbox: Sandbox, who: str, target: str) -> bool:
    return sandbox.x.user(target).id in sandbox.x.mutes_of(who)


async def why(member: Member, username: str) -> dict[str, Any]:
    """/why's answer: ephemeral, and always exactly one embed."""
    reply = await member.slash("why", username=username)
    assert reply.ephemeral
    assert len(reply.embeds) == 1, reply.embeds
    return reply.embeds[0]


def dated(field: dict[str, Any]) -> bool:
    """A list's field says who added the entry and when, as a Discord timestamp."""
    return re.search(r"Added by <@\d+> <t:\d+:f>", field["value"]) is not None


@pytest.fixture
async def linked(sandbox: Sandbox, alice: Member) -> Member:
    await sandbox.link(alice, "user1")
    return alice


async def test_a_manual_mute(sandbox: Sandbox, linked: Member) -> None:
    await linked.slash("mute", username="user3")
    embed = await why(linked, "USER3")
    assert embed["title"] == "Why @user3 is muted for you"
    assert "You muted it yourself with `/mute` <t:" in embed["description"]
    assert "timed" not in embed["description"] and not embed.get("fields")


async def test_a_timed_mute_shows_its_end(sandbox: Sandbox, linked: Member) -> None:
    await linked.slash("mute", username="user4", duration="3d")
    embed = await why(linked, "https://twitter.com/User4/?s=20")
    assert "It is a timed mute: mutebot unmutes it <t:" in embed["description"]
    assert embed["description"].rstrip().endswith(":f>).")


async def test_an_unknown_mute_is_said_to_be_muted_elsewhere(sandbox: Sandbox, linked: Member) -> None:
    sandbox.x.seed_mutes("user1", ["user5"])  # muted on X directly, not through mutebot
    await linked.slash("mutes")  # mutebot has now seen the account's mutes
    embed = await why(linked, "@user5")
    assert embed["title"] == "mutebot did not mute @user5"
    assert "it was muted on X directly" in embed["description"]
    embed = await why(linked, "user6")
    assert embed["title"] == "mutebot did not mute @user6"
    assert "If your X account mutes it" in embed["description"]


async def test_a_manual_unmute_is_named(sandbox: Sandbox, linked: Member) -> None:
    await linked.slash("mute", username="user7")
    await linked.slash("unmute", username="user7")
    embed = await why(linked, "user7")
    assert "You unmuted it yourself with `/unmute`" in embed["description"]


async def test_two_lists_in_two_servers(sandbox: Sandbox, linked: Member, mod: Member) -> None:
    await sandbox.link(mod, "user2")
    await mod.slash("mutelist create", name="raiders")
    await mod.slash("mutelist add", name="raiders", username="user9", reason="brigading on the 3rd")
    await linked.slash("mutelist subscribe", name="raiders")
    await until(lambda: muted(sandbox, "user1", "user9"), what="the first list's mute")

    second = sandbox.discord.add_guild("Second Server")
    await until(lambda: sandbox.bot is not None and sandbox.bot.get_guild(second) is not None,
                what="the bot to see the second server")
    mod2 = sandbox.discord.add_member(second, "mod2", permissions=MODERATOR_PERMISSIONS)
    alice_there = sandbox.discord.add_member(second, "alice", user_id=linked.id)
    await sandbox.link(mod2, "user3")
    await mod2.slash("mutelist create", name="spam")
    await mod2.slash("mutelist add", name="spam", username="user9")
    await alice_there.slash("mutelist subscribe", name="spam")

    embed = await why(linked, "x.com/user9")
    assert embed["title"] == "Why @user9 is muted for you"
    assert "2 lists hold it" in embed["description"]
    assert len(embed["fields"]) == 2 and all(dated(f) for f in embed["fields"])
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert set(fields) == {"`raiders` in Sandbox Server", "`spam` in Second Server"}
    assert "This list muted it for you." in fields["`raiders` in Sandbox Server"]
    assert "Reason: brigading on the 3rd" in fields["`raiders` in Sandbox Server"]
    assert f"Added by <@{mod2.id}>" in fields["`spam` in Second Server"]
    assert "You subscribe to this list." in fields["`spam` in Second Server"]


async def test_why_needs_a_link_and_a_valid_name(sandbox: Sandbox, bob: Member) -> None:
    assert "/link" in (await why(bob, "user3"))["description"]
    await sandbox.link(bob, "user8")
    calls = sum(sandbox.x.calls.values())
    assert "not a valid X username" in (await why(bob, "not a name!"))["description"]
    assert sum(sandbox.x.calls.values()) == calls


async def test_many_lists_with_long_reasons_fit_in_one_message(sandbox: Sandbox, linked: Member, mod: Member) -> None:
    # Twenty lists, each with the longest name and reason: their fields alone pass Discord's 6,000 characters
    # per message, which Discord refuses (the stand-in too, failing this test at teardown).
    await sandbox.link(mod, "user2")
    names = [f"list {i:02d} " + "n" * 42 for i in range(20)]
    for name in names:
        await mod.slash("mutelist create", name=name)
        await mod.slash("mutelist add", name=name, username="user9", reason="r" * 200)
        await linked.slash("mutelist subscribe", name=name)
    embed = await why(linked, "user9")
    assert embed["title"] == "Why @user9 is muted for you"
    assert "20 lists hold it" in embed["description"]
    fields = embed["fields"]
    assert 10 <= len(fields) < 20
    assert all(dated(f) for f in fields)
    assert embed["footer"]["text"] == f"… and {20 - len(fields)} more lists"
    size = len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"])
    assert size + sum(len(f["name"]) + len(f["value"]) for f in fields) <= 6000
    assert sandbox.discord.violations == []
