"""/mutelist capture end to end: a pile-on read from X, previewed, added with evidence, applied through the queue."""

from __future__ import annotations

import csv
import io

import pytest

from bot.sandbox.discord_payloads import MODERATOR_PERMISSIONS
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Attachment, Member, Reply
from bot.sandbox.x_emulator import EmulatedPost
from tests.helpers import until
from tests.test_integrity import actions_of, allow_actions, refuse_actions_for

REPLIERS = [f"t{i}" for i in range(1, 30)] + ["user2"]  # 30; user2 is alice's linked account
QUOTERS = [f"t{i}" for i in range(21, 31)]  # 10, nine of them also repliers
REPOSTERS = [f"t{i}" for i in range(25, 44)] + ["ally"]  # 20; ally is protected
LIKERS = [f"t{i}" for i in range(35, 74)] + ["user1"]  # 40; user1 is the moderator's own account
NEW = {f"t{i}" for i in range(3, 74)} | {"target"}  # t1 and t2 are on the list already
EXCLUDED = {"user1", "user2", "ally"}  # the moderator's own, alice's linked, the protected account
SEEDED = {"author": ["target"], "replied": REPLIERS, "quoted": QUOTERS, "reposted": REPOSTERS, "liked": LIKERS}


def sources_of(name: str) -> tuple[str, ...]:
    """The sources an account of the seeded pile-on took part in, in the order entries record them."""
    return tuple(source for source, names in SEEDED.items() if name in names)


def read_order() -> list[str]:
    """The accounts in the order a capture meets them: the author, reposters and likers newest first, then
    quoters and repliers newest first (recent search and quote_tweets list the newest post first)."""
    met = ["target", *reversed(REPOSTERS), *reversed(LIKERS), *reversed(QUOTERS), *reversed(REPLIERS)]
    return list(dict.fromkeys(met))


def description(reply: Reply) -> str:
    return str(reply.embeds[0].get("description", "")) if reply.embeds else reply.text


def field(reply: Reply, name: str) -> str:
    return next(str(f["value"]) for f in reply.embeds[0].get("fields", []) if f["name"] == name)


async def names(sandbox: Sandbox, list_name: str = "raid") -> set[str]:
    assert sandbox.bot is not None
    lists = sandbox.bot.services.lists
    return {e.username for e in await lists.entries((await lists.get(sandbox.guild_id, list_name)).id)}


@pytest.fixture
async def pile_on(sandbox: Sandbox, mod: Member, alice: Member) -> EmulatedPost:
    await sandbox.link(mod, "user1")
    await sandbox.link(alice, "user2")
    sandbox.x.add_user("ally")
    post = sandbox.x.seed_post("target", repliers=REPLIERS, quoters=QUOTERS, reposters=REPOSTERS, likers=LIKERS)
    await mod.slash("mutelist create", name="raid")
    for name in ("t1", "t2"):
        await mod.slash("mutelist add", name="raid", username=name)
    protected = await mod.slash("mutelist protect", username="ally")
    assert protected.embeds[0]["title"] == "Account protected", protected
    return post


def url(post: EmulatedPost) -> str:
    return f"https://mobile.twitter.com/target/status/{post.id}?s=20&t=abc"


async def subscribe_bob(sandbox: Sandbox, bob: Member) -> None:
    """bob, linked as user3, subscribes to raid and gets its two entries muted."""
    await sandbox.link(bob, "user3")
    await bob.slash("mutelist subscribe", name="raid")
    await until(lambda: len(sandbox.x.mutes_of("user3")) == 2, what="the subscription's first mutes")


async def test_preview_counts_then_add_mutes_subscribers_through_the_queue(
    sandbox: Sandbox, pile_on: EmulatedPost, mod: Member, bob: Member,
) -> None:
    await subscribe_bob(sandbox, bob)
    before = dict(sandbox.x.calls)
    preview = await mod.slash("mutelist capture", name="raid", post=url(pile_on), reason="pile-on")
    assert preview.ephemeral
    embed = preview.embeds[0]
    assert embed["title"] == "Capture preview: 72 accounts to add"
    text = description(preview)
    assert "77 different accounts took part" in text
    for line in ("1 author", "30 repliers", "10 quoters", "20 reposters", "40 likers"):
        assert f"- {line}" in text, line
    assert "Already on `raid`: 2." in text
    assert ("Left out: 1 your own X account; 1 linked by members of this server; 1 protected in this server."
            in text)
    assert field(preview, "Notes") == "X reads: 5."  # an hour old, nothing limited, far from 1,000: no other note
    # The sample is the first ten accounts to add: ally (the newest reposter) and user1 (the newest liker) would
    # be among them if exclusions were not applied first.
    offered = [n for n in read_order() if n not in EXCLUDED | {"t1", "t2"}]
    assert offered[:2] == ["target", "t43"] and "ally" in read_order()[:2]
    assert field(preview, "Sample") == ", ".join(f"`@{n}`" for n in offered[:10]) + " and 62 more"
    assert [b["label"] for b in preview.buttons] == ["Add", "Cancel"]
    reads = {k: sandbox.x.calls[k] - before.get(k, 0) for k in sandbox.x.calls if k.startswith("GET /2/tweets")}
    assert reads == {"GET /2/tweets/:id": 1, "GET /2/tweets/search/recent": 1, "GET /2/tweets/:id/quote_tweets": 1,
                     "GET /2/tweets/:id/retweeted_by": 1, "GET /2/tweets/:id/liking_users": 1}
    assert await names(sandbox) == {"t1", "t2"}  # nothing changes before Add
    assert len(sandbox.x.mutes_of("user3")) == 2

    added = await preview.click("Add")
    assert added.embeds[0]["title"] == "Capture added"
    assert "Added **72** accounts to `raid`" in description(added) and "Queued for 1 subscriber." in description(added)
    assert added.buttons == []
    assert await names(sandbox) == NEW | {"t1", "t2"}
    assert sandbox.bot is not None
    lists = sandbox.bot.services.lists
    entries = {e.username: e for e in await lists.entries((await lists.get(sandbox.guild_id, "raid")).id)}
    post_url = f"https://x.com/target/status/{pile_on.id}"
    for name in NEW:  # each captured entry: the post, and exactly the sources the seeded sets say
        assert (entries[name].evidence_url, entries[name].evidence_sources, entries[name].reason) == (
            post_url, sources_of(name), "pile-on"), name
    assert entries["t25"].evidence_sources == ("replied", "quoted", "reposted")
    assert entries["target"].evidence_sources == ("author",)
    for name in ("t1", "t2"):  # added by hand before: the capture leaves their entries as they were
        assert (entries[name].evidence_url, entries[name].evidence_sources) == (None, ()), name

    # 74 mutes at 50 per 15-minute window: the queue waits for the window instead of meeting a 429
    await until(lambda: len(sandbox.x.mutes_of("user3")) >= 50, what="the first window of mutes")
    sandbox.advance(901)
    await until(lambda: len(sandbox.x.mutes_of("user3")) == 74, what="every entry muted for the subscriber")
    assert sandbox.x.calls["429"] == 0

    shown = await mod.slash("mutelist show", name="raid")
    assert f"[@t21](https://x.com/t21) — pile-on · replied, quoted it: {post_url}" in description(shown)
    exported = await mod.slash("mutelist export", name="raid")
    rows = {r["username"]: r for r in csv.DictReader(io.StringIO(exported.attachments[0].data.decode()))}
    assert rows["t40"]["evidence"] == f"reposted it, liked it: {post_url}"
    why = await bob.slash("why", username="t40")
    assert f"Evidence: reposted it, liked it: {post_url}" in why.embeds[0]["fields"][0]["value"]


async def test_cancel_and_another_members_click_change_nothing(
    sandbox: Sandbox, pile_on: EmulatedPost, mod: Member, alice: Member,
) -> None:
    preview = await mod.slash("mutelist capture", name="raid", post=pile_on.id, who="likers")
    assert preview.embeds[0]["title"] == "Capture preview: 39 accounts to add"
    assert "- 40 likers" in description(preview) and "repliers" not in description(preview)
    refused = await preview.click("Add", as_member=alice)
    assert refused.ephemeral and "Only the moderator who ran this capture" in refused.text
    assert await names(sandbox) == {"t1", "t2"}
    cancelled = await preview.click("Cancel")
    assert cancelled.embeds[0]["title"] == "Capture cancelled" and cancelled.buttons == []
    assert await names(sandbox) == {"t1", "t2"}


async def test_a_restart_between_preview_and_add(sandbox: Sandbox, pile_on: EmulatedPost, mod: Member) -> None:
    preview = await mod.slash("mutelist capture", name="raid", post=url(pile_on), who="quoters")
    assert preview.embeds[0]["title"] == "Capture preview: 10 accounts to add"
    await sandbox.stop_bot()
    await sandbox.start_bot()
    added = await preview.click("Add")
    assert added.embeds[0]["title"] == "Capture added", added
    assert await names(sandbox) == {"t1", "t2"} | {f"t{i}" for i in range(21, 31)}


async def test_a_preview_expires_after_15_minutes(sandbox: Sandbox, pile_on: EmulatedPost, mod: Member) -> None:
    preview = await mod.slash("mutelist capture", name="raid", post=url(pile_on), who="author")
    sandbox.advance(15 * 60 + 1)
    late = await preview.click("Add")
    told = late.followups[-1]
    assert told.ephemeral and "This preview expired" in told.embeds[0]["description"]
    # The preview stays readable, without the buttons that can no longer do anything.
    await preview.wait_for(lambda shown: shown.buttons == [])
    assert preview.embeds[0]["title"] == "Capture preview: 1 account to add"
    assert await names(sandbox) == {"t1", "t2"}


async def test_missing_and_deleted_posts(sandbox: Sandbox, pile_on: EmulatedPost, mod: Member) -> None:
    reads = sandbox.x.calls["GET /2/tweets/:id"]
    missing = await mod.slash("mutelist capture", name="raid", post="https://x.com/target/status/12345")
    assert "X has no post 12345" in description(missing) and missing.buttons == []
    sandbox.x.delete_post(pile_on.id)
    deleted = await mod.slash("mutelist capture", name="raid", post=url(pile_on))
    assert f"X has no post {pile_on.id}: it was deleted" in description(deleted)
    assert sandbox.x.calls["GET /2/tweets/:id"] == reads + 2
    assert sandbox.x.calls["GET /2/tweets/search/recent"] == 0  # nothing more was read
    bad = await mod.slash("mutelist capture", name="raid", post="https://x.com/target")
    assert "is not a post's link or id" in description(bad)
    assert sandbox.x.calls["GET /2/tweets/:id"] == reads + 2


async def test_unlinked_moderator_and_non_moderator(sandbox: Sandbox, pile_on: EmulatedPost, bob: Member) -> None:
    other_mod = sandbox.member("mod2", moderator=True)
    unlinked = await other_mod.slash("mutelist capture", name="raid", post=pile_on.id)
    assert "/link" in description(unlinked) and unlinked.buttons == []
    await sandbox.link(bob, "user3")
    refused = await bob.slash("mutelist capture", name="raid", post=pile_on.id)
    assert refused.ephemeral and "Manage Server" in description(refused)
    assert sandbox.x.calls["GET /2/tweets/search/recent"] == 0
    assert await names(sandbox) == {"t1", "t2"}


async def test_protected_accounts_are_refused_and_taken_off(
    sandbox: Sandbox, pile_on: EmulatedPost, mod: Member,
) -> None:
    refused = await mod.slash("mutelist add", name="raid", username="ally")
    assert "is protected in this server" in description(refused)
    protected = await mod.slash("mutelist protect", username="t1")
    assert "Taken off `raid`" in description(protected)
    assert await names(sandbox) == {"t2"}
    lifted = await mod.slash("mutelist unprotect", username="@T1")
    assert "no longer protected" in description(lifted)
    assert "Added to" in description(await mod.slash("mutelist add", name="raid", username="t1"))


async def test_a_link_from_before_like_read_captures_the_rest(sandbox: Sandbox, alice: Member) -> None:
    moderator = sandbox.member("oldmod", moderator=True)
    await moderator.slash("link")
    opened = await sandbox.http.get(sandbox.link_url((await moderator.dms())[-1]))
    to_x = opened.headers["location"].replace("like.read+", "").replace("like.read%20", "")
    assert "like.read" not in to_x  # the scopes mutebot asked for before issue 16
    linked = await sandbox.http.get(f"{to_x}&login=user5", follow_redirects=True)
    assert linked.status_code == 200
    post = sandbox.x.seed_post("target", repliers=["a1", "a2"], likers=["k1", "k2"])
    await moderator.slash("mutelist create", name="raid")
    preview = await moderator.slash("mutelist capture", name="raid", post=post.id)
    assert preview.embeds[0]["title"] == "Capture preview: 3 accounts to add"
    assert "A fresh `/link` adds likers" in field(preview, "Notes")
    assert "likers" not in description(preview)
    assert sandbox.x.calls["GET /2/tweets/:id/liking_users"] == 0


DAY = 24 * 3600.0


async def test_an_old_post_says_recent_search_misses_its_older_replies(sandbox: Sandbox, mod: Member) -> None:
    await sandbox.link(mod, "user1")
    await mod.slash("mutelist create", name="raid")
    now = sandbox.clock()
    post = sandbox.x.seed_post("oldie", repliers=["early1", "early2", "early3"], likers=["fan1"],
                               created_at=now - 8 * DAY)
    for i, name in enumerate(("late1", "late2")):  # replies from inside recent search's 7 days
        sandbox.x.add_post(name, f"@oldie late reply {i}", reply_to=post.id, created_at=now - DAY + 60 * i)
    preview = await mod.slash("mutelist capture", name="raid", post=post.id)
    assert preview.embeds[0]["title"] == "Capture preview: 4 accounts to add", preview
    text = description(preview)
    assert "- 2 repliers" in text and "- 1 liker" in text  # the replies of the first day are out of reach
    assert ("The post is more than 7 days old: X's recent search only finds replies from the last 7 days."
            in field(preview, "Notes"))
    await preview.click("Add")
    assert await names(sandbox) == {"oldie", "late1", "late2", "fan1"}


async def test_a_used_up_likers_limit_is_said_and_nothing_is_sent_for_it(sandbox: Sandbox, mod: Member) -> None:
    await sandbox.link(mod, "user1")
    await mod.slash("mutelist create", name="raid")
    post = sandbox.x.seed_post("target", repliers=["r1", "r2"], quoters=["q1"], reposters=["p1"],
                               likers=["k1", "k2"])
    # Another use of the moderator's X account read likers 74 times in this window; the first capture takes
    # the 75th, X's last (its answer says none remain), so the second one knows before sending.
    token = sandbox.x.issue_token("user1")["access_token"]
    for _ in range(74):
        used = await sandbox.http.get(f"{sandbox.x.base_url}/2/tweets/{post.id}/liking_users",
                                      headers={"Authorization": f"Bearer {token}"})
        assert used.status_code == 200, used.text
    reset = int(used.headers["x-rate-limit-reset"])
    first = await mod.slash("mutelist capture", name="raid", post=post.id, who="likers")
    assert first.embeds[0]["title"] == "Capture preview: 2 accounts to add"
    assert sandbox.x.calls["GET /2/tweets/:id/liking_users"] == 75

    preview = await mod.slash("mutelist capture", name="raid", post=post.id)
    assert preview.embeds[0]["title"] == "Capture preview: 5 accounts to add", preview  # all but the likers
    text = description(preview)
    for line in ("1 author", "2 repliers", "1 quoter", "1 reposter"):
        assert f"- {line}" in text, line
    assert "liker" not in text  # not "0 likers": they were not read
    notes = field(preview, "Notes")
    assert f"X's limit for reading likers is used up until <t:{reset + 1}:R>; they were not read." in notes
    assert "X reads: 4." in notes
    assert sandbox.x.calls["GET /2/tweets/:id/liking_users"] == 75  # nothing X would refuse was sent
    assert sandbox.x.calls["429"] == 0


async def test_a_capture_stops_at_1000_accounts_and_says_where(sandbox: Sandbox, mod: Member) -> None:
    await sandbox.link(mod, "user1")
    await mod.slash("mutelist create", name="raid")
    reposters, likers = [f"p{i}" for i in range(100)], [f"k{i}" for i in range(100)]
    post = sandbox.x.seed_post("target", repliers=[f"r{i}" for i in range(900)], reposters=reposters,
                               likers=likers)
    before = dict(sandbox.x.calls)
    preview = await mod.slash("mutelist capture", name="raid", post=post.id)
    assert preview.embeds[0]["title"] == "Capture preview: 1000 accounts to add", preview
    text = description(preview)
    assert "1000 different accounts took part" in text
    for line in ("1 author", "100 reposters", "100 likers", "0 quoters", "799 repliers"):
        assert f"- {line}" in text, line
    notes = field(preview, "Notes")
    assert ("A capture reads at most 1,000 accounts: it stopped there while reading the repliers, so some of them "
            "were not read.") in notes
    # The fewest calls that reach 1,000: the post, one page each of reposters, likers and quoters (201 accounts),
    # then 8 pages of 100 replies, newest first, for the other 799.
    reads = {k: sandbox.x.calls[k] - before.get(k, 0) for k in sandbox.x.calls if k.startswith("GET /2/tweets")}
    assert reads == {"GET /2/tweets/:id": 1, "GET /2/tweets/:id/retweeted_by": 1, "GET /2/tweets/:id/liking_users": 1,
                     "GET /2/tweets/:id/quote_tweets": 1, "GET /2/tweets/search/recent": 8}
    assert "X reads: 12." in notes
    added = await preview.click("Add")
    assert "Added **1000** accounts" in description(added)
    assert await names(sandbox) == {"target", *reposters, *likers, *(f"r{i}" for i in range(101, 900))}


async def test_a_preview_still_adds_after_14_minutes(sandbox: Sandbox, pile_on: EmulatedPost, mod: Member) -> None:
    preview = await mod.slash("mutelist capture", name="raid", post=url(pile_on), who="author")
    sandbox.advance(14 * 60)
    added = await preview.click("Add")
    assert added.embeds[0]["title"] == "Capture added", added
    assert await names(sandbox) == {"t1", "t2", "target"}


async def test_a_capture_that_cannot_queue_adds_nothing(
    sandbox: Sandbox, pile_on: EmulatedPost, mod: Member, bob: Member,
) -> None:
    # The entries a capture adds and their subscribers' mutes commit together (issue 14, item 4), as for add,
    # import and publish (tests/test_integrity.py): a write failure while queueing leaves the list as it was.
    await subscribe_bob(sandbox, bob)

    async def sent() -> bool:
        return await actions_of(sandbox, bob, status="pending") == 0

    await until(sent, what="the subscription's actions to finish")
    preview = await mod.slash("mutelist capture", name="raid", post=url(pile_on), who="quoters")
    await refuse_actions_for(sandbox, bob)
    failed = await preview.click("Add")
    told = failed.followups[-1]
    assert told.ephemeral and told.embeds[0]["description"].startswith("Sorry, something went wrong on our side.")
    assert "Traceback" not in str(told.embeds) and told.text == ""
    assert await names(sandbox) == {"t1", "t2"}  # nothing added without its subscriber's mutes
    assert await actions_of(sandbox, bob, status="pending") == 0
    assert [b["label"] for b in preview.buttons] == ["Add", "Cancel"]  # the preview can still be added
    await allow_actions(sandbox)
    retried = await preview.click("Add")
    assert retried.embeds[0]["title"] == "Capture added", retried
    assert "Added **10** accounts to `raid`" in description(retried)
    assert "Queued for 1 subscriber." in description(retried)
    assert await names(sandbox) == {"t1", "t2"} | {f"t{i}" for i in range(21, 31)}
    await until(lambda: len(sandbox.x.mutes_of("user3")) == 12, what="the captured accounts muted for bob")


async def test_an_import_naming_a_protected_account_leaves_it_out(
    sandbox: Sandbox, pile_on: EmulatedPost, mod: Member,
) -> None:
    by_name = Attachment("list.csv", b"username,reason\nt5,spam\nally,spam\n")
    reply = await mod.slash("mutelist import", name="raid", file=by_name)
    embed = reply.embeds[0]
    assert embed["description"].startswith("2 rows read: **1** added to"), embed
    assert "0 already on it, 1 not usable." in embed["description"]
    assert embed["fields"][0]["value"] == "line 3: `ally` — protected in this server"
    by_id = Attachment("ids.csv", f"id\n{sandbox.x.user('ally').id}\n".encode())
    reply = await mod.slash("mutelist import", name="raid", file=by_id)
    assert "**0** added" in reply.embeds[0]["description"]
    assert reply.embeds[0]["fields"][0]["value"] == "line 2: `ally` — protected in this server"
    assert await names(sandbox) == {"t1", "t2", "t5"}


def muted(sandbox: Sandbox, who: str, target: str) -> bool:
    return sandbox.x.user(target).id in sandbox.x.mutes_of(who)


async def test_protecting_undoes_a_subscribers_mute_unless_another_servers_list_holds_it(
    sandbox: Sandbox, mod: Member, bob: Member,
) -> None:
    await sandbox.link(mod, "user1")
    await sandbox.link(bob, "user3")
    await mod.slash("mutelist create", name="raid")
    for name in ("user5", "user6"):
        await mod.slash("mutelist add", name="raid", username=name)
    await bob.slash("mutelist subscribe", name="raid")
    await until(lambda: muted(sandbox, "user3", "user5") and muted(sandbox, "user3", "user6"),
                what="the subscription's mutes")
    # Protecting takes an account off every list of this server, so the list that keeps user6 muted for bob is
    # in another server.
    second = sandbox.discord.add_guild("Second Server")
    await until(lambda: sandbox.bot is not None and sandbox.bot.get_guild(second) is not None,
                what="the bot to see the second server")
    mod2 = sandbox.discord.add_member(second, "mod2", permissions=MODERATOR_PERMISSIONS)
    await sandbox.link(mod2, "user4")
    await mod2.slash("mutelist create", name="other")
    await mod2.slash("mutelist add", name="other", username="user6")
    await sandbox.discord.add_member(second, "bob", user_id=bob.id).slash("mutelist subscribe", name="other")
    assert sandbox.bot is not None
    queue = sandbox.bot.services.queue

    async def drained() -> bool:
        return await queue.pending_for(bob.id) == 0

    await until(drained, what="nothing left to send for bob")

    kept = await mod.slash("mutelist protect", username="user6")
    assert description(kept) == ("[@user6](https://x.com/user6) is protected: no list of this server may hold it, "
                                 "and captures leave it out.\nTaken off `raid`.")
    undone = await mod.slash("mutelist protect", username="user5")
    assert description(undone) == ("[@user5](https://x.com/user5) is protected: no list of this server may hold "
                                   "it, and captures leave it out.\nTaken off `raid`; unmuting it for 1 subscriber.")
    await until(lambda: not muted(sandbox, "user3", "user5"), what="user5 unmuted for bob through the queue")
    await until(drained, what="nothing left to send for bob")
    assert muted(sandbox, "user3", "user6")  # the other server's list still holds it
    assert sandbox.x.calls["DELETE /2/users/:source_user_id/muting/:target_user_id"] == 1
    assert await names(sandbox) == set()
    lists = sandbox.bot.services.lists
    assert [e.username for e in await lists.entries((await lists.get(second, "other")).id)] == ["user6"]
