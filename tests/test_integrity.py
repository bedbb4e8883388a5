"""Integrity of lists and the queue (issue 14): nothing lost, nothing left behind, nothing done twice."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.mutelists import spreadsheet_safe
from bot.sandbox.discord_payloads import MODERATOR_PERMISSIONS
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Attachment, Member
from bot.store.database import Database
from tests.helpers import until
from tests.test_mutelists import apply_and_wait, description, entries, ids, wait_idle


def db_of(sandbox: Sandbox) -> Database:
    assert sandbox.bot is not None
    return sandbox.bot.services.db


async def actions_of(sandbox: Sandbox, member: Member, *, status: str | None = None, kind: str | None = None) -> int:
    sql = "SELECT count(*) FROM actions WHERE discord_user_id = ?"
    params: list[object] = [member.id]
    if status is not None:
        sql += " AND status = ?"
        params.append(status)
    if kind is not None:
        sql += " AND kind = ?"
        params.append(kind)
    return int(await db_of(sandbox).fetchval(sql, params))


def finished(title: str = "") -> Callable[..., bool]:
    def check(message: object) -> bool:
        embeds = getattr(message, "embeds", [])
        heading = str(embeds[0].get("title", "")) if embeds else ""
        return heading.startswith(("Finished", "Cancelled")) and title in heading

    return check


@pytest.fixture
async def linked_mod(sandbox: Sandbox, mod: Member) -> Member:
    await sandbox.link(mod, "user1")
    return mod


async def make_list(mod: Member, name: str, *usernames: str, reason: str | None = None) -> None:
    reply = await mod.slash("mutelist create", name=name)
    assert reply.embeds[0]["title"] == "Mute list created", reply
    for username in usernames:
        options: dict[str, object] = {"reason": reason} if reason else {}
        reply = await mod.slash("mutelist add", name=name, username=username, **options)
        assert "Added to" in description(reply), reply


# -- item 4: an entry and its subscribers' actions commit together --------------------------------------


async def refuse_actions_for(sandbox: Sandbox, member: Member) -> None:
    """A real write failure at the moment a subscriber's actions are stored (as a full disk or an I/O
    error would cause): SQLite refuses every new action for this member until `allow_actions`."""
    db = db_of(sandbox)
    if db.dialect.name == "postgresql":
        await db.execute(
            "CREATE FUNCTION refuse_actions() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " RAISE EXCEPTION 'disk I/O error'; END; $$"
        )
        await db.execute(
            "CREATE TRIGGER refuse_actions BEFORE INSERT ON actions FOR EACH ROW"
            f" WHEN (NEW.discord_user_id = {int(member.id)}) EXECUTE FUNCTION refuse_actions()"
        )
        return
    await db.execute(
        "CREATE TRIGGER refuse_actions BEFORE INSERT ON actions"
        f" WHEN NEW.discord_user_id = {int(member.id)} BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
    )


async def allow_actions(sandbox: Sandbox) -> None:
    db = db_of(sandbox)
    await db.execute("DROP TRIGGER refuse_actions" + (" ON actions" if db.dialect.name == "postgresql" else ""))


async def two_subscribers(sandbox: Sandbox, mod: Member, alice: Member, bob: Member) -> None:
    await make_list(mod, "spam", "user10")
    await sandbox.link(alice, "user2")
    await sandbox.link(bob, "user3")
    await apply_and_wait(alice, "spam", "mutelist subscribe")
    await apply_and_wait(bob, "spam", "mutelist subscribe")


async def test_an_add_that_cannot_queue_for_every_subscriber_adds_nothing_and_can_be_retried(
    sandbox: Sandbox, linked_mod: Member, alice: Member, bob: Member
) -> None:
    await two_subscribers(sandbox, linked_mod, alice, bob)
    await refuse_actions_for(sandbox, bob)  # alice's actions are written, then bob's fail: mid-way
    failed = await linked_mod.slash("mutelist add", name="spam", username="user20")
    assert failed.ephemeral and "incident" in description(failed)
    assert await entries(sandbox, "spam") == ["user10"]  # not added without its subscribers' mutes
    assert await actions_of(sandbox, alice, status="pending") == 0
    await allow_actions(sandbox)
    retried = await linked_mod.slash("mutelist add", name="spam", username="user20")
    assert "Added to" in description(retried) and "Queued for 2 subscriber" in description(retried)
    await wait_idle(sandbox, alice)
    await wait_idle(sandbox, bob)
    assert set(sandbox.x.mutes_of("user2")) == set(sandbox.x.mutes_of("user3")) == ids(sandbox, "user10", "user20")


async def test_an_import_that_cannot_queue_adds_nothing_and_can_be_retried(
    sandbox: Sandbox, linked_mod: Member, alice: Member, bob: Member
) -> None:
    await two_subscribers(sandbox, linked_mod, alice, bob)
    upload = Attachment("more.txt", b"user20\nuser21\n")
    await refuse_actions_for(sandbox, bob)
    failed = await linked_mod.slash("mutelist import", name="spam", file=upload)
    assert "incident" in description(failed)
    assert await entries(sandbox, "spam") == ["user10"]
    await allow_actions(sandbox)
    retried = await linked_mod.slash("mutelist import", name="spam", file=upload)
    assert "**2** added" in description(retried) and "Queued for 2 subscriber" in description(retried)
    await wait_idle(sandbox, alice)
    await wait_idle(sandbox, bob)
    assert set(sandbox.x.mutes_of("user3")) == ids(sandbox, "user10", "user20", "user21")


async def test_a_publish_that_cannot_queue_adds_nothing_and_can_be_retried(
    sandbox: Sandbox, linked_mod: Member, alice: Member, bob: Member
) -> None:
    await two_subscribers(sandbox, linked_mod, alice, bob)
    sandbox.x.seed_mutes("user1", ["user30", "user31"])
    await refuse_actions_for(sandbox, bob)
    failed = await linked_mod.slash("mutelist publish", name="spam")
    assert "incident" in description(failed)
    assert await entries(sandbox, "spam") == ["user10"]
    await allow_actions(sandbox)
    retried = await linked_mod.slash("mutelist publish", name="spam")
    assert "Added **2**" in description(retried) and "Queued for 2 subscriber" in description(retried)
    await wait_idle(sandbox, alice)
    await wait_idle(sandbox, bob)
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user10", "user30", "user31")


# -- item 7: the CSV export is safe to open in a spreadsheet ------------------------------------------------


async def test_export_neutralises_cells_a_spreadsheet_would_run_as_formulas(
    sandbox: Sandbox, linked_mod: Member, alice: Member
) -> None:
    await linked_mod.slash("mutelist create", name="spam")
    reasons = {"user10": "=HYPERLINK(\"http://evil\",\"x\")", "user11": "+1+1", "user12": "-2+3",
               "user13": "@SUM(A1)", "user14": "spam - obvious", "user15": "a=b"}
    for username, reason in reasons.items():
        reply = await linked_mod.slash("mutelist add", name="spam", username=username, reason=reason)
        assert "Added to" in description(reply)
    exported = await alice.slash("mutelist export", name="spam")
    rows = {r["username"]: r for r in csv.DictReader(io.StringIO(exported.attachments[0].data.decode()))}
    assert rows["user10"]["reason"] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert rows["user11"]["reason"] == "'+1+1"
    assert rows["user12"]["reason"] == "'-2+3"
    assert rows["user13"]["reason"] == "'@SUM(A1)"
    assert rows["user14"]["reason"] == "spam - obvious" and rows["user15"]["reason"] == "a=b"  # left alone
    assert rows["user10"]["id"] == sandbox.x.user("user10").id  # ids and usernames are untouched


def test_spreadsheet_safe_covers_tab_and_carriage_return() -> None:
    # /mutelist add strips a reason's leading whitespace, so these two cannot be reached end to end.
    assert spreadsheet_safe("\tcmd") == "'\tcmd" and spreadsheet_safe("\rcmd") == "'\rcmd"
    assert spreadsheet_safe("") == "" and spreadsheet_safe("plain") == "plain"


# -- item 9: a file the csv module cannot read is refused with its line -------------------------------------


async def test_an_import_with_a_cell_over_the_field_limit_is_refused_naming_the_line(
    sandbox: Sandbox, linked_mod: Member
) -> None:
    await linked_mod.slash("mutelist create", name="spam")
    data = ("username,reason\nuser20,ok\nuser21," + "x" * 140_000 + "\nuser22,ok\n").encode()
    reply = await linked_mod.slash("mutelist import", name="spam", file=Attachment("big.csv", data))
    text = description(reply)
    assert reply.ephemeral and "line 3" in text and "incident" not in text, text
    assert "Nothing was added" in text
    assert await entries(sandbox, "spam") == []


async def test_an_import_with_a_broken_quote_is_refused_naming_the_line(sandbox: Sandbox, linked_mod: Member) -> None:
    await linked_mod.slash("mutelist create", name="spam")
    for data, line in ((b'username\nuser20\n"user21\nuser22\nuser23\n', 3), (b'username\nuser20\n"user21"x\n', 3)):
        reply = await linked_mod.slash("mutelist import", name="spam", file=Attachment("quote.csv", data))
        text = description(reply)
        assert reply.ephemeral and f"line {line}" in text and "quote" in text and "incident" not in text, text
    assert await entries(sandbox, "spam") == []


# -- item 16: what lists muted ends unmuted when no list wants it, and stays muted while one does ---------


async def test_an_account_on_two_followed_lists_is_unmuted_once_both_removed_it(
    sandbox: Sandbox, linked_mod: Member, alice: Member
) -> None:
    await make_list(linked_mod, "spam", "user10", "user11")
    await make_list(linked_mod, "other", "user10")
    await sandbox.link(alice, "user2")
    await apply_and_wait(alice, "spam", "mutelist subscribe")  # spam mutes user10
    await apply_and_wait(alice, "other", "mutelist subscribe")  # already muted: nothing sent
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user10", "user11")
    first = await linked_mod.slash("mutelist remove", name="spam", username="user10")
    assert "Unmuting" not in description(first)  # "other" still holds it
    await wait_idle(sandbox, alice)
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user10", "user11")
    second = await linked_mod.slash("mutelist remove", name="other", username="user10")
    assert "Unmuting" in description(second) and "for 1 subscriber" in description(second)
    await wait_idle(sandbox, alice)
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user11")


async def test_an_account_re_added_while_its_unmute_waits_ends_muted(
    sandbox: Sandbox, linked_mod: Member, alice: Member
) -> None:
    await make_list(linked_mod, "spam", "user10", "user11")
    await sandbox.link(alice, "user2")
    await apply_and_wait(alice, "spam", "mutelist subscribe")
    assert sandbox.bot is not None
    accounts = sandbox.bot.services.accounts
    sandbox.x.revoke_user("user2")  # her queue waits for a relink, so the unmute stays queued

    async def waiting_for_relink() -> bool:
        # The link is flagged while the send is still in flight; the unmute is back in the queue a moment later.
        account = await accounts.account(alice.id)
        return (account is not None and account.needs_relink
                and await actions_of(sandbox, alice, status="pending", kind="unmute") == 1)

    await linked_mod.slash("mutelist remove", name="spam", username="user10")
    await until(waiting_for_relink, what="the unmute to wait for a relink")
    await linked_mod.slash("mutelist add", name="spam", username="user10")
    await sandbox.link(alice, "user2")
    await wait_idle(sandbox, alice)
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user10", "user11")
    # The list is the reason again: removing it once more unmutes it.
    again = await linked_mod.slash("mutelist remove", name="spam", username="user10")
    assert "Unmuting" in description(again) and "for 1 subscriber" in description(again)
    await wait_idle(sandbox, alice)
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user11")


# -- item 8: unlink mid-send, jobs settled after a restart, concurrent applies ------------------------------


async def test_an_unlink_during_an_in_flight_send_leaves_nothing_behind(
    sandbox: Sandbox, linked_mod: Member, alice: Member
) -> None:
    await make_list(linked_mod, "spam", "user10", "user11", "user12")
    await sandbox.link(alice, "user2")
    sandbox.x.latency = 0.5  # every request to X takes half a second: a send is in flight long enough

    async def in_flight() -> bool:
        return await actions_of(sandbox, alice, status="in_flight") == 1

    await alice.slash("mutelist apply", name="spam")
    await until(in_flight, what="a send in flight")
    unlinked = await alice.slash("unlink")
    assert unlinked.embeds[0]["title"] == "X account unlinked"
    summary = await alice.wait_for_dm(finished("Applying the list `spam`"), timeout=15)
    assert summary.embeds[0]["title"].startswith("Cancelled")
    db = db_of(sandbox)
    assert await actions_of(sandbox, alice) == await actions_of(sandbox, alice, status="cancelled") == 3
    assert await db.fetchval("SELECT count(*) FROM cached_mutes WHERE discord_user_id = ?", (alice.id,)) == 0
    assert await db.fetchval("SELECT count(*) FROM list_mutes WHERE discord_user_id = ?", (alice.id,)) == 0
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE discord_user_id = ? AND status IN"
                             " ('running', 'paused')", (alice.id,)) == 0


async def test_a_job_whose_actions_an_unlink_cancelled_ends_with_its_summary_across_a_stop(
    sandbox: Sandbox, linked_mod: Member, alice: Member
) -> None:
    await make_list(linked_mod, "spam", "user10", "user11")
    await sandbox.link(alice, "user2")
    await alice.slash("mutes")  # what she mutes is known, so the apply itself needs no X call
    sandbox.x.revoke_user("user2")  # the job pauses for a relink with both mutes queued
    await alice.slash("mutelist apply", name="spam")
    progress = await alice.wait_for_dm(lambda m: "Applying the list `spam`" in m.text)
    await progress.wait_for(lambda m: "Paused" in m.text)
    await alice.slash("unlink")  # cancels both: nothing of the job is left to send, so it ends now
    assert await actions_of(sandbox, alice, status="cancelled") == 2
    await sandbox.stop_bot()  # at once: the summary already on its way still arrives (flush_summaries)
    await sandbox.start_bot()
    summary = await alice.wait_for_dm(finished("Applying the list `spam`"))
    assert summary.embeds[0]["title"].startswith("Cancelled") and "cancelled **2**" in summary.embeds[0][
        "description"]
    assert await db_of(sandbox).fetchval("SELECT status FROM jobs WHERE discord_user_id = ?", (alice.id,)) == (
        "cancelled")


async def test_two_concurrent_applies_of_one_list_queue_each_account_once(
    sandbox: Sandbox, linked_mod: Member, alice: Member
) -> None:
    await linked_mod.slash("mutelist create", name="spam")
    names = "\n".join(f"user{i}" for i in range(10, 30)).encode()
    await linked_mod.slash("mutelist import", name="spam", file=Attachment("l.txt", names))
    await sandbox.link(alice, "user2")
    first, second = await asyncio.gather(alice.slash("mutelist apply", name="spam"),
                                         alice.slash("mutelist apply", name="spam"))
    await wait_idle(sandbox, alice)
    assert await actions_of(sandbox, alice, kind="mute") == 20
    assert sandbox.x.calls["POST /2/users/:id/muting"] == 20
    counts = sorted([description(first), description(second)])
    assert any("**0** to mute, 20 already muted" in c for c in counts), counts


# -- item 14: when mutebot leaves a server, or a member does -------------------------------------------------


@pytest.mark.parametrize("while_offline", [False, True], ids=["live", "while-offline"])
async def test_removing_the_bot_from_a_server_ends_its_subscriptions(
    sandbox: Sandbox, linked_mod: Member, alice: Member, while_offline: bool
) -> None:
    """Live, GUILD_DELETE says so; while mutebot was offline nothing does, and READY, missing the server, tells
    it when it connects."""
    await make_list(linked_mod, "spam", "user10", "user11")
    await sandbox.link(alice, "user2")
    await apply_and_wait(alice, "spam", "mutelist subscribe")
    elsewhere = sandbox.discord.add_guild("Elsewhere")
    carol = sandbox.discord.add_member(elsewhere, "carol", permissions=MODERATOR_PERMISSIONS)
    dave = sandbox.discord.add_member(elsewhere, "dave")
    await sandbox.link(carol, "user3")
    await sandbox.link(dave, "user4")
    await make_list(carol, "kept", "user12")
    await apply_and_wait(dave, "kept", "mutelist subscribe")
    assert sandbox.bot is not None
    spam = await sandbox.bot.services.lists.get(sandbox.guild_id, "spam")
    kept = await sandbox.bot.services.lists.get(elsewhere, "kept")

    if while_offline:
        await sandbox.stop_bot()
        await sandbox.discord.remove_bot(sandbox.guild_id)  # no gateway connection: no GUILD_DELETE reaches it
        bot = await sandbox.start_bot()
    else:
        bot = sandbox.bot
        await sandbox.discord.remove_bot(sandbox.guild_id)
    lists = bot.services.lists

    async def unsubscribed() -> bool:
        return not await lists.is_subscribed(spam.id, alice.id)

    await until(unsubscribed, what="the subscription to end")
    assert bot.get_guild(sandbox.guild_id) is None
    assert await lists.is_subscribed(kept.id, dave.id)  # another server's subscriptions stay
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user10", "user11")  # nothing undone on X
    assert await actions_of(sandbox, alice, kind="unmute") == 0


async def test_a_member_who_left_loses_their_subscription_when_a_change_would_queue_for_them(
    sandbox: Sandbox, linked_mod: Member, alice: Member, bob: Member
) -> None:
    await make_list(linked_mod, "spam", "user10", "user11")
    await sandbox.link(alice, "user2")
    await sandbox.link(bob, "user3")
    await apply_and_wait(alice, "spam", "mutelist subscribe")
    await apply_and_wait(bob, "spam", "mutelist subscribe")
    assert sandbox.bot is not None
    lists = sandbox.bot.services.lists
    spam = await lists.get(sandbox.guild_id, "spam")
    sandbox.discord.remove_member(sandbox.guild_id, alice)  # no event reaches the bot: no members intent

    added = await linked_mod.slash("mutelist add", name="spam", username="user20")
    assert "Queued for 1 subscriber" in description(added), description(added)
    assert ("GET", f"/guilds/{sandbox.guild_id}/members/{alice.id}") in sandbox.discord.requests
    assert not await lists.is_subscribed(spam.id, alice.id)
    assert await lists.is_subscribed(spam.id, bob.id)
    await wait_idle(sandbox, bob)
    assert set(sandbox.x.mutes_of("user3")) == ids(sandbox, "user10", "user11", "user20")
    assert set(sandbox.x.mutes_of("user2")) == ids(sandbox, "user10", "user11")  # nothing queued, nothing undone
    assert await actions_of(sandbox, alice, status="pending") == 0

    carol = sandbox.member("carol")  # subscribes after that check, then leaves too
    await sandbox.link(carol, "user4")
    await apply_and_wait(carol, "spam", "mutelist subscribe")
    sandbox.discord.remove_member(sandbox.guild_id, carol)
    removed = await linked_mod.slash("mutelist remove", name="spam", username="user11")
    assert "Unmuting" in description(removed) and "for 1 subscriber" in description(removed)  # bob only
    assert not await lists.is_subscribed(spam.id, carol.id)
    await wait_idle(sandbox, bob)
    assert sandbox.x.user("user11").id in sandbox.x.mutes_of("user4")  # nothing undone for carol
    assert sandbox.x.user("user11").id not in sandbox.x.mutes_of("user3")
    assert await actions_of(sandbox, carol, kind="unmute") == 0


async def test_the_stand_in_tells_the_bot_it_was_removed_and_answers_as_discord_does(tmp_path: Path) -> None:
    async with Sandbox(tmp_path) as sandbox:
        assert sandbox.bot is not None
        bot, removed = sandbox.bot, sandbox.guild_id
        assert bot.get_guild(removed) is not None

        async def dropped() -> bool:
            return bot.get_guild(removed) is None

        await sandbox.discord.remove_bot(removed)
        await until(dropped, what="discord.py to drop the guild")
        headers = {"Authorization": f"Bot {sandbox.discord.bot_token}"}
        response = await sandbox.http.get(f"{sandbox.discord.api_base}/guilds/{removed}", headers=headers)
        assert response.status_code == 403 and response.json()["code"] == 50001
        gone = sandbox.discord.add_member(sandbox.discord.add_guild("Still here"), "erin")
        sandbox.discord.remove_member(gone.guild_id, gone)
        response = await sandbox.http.get(f"{sandbox.discord.api_base}/guilds/{gone.guild_id}/members/{gone.id}",
                                          headers=headers)
        assert response.status_code == 404 and response.json()["code"] == 10007
