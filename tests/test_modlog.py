"""/mutelist modlog end to end: every change to a server's lists announced in its channel, and a refusal told once."""

from __future__ import annotations

import pytest

from bot.sandbox.discord_payloads import MODERATOR_PERMISSIONS, VIEW_CHANNEL
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Attachment, CommandNotAvailable, Member, Reply, partial_channel
from tests.helpers import until


def description(reply: Reply) -> str:
    return str(reply.embeds[0].get("description", "")) if reply.embeds else reply.text


async def announced(sandbox: Sandbox, channel: int, count: int) -> str:
    """The `count`th line posted in the channel, once it is there."""
    await sandbox.discord.wait_for_state(lambda: len(sandbox.discord.channel_messages(channel)) >= count,
                                         what=f"announcement {count} in the modlog channel")
    return sandbox.discord.channel_messages(channel)[count - 1].content


def posted(sandbox: Sandbox, channel: int) -> list[str]:
    return [m.content for m in sandbox.discord.channel_messages(channel)]


async def tried(sandbox: Sandbox, channel: int, count: int) -> None:
    """Wait until the bot has tried to post in the channel `count` times, refused or not."""
    path = f"/channels/{channel}/messages"
    await until(lambda: sandbox.discord.requests.count(("POST", path)) >= count, what=f"post {count} in {path}")


async def refusals(member: Member) -> list[str]:
    return [m.text for m in await member.dms() if "could not be announced" in m.text]


@pytest.fixture
async def log_channel(sandbox: Sandbox) -> int:
    return sandbox.discord.add_channel(sandbox.guild_id, "mod-log")


async def test_every_kind_of_change_is_announced_naming_the_moderator_and_the_count(
    sandbox: Sandbox, mod: Member, log_channel: int,
) -> None:
    await sandbox.link(mod, "user1")
    m = mod.mention
    reply = await mod.slash("mutelist modlog", channel=log_channel)
    assert reply.ephemeral and reply.embeds[0]["title"] == "Moderation log set"
    assert f"announced in <#{log_channel}>" in description(reply) and "cannot post" not in description(reply)
    assert await announced(sandbox, log_channel, 1) == (
        f"{m} made this channel the moderation log: every change to this server's mute lists shows here.")

    await mod.slash("mutelist create", name="spam")
    assert await announced(sandbox, log_channel, 2) == f"{m} created the list `spam` (0 accounts)."
    await mod.slash("mutelist add", name="spam", username="user5", reason="spam")
    assert await announced(sandbox, log_channel, 3) == f"{m} added 1 account to `spam`: `@user5`."
    csv = Attachment("more.csv", b"username\nuser6\nuser7\nnot valid!\n")
    imported = await mod.slash("mutelist import", name="spam", file=csv)
    assert imported.embeds[0]["title"] == "Import finished"
    assert await announced(sandbox, log_channel, 4) == (
        f"{m} imported 2 accounts into `spam` (0 already on it, 1 row not usable).")
    sandbox.x.seed_mutes("user1", ["user5", "user8", "user9"])
    await mod.slash("mutelist publish", name="spam")
    assert await announced(sandbox, log_channel, 5) == (
        f"{m} published 2 accounts of their own X mutes to `spam` (1 already on it).")
    post = sandbox.x.seed_post("poster", repliers=["r1", "r2"], likers=["r3"])
    preview = await mod.slash("mutelist capture", name="spam", post=post.id)
    assert len(posted(sandbox, log_channel)) == 5  # a preview changes nothing, so it is not announced
    added = await preview.click("Add")
    assert added.embeds[0]["title"] == "Capture added"
    assert await announced(sandbox, log_channel, 6) == (
        f"{m} captured 4 accounts into `spam` from the post <https://x.com/poster/status/{post.id}>.")
    await mod.slash("mutelist remove", name="spam", username="user5")
    assert await announced(sandbox, log_channel, 7) == f"{m} removed 1 account from `spam`: `@user5`."
    await mod.slash("mutelist protect", username="user6")
    assert await announced(sandbox, log_channel, 8) == (
        f"{m} protected `@user6`: no list of this server may hold it; taken off 1 list.")
    await mod.slash("mutelist unprotect", username="user6")
    assert await announced(sandbox, log_channel, 9) == (
        f"{m} lifted the protection of `@user6`; lists of this server may hold it again.")
    await mod.slash("mutelist delete", name="spam")
    # user7, user8, user9, and the captured poster, r1, r2 and r3
    assert await announced(sandbox, log_channel, 10) == f"{m} deleted the list `spam`, which held 7 accounts."
    assert len(posted(sandbox, log_channel)) == 10
    assert await refusals(mod) == []


async def test_a_publish_leaves_out_protected_accounts_and_says_how_many(
    sandbox: Sandbox, mod: Member, log_channel: int,
) -> None:
    await sandbox.link(mod, "user1")
    await mod.slash("mutelist modlog", channel=log_channel)
    await mod.slash("mutelist create", name="spam")
    await mod.slash("mutelist add", name="spam", username="user5")
    await mod.slash("mutelist protect", username="user8")
    sandbox.x.seed_mutes("user1", ["user5", "user8", "user9"])  # the moderator mutes a protected account on X
    reply = await mod.slash("mutelist publish", name="spam")
    assert description(reply) == ("Added **1** account to `spam`; 1 was already on it. 1 protected account was left "
                                  "out: no list of this server may hold it.")
    assert await announced(sandbox, log_channel, 5) == (
        f"{mod.mention} published 1 account of their own X mutes to `spam` (1 already on it, 1 protected account "
        "left out).")
    assert sandbox.bot is not None
    lists = sandbox.bot.services.lists
    assert {e.username for e in await lists.entries((await lists.get(sandbox.guild_id, "spam")).id)} == {
        "user5", "user9"}


async def test_without_a_channel_it_stops_announcing(sandbox: Sandbox, mod: Member, log_channel: int) -> None:
    nothing = await mod.slash("mutelist modlog")
    assert "were not being announced anywhere" in description(nothing)
    await mod.slash("mutelist modlog", channel=log_channel)
    await mod.slash("mutelist create", name="a")
    assert "`a`" in await announced(sandbox, log_channel, 2)
    stopped = await mod.slash("mutelist modlog")
    assert stopped.embeds[0]["title"] == "Moderation log stopped"
    assert f"no longer announced in <#{log_channel}>" in description(stopped)
    assert "stopped the moderation log" in await announced(sandbox, log_channel, 3)
    await mod.slash("mutelist create", name="b")
    # Announcements go out in order: once c's shows in the new channel, b's would have been posted already.
    other = sandbox.discord.add_channel(sandbox.guild_id, "other-log")
    await mod.slash("mutelist modlog", channel=other)
    await mod.slash("mutelist create", name="c")
    assert "`c`" in await announced(sandbox, other, 2)
    assert len(posted(sandbox, log_channel)) == 3
    assert not any("`b`" in line for line in posted(sandbox, log_channel) + posted(sandbox, other))


async def test_a_channel_the_bot_may_not_post_in_is_told_when_set(
    sandbox: Sandbox, mod: Member, log_channel: int,
) -> None:
    sandbox.discord.refuse_bot(log_channel)
    reply = await mod.slash("mutelist modlog", channel=log_channel)
    assert reply.ephemeral
    assert "mutebot cannot post there yet**: it lacks Send Messages in that channel" in description(reply)
    created = await mod.slash("mutelist create", name="a")
    assert created.embeds[0]["title"] == "Mute list created"  # the change stands
    await tried(sandbox, log_channel, 2)  # setting it, then a: both refused
    sandbox.discord.refuse_bot(log_channel, refuse=False)
    await mod.slash("mutelist create", name="b")
    assert "`b`" in await announced(sandbox, log_channel, 1)  # a's went out first, and was refused
    assert await refusals(mod) == []  # the reply said so already: no DM on top

    sandbox.discord.refuse_bot(log_channel, permissions=VIEW_CHANNEL)
    hidden = await mod.slash("mutelist modlog", channel=log_channel)
    assert "it lacks View Channel and Send Messages" in description(hidden)


async def test_a_refusal_later_is_told_once_to_the_moderator_who_made_the_change(
    sandbox: Sandbox, mod: Member, log_channel: int,
) -> None:
    other_mod = sandbox.member("mod2", moderator=True)
    await mod.slash("mutelist modlog", channel=log_channel)
    await announced(sandbox, log_channel, 1)
    sandbox.discord.refuse_bot(log_channel)  # an admin changed the channel's permissions since
    created = await other_mod.slash("mutelist create", name="a")
    assert created.embeds[0]["title"] == "Mute list created"
    told = await other_mod.wait_for_dm(lambda dm: "could not be announced" in dm.text)
    assert f"<#{log_channel}>" in told.text and "Send Messages" in told.text
    await other_mod.slash("mutelist create", name="b")
    await mod.slash("mutelist create", name="c")
    await tried(sandbox, log_channel, 4)  # setting it worked; a, b and c were refused
    sandbox.discord.refuse_bot(log_channel, refuse=False)
    await mod.slash("mutelist create", name="d")
    assert "`d`" in await announced(sandbox, log_channel, 2)  # a, b and c were refused before it, in order
    assert len(await refusals(other_mod)) == 1 and await refusals(mod) == []

    sandbox.discord.refuse_bot(log_channel)  # it worked in between: a new refusal is told again
    await mod.slash("mutelist create", name="e")
    await mod.wait_for_dm(lambda dm: "could not be announced" in dm.text)
    assert len(await refusals(other_mod)) == 1


async def test_a_non_moderator_is_refused(sandbox: Sandbox, bob: Member, log_channel: int) -> None:
    for options in ({"channel": log_channel}, {}):
        refused = await bob.slash("mutelist modlog", **options)
        assert refused.ephemeral and "Manage Server" in description(refused)
    assert sandbox.bot is not None
    assert await sandbox.bot.services.stores.moderation.modlog(sandbox.guild_id) is None
    assert posted(sandbox, log_channel) == []


async def test_a_channel_of_another_server_is_refused(sandbox: Sandbox, mod: Member) -> None:
    standin = sandbox.discord
    elsewhere = standin.add_guild("Another Server")
    theirs = standin.add_channel(elsewhere, "their-log")
    with pytest.raises(CommandNotAvailable, match="offers only the channels"):  # Discord's picker does not offer it
        await mod.slash("mutelist modlog", channel=theirs)
    # An interaction that names it all the same (a client that misbehaves) is refused by the bot itself.
    command = standin.registered_command("mutelist", sandbox.guild_id)
    assert command is not None
    option = {"name": "channel", "type": 7, "value": str(theirs)}
    resolved = partial_channel(standin.guilds[elsewhere].channels[theirs].to_json(), MODERATOR_PERMISSIONS)
    data = {"id": command["id"], "name": "mutelist", "type": 1,
            "options": [{"name": "modlog", "type": 1, "options": [option]}],
            "resolved": {"channels": {str(theirs): resolved}}}
    record = await standin.dispatch_interaction(mod, 2, data)
    await standin.wait_for_answer(record)
    refused = Reply(standin, record, mod)
    assert refused.ephemeral and "not one of this server's text channels" in description(refused)
    assert sandbox.bot is not None
    assert await sandbox.bot.services.stores.moderation.modlog(sandbox.guild_id) is None
    assert posted(sandbox, theirs) == []
