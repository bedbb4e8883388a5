"""/mutelist end to end: moderators curate lists, members apply and follow them through the action queue."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest

from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Attachment, Member, Message, Reply
from tests.helpers import until


def description(reply: Reply) -> str:
    return str(reply.embeds[0].get("description", "")) if reply.embeds else reply.text


async def entries(sandbox: Sandbox, name: str) -> list[str]:
    assert sandbox.bot is not None
    services = sandbox.bot.services
    mute_list = await services.lists.get(sandbox.guild_id, name)
    return sorted(e.username for e in await services.lists.entries(mute_list.id))


def ids(sandbox: Sandbox, *usernames: str) -> set[str]:
    return {sandbox.x.user(u).id for u in usernames}


@pytest.fixture
async def linked_mod(sandbox: Sandbox, mod: Member) -> Member:
    await sandbox.link(mod, "user1")
    return mod


@pytest.fixture
async def spam_list(linked_mod: Member) -> Member:
    reply = await linked_mod.slash("mutelist create", name="Spam", description="Known spam accounts")
    assert reply.embeds[0]["title"] == "Mute list created"
    for name in ("user10", "user11", "user12"):
        reply = await linked_mod.slash("mutelist add", name="spam", username=f"@{name}", reason="spam")
        assert "Added to" in description(reply), reply
    return linked_mod


async def test_create_add_show_export_all(sandbox: Sandbox, spam_list: Member, alice: Member) -> None:
    mod = spam_list
    assert await entries(sandbox, "spam") == ["user10", "user11", "user12"]
    again = await mod.slash("mutelist create", name="SPAM")  # the list is called Spam
    assert description(again) == "This server already has a list called `Spam` (names ignore case)."
    assert "SPAM" not in str(again.embeds)  # the name it has, not what was typed
    bad = await mod.slash("mutelist create", name="no/slashes")
    assert "1–50 characters" in description(bad)
    duplicate = await mod.slash("mutelist add", name="spam", username="https://x.com/USER10")
    assert "Already on" in description(duplicate)

    shown = await alice.slash("mutelist show", name="spam")
    assert shown.ephemeral and shown.embeds[0]["title"] == "Mute list: Spam"
    assert "[@user11](https://x.com/user11) — spam" in shown.embeds[0]["description"]
    assert "Known spam accounts" in shown.embeds[0]["description"]

    exported = await alice.slash("mutelist export", name="Spam")
    rows = list(csv.DictReader(io.StringIO(exported.attachments[0].data.decode())))
    assert [r["username"] for r in rows] == ["user10", "user11", "user12"]
    assert rows[0]["id"] == sandbox.x.user("user10").id and rows[0]["reason"] == "spam"
    assert rows[0]["added_by"] == str(mod.id) and rows[0]["added_at"].endswith("Z")

    everything = await alice.slash("mutelist all")
    assert "`Spam` — 3 accounts, 0 subscribers" in description(everything)
    choices = await alice.autocomplete("mutelist show", "name", "sp")
    assert [c["value"] for c in choices] == ["Spam"]

    removed = await mod.slash("mutelist remove", name="spam", username="user11")
    assert "no longer on" in description(removed)
    assert await entries(sandbox, "spam") == ["user10", "user12"]
    assert sandbox.bot is not None
    actions = [r["action"] for r in await sandbox.bot.services.db.fetchall(
        "SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["create", "add", "add", "add", "update", "remove"]


async def test_lists_are_per_server(sandbox: Sandbox, spam_list: Member) -> None:
    other_guild = sandbox.discord.add_guild("Elsewhere")
    stranger = sandbox.discord.add_member(other_guild, "stranger")
    reply = await stranger.slash("mutelist show", name="spam")
    assert "no mute list called" in description(reply)
    assert await stranger.autocomplete("mutelist show", "name", "") == []


async def test_non_moderator_is_refused_and_nothing_changes(sandbox: Sandbox, spam_list: Member, bob: Member) -> None:
    await sandbox.link(bob, "user2")
    assert sandbox.bot is not None
    audit_before = await sandbox.bot.services.db.fetchval("SELECT count(*) FROM audit_log")
    for command, options in [
        ("mutelist add", {"name": "spam", "username": "user20"}),
        ("mutelist remove", {"name": "spam", "username": "user10"}),
        ("mutelist delete", {"name": "spam"}),
        ("mutelist create", {"name": "mine"}),
        ("mutelist import", {"name": "spam", "file": Attachment("a.txt", b"user30\n")}),
        ("mutelist publish", {"name": "spam"}),
    ]:
        reply = await bob.slash(command, **options)
        assert reply.ephemeral and "Manage Server" in description(reply), (command, reply)
    assert await entries(sandbox, "spam") == ["user10", "user11", "user12"]
    assert await sandbox.bot.services.db.fetchval("SELECT count(*) FROM audit_log") == audit_before


async def test_unlinked_moderator_is_told_to_link(sandbox: Sandbox, mod: Member) -> None:
    await mod.slash("mutelist create", name="spam")
    reply = await mod.slash("mutelist add", name="spam", username="user5")
    assert "/link" in description(reply)
    assert await entries(sandbox, "spam") == []


async def test_import_reports_unusable_rows_by_line(sandbox: Sandbox, spam_list: Member) -> None:
    data = "\n".join([
        "username,reason",    # 1
        "user20,spam",        # 2
        "@User21,",           # 3
        "bad name!,x",        # 4
        "user20,again",       # 5 duplicate of 2
        "nosuchuser99,",      # 6 not on X
        "https://x.com/user10,",  # 7 already on the list
        ",",                  # 8 empty: skipped
        "user22",             # 9
    ]).encode()
    reply = await spam_list.slash("mutelist import", name="spam", file=Attachment("list.csv", data))
    embed = reply.embeds[0]
    assert embed["description"].startswith("7 rows read")
    assert "**3** added" in embed["description"] and "1 already on it" in embed["description"]
    problems = embed["fields"][0]["value"]
    assert "line 4:" in problems and "invalid username" in problems
    assert "line 5:" in problems and "duplicate of line 2" in problems
    assert "line 6:" in problems and "no such account on X" in problems
    assert await entries(sandbox, "spam") == ["User21", "user10", "user11", "user12", "user20", "user22"] or (
        await entries(sandbox, "spam") == ["user10", "user11", "user12", "user20", "user21", "user22"]
    )
    # One batched lookup for the new names, not one call per row.
    assert sandbox.x.calls["GET /2/users/by"] == 1


async def test_import_plain_lines_and_ids_with_a_long_report_attached(sandbox: Sandbox, spam_list: Member) -> None:
    lines = [f"user{i}" for i in range(30, 40)] + [f"bad-{i}" for i in range(20)]
    upload = Attachment("names.txt", "\n".join(lines).encode())
    reply = await spam_list.slash("mutelist import", name="spam", file=upload)
    assert "**10** added" in reply.embeds[0]["description"]
    attached = reply.attachments[0].data.decode()
    assert attached.count("invalid username") == 20 and "line 11\tbad-0" in attached
    by_id = f"id\n{sandbox.x.user('user40').id}\nabc\n".encode()
    reply = await spam_list.slash("mutelist import", name="spam", file=Attachment("ids.csv", by_id))
    assert "**1** added" in reply.embeds[0]["description"]
    assert "line 3:" in reply.embeds[0]["fields"][0]["value"] and "not an X user id" in reply.embeds[0]["fields"][0][
        "value"]


async def test_publish_adds_every_page_of_the_moderators_mutes(sandbox: Sandbox, spam_list: Member) -> None:
    sandbox.x.seed_mutes("user1", [f"pub{i}" for i in range(1500)] + ["user10"])
    reply = await spam_list.slash("mutelist publish", name="spam")
    assert "Added **1500**" in description(reply) and "1 was already on it" in description(reply)
    assert len(await entries(sandbox, "spam")) == 1503
    assert sandbox.x.calls["GET /2/users/:id/muting"] == 2  # two pages of 1,000


async def apply_and_wait(member: Member, name: str, command: str = "mutelist apply", **options: object) -> Message:
    await member.slash(command, name=name, **options)
    return await member.wait_for_dm(lambda m: bool(m.embeds) and str(m.embeds[0].get("title", "")).startswith(
        ("Finished", "Cancelled")), timeout=20)


async def test_apply_mutes_what_is_missing_with_progress_and_summary(
    sandbox: Sandbox, spam_list: Member, alice: Member
) -> None:
    await sandbox.link(alice, "user2")
    sandbox.x.seed_mutes("user2", ["user10"])
    reply = await alice.slash("mutelist apply", name="spam")
    assert "**2** to mute, 1 already muted" in description(reply) and "DMs" in description(reply)
    summary = await alice.wait_for_dm(lambda m: bool(m.embeds) and m.embeds[0]["title"].startswith("Finished"))
    assert "Muted **2** · already muted **1**" in summary.embeds[0]["description"]
    assert "failed **0**" in summary.embeds[0]["description"]
    progress = next(m for m in await alice.dms() if "Applying the list `Spam`" in m.text)
    assert "[██████████] 100%" in progress.text and "2/2" in progress.text
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user10", "user11", "user12")
    assert sandbox.x.calls["POST /2/users/:id/muting"] == 2
    status = await alice.slash("status")
    assert "No queued actions" in status.embeds[0]["description"]


def summaries(reply: Reply) -> list[str]:
    return [str(m.embeds[0].get("description", "")) for m in reply.followups if m.embeds]


async def test_apply_with_closed_dms_reports_in_the_reply(sandbox: Sandbox, spam_list: Member, alice: Member) -> None:
    await sandbox.link(alice, "user2")
    sandbox.discord.refuse_dms(alice.id)
    reply = await alice.slash("mutelist apply", name="spam")
    await reply.wait_for(lambda r: "100%" in r.text)
    assert reply.ephemeral and "3/3" in reply.text
    await reply.wait_for(lambda r: any("Muted **3**" in s for s in summaries(r)))
    assert any("Your DMs are closed" in s for s in summaries(reply))


async def test_subscription_follows_additions_and_removals(
    sandbox: Sandbox, spam_list: Member, alice: Member
) -> None:
    mod = spam_list
    await sandbox.link(alice, "user2")
    await alice.slash("mute", username="user12")  # her own choice: a list never undoes it
    await apply_and_wait(alice, "spam", "mutelist subscribe")
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user10", "user11", "user12")

    await alice.slash("unmute", username="user11")  # remembered: never re-applied by a list
    await mod.slash("mutelist add", name="spam", username="user13")
    assert sandbox.bot is not None
    queue = sandbox.bot.services.queue
    await wait_idle(sandbox, alice)
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user10", "user12", "user13")

    await mod.slash("mutelist remove", name="spam", username="user10")  # spam alone muted it: unmuted
    await mod.slash("mutelist remove", name="spam", username="user12")  # muted by hand: stays
    await mod.slash("mutelist remove", name="spam", username="user13")  # only spam: unmuted
    await mod.slash("mutelist remove", name="spam", username="user11")  # unmuted by hand: nothing to do
    await wait_idle(sandbox, alice)
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user12")
    await mod.slash("mutelist add", name="spam", username="user11")
    await wait_idle(sandbox, alice)
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user12")
    assert queue.sent == 2 + 1 + 2  # 2 muted on subscribe, 1 addition, 2 removals


async def wait_idle(sandbox: Sandbox, member: Member, timeout: float = 10) -> None:
    assert sandbox.bot is not None
    queue = sandbox.bot.services.queue
    for _ in range(int(timeout / 0.05)):
        if await queue.pending_for(member.id) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the queue did not drain")


async def test_unsubscribe_with_undo_unmutes_what_the_list_alone_muted(
    sandbox: Sandbox, spam_list: Member, alice: Member
) -> None:
    mod = spam_list
    await sandbox.link(alice, "user2")
    sandbox.x.seed_mutes("user2", ["user10"])  # muted before: not the list's doing
    await mod.slash("mutelist create", name="other")
    await mod.slash("mutelist add", name="other", username="user12")
    await apply_and_wait(alice, "spam", "mutelist subscribe")
    await apply_and_wait(alice, "other", "mutelist subscribe")
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user10", "user11", "user12")
    reply = await alice.slash("mutelist unsubscribe", name="spam", undo=True)
    # user10 was muted before, user12 is still wanted by "other": only user11 was spam's alone.
    assert "Unmuting **1**" in description(reply)
    await alice.wait_for_dm(lambda m: bool(m.embeds) and m.embeds[0]["title"] == "Finished: Undoing the list `Spam`")
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user10", "user12")
    again = await alice.slash("mutelist unsubscribe", name="spam")
    assert "You were not subscribed to" in description(again)
    plain = await alice.slash("mutelist unsubscribe", name="other")
    assert "Unsubscribed" in description(plain)
    await asyncio.sleep(0.2)
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user10", "user12")  # no undo: nothing unmuted


async def test_delete_cancels_pending_actions_and_tells_subscribers(tmp_path: Path) -> None:
    async with Sandbox(tmp_path, x_users=100, window_seconds=30) as sandbox:
        mod = sandbox.member("mod", moderator=True)
        alice = sandbox.member("alice")
        await sandbox.link(mod, "user1")
        await sandbox.link(alice, "user2")
        await mod.slash("mutelist create", name="big")
        names = "\n".join(f"user{i}" for i in range(3, 63)).encode()
        await mod.slash("mutelist import", name="big", file=Attachment("big.txt", names))
        await alice.slash("mutelist subscribe", name="big")
        assert sandbox.bot is not None
        queue = sandbox.bot.services.queue
        await until(lambda: queue.sent >= 50)
        reply = await mod.slash("mutelist delete", name="big")
        assert "10 queued actions cancelled; 1 subscriber told by DM" in description(reply)
        told = await alice.wait_for_dm(lambda m: "was deleted" in m.text)
        assert "big" in told.text
        summary = await alice.wait_for_dm(lambda m: bool(m.embeds) and m.embeds[0]["title"].startswith("Cancelled"))
        assert "Muted **50**" in summary.embeds[0]["description"] and "cancelled **10**" in summary.embeds[0][
            "description"]
        assert len(sandbox.x.mutes_of("user2")) == 50
        assert await queue.pending_for(alice.id) == 0
        detail = json.loads(await sandbox.bot.services.db.fetchval(
            "SELECT detail FROM audit_log WHERE action = 'delete'"))
        assert detail["cancelled"] == 10


async def test_an_oversized_import_is_refused_before_it_is_downloaded(sandbox: Sandbox, spam_list: Member) -> None:
    huge = b"username\n" + b"someone_long_1\n" * 150_000
    reply = await spam_list.slash("mutelist import", name="spam", file=Attachment("huge.csv", huge))
    assert "larger than 2 MB" in description(reply)
    assert not [path for method, path in sandbox.discord.requests if method == "GET" and "attachments" in path]
    shown = await spam_list.slash("mutelist show", name="spam")
    assert "3 accounts" in str(shown.embeds)
