"""How the bot answers: every embed and line the commands show (with bot/errors.py, where words live), sent right."""

from __future__ import annotations

import html
import io
import logging
import secrets
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.durations import describe_duration
from bot.errors import GuildOnly, MutebotError, NotModerator, describe
from bot.text import code_span as code_span
from bot.text import counted as counted
from bot.usernames import InvalidUsername
from bot.x_client import XError, XUser

if TYPE_CHECKING:  # the services import this module: their types are only named here
    from bot.accounts import Linked, LinkedAccount
    from bot.capture import CaptureAdded, CapturePreview
    from bot.modlog import ListChange, ModlogSet
    from bot.mutelists import Applied, EntriesPage, ImportReport, Published, RowProblem, Unsubscribed
    from bot.mutes import MuteOutcome, MuteReasons, MutesPage
    from bot.store.lists import ListEntry, ListSummary, MuteList

log = logging.getLogger(__name__)

COLOUR_OK = discord.Colour(0x1D9BF0)
COLOUR_ERROR = discord.Colour(0xE0245E)
COLOUR_INFO = discord.Colour(0x71767B)


def user_line(user: XUser) -> str:
    name = discord.utils.escape_markdown(user.name) if user.name else user.username
    return f"{name} ([@{user.username}]({user.url}))"


def account_embed(
    title: str, user: XUser, *, colour: discord.Colour = COLOUR_OK, note: str | None = None
) -> discord.Embed:
    embed = discord.Embed(title=title, colour=colour, description=user_line(user))
    if note:
        embed.description = f"{embed.description}\n{note}"
    if user.profile_image_url:
        embed.set_thumbnail(url=user.profile_image_url)
    return embed


JOB_VERBS = {"apply": "Applying", "subscribe": "Subscribing to", "undo": "Undoing"}


def timed_mutes_ended_title(ended: int, kept: int) -> str:
    """The job title of timed mutes that ended together; `kept` of them stay muted for a list that holds them."""
    title = f"{counted(ended, 'timed mute')} ended"
    if kept == 1:
        title += "; 1 account stays muted because a list you subscribe to holds it"
    elif kept:
        title += f"; {kept} accounts stay muted because lists you subscribe to hold them"
    return title


def job_title(kind: str, list_name: str) -> str:
    """A list job's title, which heads its progress message and its summary: `Applying the list `spam``."""
    return f"{JOB_VERBS[kind]} the list {code_span(list_name)}"


# -- /mute, /unmute, /mutes and /why ------------------------------------------------------------------------

# Discord refuses a message whose embeds hold more than 6,000 characters in all; the rest is the footer's.
EMBED_BUDGET = 6000 - 100


def muted_embed(outcome: MuteOutcome, duration: int | None) -> discord.Embed:
    """/mute's answer; `duration` is the one the member asked for (seconds), if any."""
    notes: list[str] = []
    if outcome.ends_at is not None and duration is not None:
        end = int(outcome.ends_at)
        notes.append(f"For {describe_duration(duration)}: mutebot unmutes it <t:{end}:R> (<t:{end}:f>), "
                     "unless a list you subscribe to holds it then.")
    elif outcome.was_timed:
        notes.append("It was a timed mute; now it stays muted until you unmute it.")
    if not outcome.changed:
        notes.append("It was already muted.")
    return account_embed("Muted on X", outcome.user, note=" ".join(notes) or None)


def unmuted_embed(outcome: MuteOutcome) -> discord.Embed:
    title, note = ("Unmuted on X", None) if outcome.changed else (
        "Not muted on X", "mutebot had not seen it muted; either way, your X account does not mute it now.")
    return account_embed(title, outcome.user, colour=COLOUR_INFO, note=note)


def reasons_embed(why: MuteReasons, server_name: Callable[[int], str | None]) -> discord.Embed:
    """/why's answer; `server_name` names a server by id (None for one mutebot is no longer in)."""
    user = why.user
    if not why.known:
        embed = discord.Embed(title=f"mutebot did not mute @{user.username}", colour=COLOUR_INFO)
        seen = ("Your X account does mute it (as of mutebot's last look at your mutes), so it was muted on X "
                "directly, or by another app." if why.cached_muted else
                "If your X account mutes it, it was muted on X directly, or by another app.")
        embed.description = (f"{user_line(user)}: you did not mute it through mutebot, and no list you "
                             f"subscribe to holds it. {seen}")
        return embed
    embed = discord.Embed(title=f"Why @{user.username} is muted for you", colour=COLOUR_OK)
    lines = [user_line(user)]
    if why.choice == "muted" and why.chosen_at is not None:
        line = f"You muted it yourself with `/mute` <t:{int(why.chosen_at)}:f>."
        if why.ends_at is not None:
            end = int(why.ends_at)
            line += f" It is a timed mute: mutebot unmutes it <t:{end}:R> (<t:{end}:f>)"
            kept = any(reason.following for reason in why.lists)  # only those keep it past its end (timers.py)
            line += ", but a list you subscribe to holds it, so it will stay muted." if kept else "."
        lines.append(line)
    elif why.choice == "unmuted" and why.chosen_at is not None:
        lines.append(f"You unmuted it yourself with `/unmute` <t:{int(why.chosen_at)}:f>, so lists you "
                     "subscribe to leave it unmuted for you.")
    if why.lists:
        lines.append(f"{counted(len(why.lists), 'list holds', 'lists hold')} it:")
    embed.description = "\n".join(lines)[:4096]
    shown = 0
    for reason in why.lists[:20]:
        named = server_name(reason.guild_id)
        server = named if named is not None else "a server mutebot is no longer in"
        value = [f"Added by <@{reason.added_by}> <t:{int(reason.added_at)}:f>"]
        if reason.reason:
            value.append(f"Reason: {reason.reason}")
        if reason.evidence_url:
            value.append(f"Evidence: {evidence_line(reason.evidence_url, reason.evidence_sources)}")
        if reason.muted_it:
            value.append("This list muted it for you." if reason.following else
                         "This list muted it for you (you are no longer subscribed).")
        else:
            value.append("You subscribe to this list.")
        name, text = f"{code_span(reason.list_name)} in {server}"[:256], "\n".join(value)[:1024]
        if len(embed) + len(name) + len(text) > EMBED_BUDGET:
            break
        embed.add_field(name=name, value=text, inline=False)
        shown += 1
    if len(why.lists) > shown:
        embed.set_footer(text=f"… and {counted(len(why.lists) - shown, 'more list')}")
    return embed


def mutes_page_embed(result: MutesPage) -> discord.Embed:
    """A page of /mutes."""
    lines = [f"{result.first_number + i}. {user_line(user)}" + (
        f" · until <t:{int(result.ends[user.id])}:R>" if user.id in result.ends else "")
        for i, user in enumerate(result.entries)]
    description = "\n".join(lines) if lines else "Your X account mutes nobody."
    if result.refresh_at is not None:
        description += (f"\n\nX allows 15 list reads per 15 minutes; showing the list as of "
                        f"<t:{int(result.fetched_at)}:R>. A refresh is possible <t:{int(result.refresh_at) + 1}:R>.")
    embed = discord.Embed(title="Your muted accounts on X", colour=COLOUR_OK, description=description[:4096])
    embed.set_footer(text=f"Page {result.page + 1} of {result.pages} · {counted(result.total, 'muted account')}")
    embed.add_field(name="As of", value=f"<t:{int(result.fetched_at)}:R>")
    return embed


# -- /mutelist ------------------------------------------------------------------------------------------------

# What an entry's capture sources read as in /mutelist show, the export and /why.
EVIDENCE_WORDS = {"author": "wrote it", "replied": "replied", "quoted": "quoted it", "reposted": "reposted it",
                  "liked": "liked it"}


def evidence_line(url: str | None, sources: Sequence[str]) -> str:
    """`replied, liked it: <post URL>`, or nothing for an entry that was not captured."""
    if not url:
        return ""
    how = ", ".join(EVIDENCE_WORDS.get(s, s) for s in sources)
    return f"{how}: {url}" if how else url


def list_created_embed(mute_list: MuteList) -> discord.Embed:
    return discord.Embed(
        title="Mute list created", colour=COLOUR_OK,
        description=f"{code_span(mute_list.name)} is ready. Add accounts with `/mutelist add` or `/mutelist import`.",
    )


def list_deleted_dm(mute_list: MuteList) -> str:
    """The DM each subscriber of a deleted list gets."""
    return (f"The mute list {code_span(mute_list.name)} you subscribed to was deleted by the server's moderators. "
            "Its queued mutes were cancelled; accounts already muted stay muted (use `/unmute` to change that).")


def list_deleted_embed(mute_list: MuteList, cancelled: int, told: int) -> discord.Embed:
    return discord.Embed(
        title="Mute list deleted", colour=COLOUR_INFO,
        description=(f"{code_span(mute_list.name)} is gone. {counted(cancelled, 'queued action')} cancelled; "
                     f"{counted(told, 'subscriber')} told by DM."),
    )


def entry_added_embed(mute_list: MuteList, user: XUser, *, added: bool, queued: int, reason_given: bool
                      ) -> discord.Embed:
    """/mutelist add's answer: added (and queued for how many subscribers), or already there."""
    if added:
        note = f"Added to {code_span(mute_list.name)}."
        if queued:
            note += f" Queued for {counted(queued, 'subscriber')}."
    else:
        note = f"Already on {code_span(mute_list.name)}" + ("; reason updated." if reason_given else ".")
    return discord.Embed(title="Mute list entry", colour=COLOUR_OK,
                         description=f"[@{user.username}]({user.url})\n{note}")


def entry_removed_embed(mute_list: MuteList, entry: ListEntry, queued: int) -> discord.Embed:
    note = (f" Unmuting it for {counted(queued, 'subscriber')} for whom this list was the only reason."
            if queued else "")
    return discord.Embed(
        title="Mute list entry removed", colour=COLOUR_INFO,
        description=f"@{entry.username or entry.x_user_id} is no longer on {code_span(mute_list.name)}.{note}",
    )


# Why an import could not use a row, by RowProblem.kind (duplicate and invalid_username carry their detail).
ROW_PROBLEMS = {"missing": "no username or id in this row", "not_an_id": "not an X user id (digits only)",
                "unknown": "no such account on X", "protected": "protected in this server"}


def row_reason(problem: RowProblem) -> str:
    if problem.kind == "duplicate":
        return f"duplicate of line {problem.ref}"
    if problem.kind == "invalid_username":
        return f"invalid username: {problem.ref}"
    return ROW_PROBLEMS[problem.kind]


def import_report(mute_list: MuteList, report: ImportReport) -> tuple[discord.Embed, discord.File | None]:
    """/mutelist import's answer, and the file of every unusable row when there are more than the embed shows."""
    problems = report.problems
    summary = (f"{counted(report.rows, 'row')} read: **{report.added}** added to {code_span(mute_list.name)}, "
               f"{report.already} already on it, {len(problems)} not usable.")
    if report.queued_for:
        summary += f" Queued for {counted(report.queued_for, 'subscriber')}."
    lines = [f"line {p.line}: {code_span(p.text[:40])} — {row_reason(p)}" for p in problems]
    shown = "\n".join(lines[:15])
    attachment: discord.File | None = None
    if len(lines) > 15:
        shown += f"\n… {len(lines) - 15} more in the attached file."
        text = "\n".join(f"line {p.line}\t{p.text}\t{row_reason(p)}" for p in problems) + "\n"
        attachment = discord.File(io.BytesIO(text.encode()), filename="import-problems.txt")
    embed = discord.Embed(title="Import finished", colour=COLOUR_ERROR if problems and not report.added else COLOUR_OK,
                          description=summary)
    if shown:
        embed.add_field(name="Rows not used", value=shown[:1024], inline=False)
    return embed, attachment


def published_embed(result: Published) -> discord.Embed:
    """/mutelist publish's answer: what was added, what was there, what the server's protection left out."""
    text = (f"Added {counted(result.added, 'account', bold=True)} to {code_span(result.mute_list.name)}; "
            f"{result.already} {'was' if result.already == 1 else 'were'} already on it.")
    if result.left_out:
        one = result.left_out == 1
        text += (f" {counted(result.left_out, 'protected account')} {'was' if one else 'were'} left out: no list "
                 f"of this server may hold {'it' if one else 'them'}.")
    if result.queued_for:
        text += f" Queued for {counted(result.queued_for, 'subscriber')}."
    return discord.Embed(title="Your mutes published", colour=COLOUR_OK, description=text)


def protected_embed(user: XUser, removed: Sequence[tuple[str, int]]) -> discord.Embed:
    """/mutelist protect's answer: the lists it was taken off, and for how many subscribers it is unmuted."""
    text = (f"[@{user.username}]({user.url}) is protected: no list of this server may hold it, and captures "
            "leave it out.")
    for list_name, queued in removed:
        text += f"\nTaken off {code_span(list_name)}" + (
            f"; unmuting it for {counted(queued, 'subscriber')}." if queued else ".")
    return discord.Embed(title="Account protected", colour=COLOUR_OK, description=text[:4096])


def unprotected_embed(username: str) -> discord.Embed:
    return discord.Embed(title="Protection lifted", colour=COLOUR_INFO,
                         description=f"@{username} is no longer protected; lists of this server may hold it again.")


def modlog_stopped_embed(stopped: int | None) -> discord.Embed:
    """/mutelist modlog without a channel: `stopped` is the channel it announced in, if any."""
    text = (f"Changes to this server's lists are no longer announced in <#{stopped}>." if stopped else
            "Changes to this server's lists were not being announced anywhere; nothing changed.")
    return discord.Embed(title="Moderation log stopped", colour=COLOUR_INFO, description=text)


# The permissions bot/modlog.py checks (its NEEDED), by the names Discord shows in a channel's settings.
PERMISSION_NAMES = {"view_channel": "View Channel", "send_messages": "Send Messages"}


def modlog_set_embed(result: ModlogSet) -> discord.Embed:
    text = (f"Every change to this server's lists (create, delete, add, remove, import, capture, publish, "
            f"protect, unprotect) is announced in <#{result.channel_id}> from now on, naming who made it.")
    if result.missing:
        lacks = " and ".join(PERMISSION_NAMES[flag] for flag in result.missing)
        text += (f"\n**mutebot cannot post there yet**: it lacks {lacks} in that channel. "
                 "Give mutebot those permissions there (the channel's settings → Permissions); announcements "
                 "start as soon as it can. You will not be told again.")
    return discord.Embed(title="Moderation log set", colour=COLOUR_ERROR if result.missing else COLOUR_OK,
                         description=text)


def export_caption(mute_list: MuteList) -> str:
    return f"{code_span(mute_list.name)} as CSV (username, id, reason, added_by, added_at, evidence)."


def list_page_embed(result: EntriesPage) -> discord.Embed:
    """A page of /mutelist show."""
    lines = []
    for i, entry in enumerate(result.entries):
        who = f"[@{entry.username}](https://x.com/{entry.username})" if entry.username else f"id {entry.x_user_id}"
        reason = f" — {discord.utils.escape_markdown(entry.reason)}" if entry.reason else ""
        evidence = evidence_line(entry.evidence_url, entry.evidence_sources)
        lines.append(f"{result.first_number + i}. {who}{reason}" + (f" · {evidence}" if evidence else ""))
    description = "\n".join(lines) if lines else "This list is empty."
    if result.mute_list.description:
        description = f"*{discord.utils.escape_markdown(result.mute_list.description)}*\n\n{description}"
    embed = discord.Embed(title=f"Mute list: {result.mute_list.name}"[:256], colour=COLOUR_OK,
                          description=description[:4096])
    embed.set_footer(text=f"Page {result.page + 1} of {result.pages} · {counted(result.total, 'account')}")
    return embed


def all_lists_embed(summaries: Sequence[ListSummary]) -> discord.Embed:
    lines = []
    for s in summaries:
        line = (f"{code_span(s.mute_list.name)} — {counted(s.entries, 'account')}, "
                f"{counted(s.subscribers, 'subscriber')}")
        if s.mute_list.description:
            line += f"\n  {discord.utils.escape_markdown(s.mute_list.description)}"
        lines.append(line)
    return discord.Embed(
        title="Mute lists in this server", colour=COLOUR_OK,
        description=("\n".join(lines) or "No lists yet. Moderators create them with `/mutelist create`.")[:4096],
    )


def progress_placeholder(title: str) -> str:
    """The first progress DM of a job, before the queue reports on it."""
    return f"**{title}**\nGetting ready…"


def applied_text(mute_list: MuteList, applied: Applied) -> str:
    return (f"Applying {code_span(mute_list.name)}: **{applied.to_send}** to mute, {applied.already_muted} "
            f"already muted.")


def subscribed_text(mute_list: MuteList, applied: Applied, new: bool) -> str:
    return ("Subscribed to " if new else "You were already subscribed to ") + (
        f"{code_span(mute_list.name)}: **{applied.to_send}** to mute now, {applied.already_muted} already muted. "
        "Accounts added later are muted for you too; removals unmute where this list was the only reason."
    )


def unsubscribed_text(mute_list: MuteList, result: Unsubscribed, undo: bool) -> str:
    text = ("Unsubscribed from " if result.was_subscribed else "You were not subscribed to ") + (
        f"{code_span(mute_list.name)}.")
    if result.cancelled:
        text += f" {counted(result.cancelled, 'queued mute')} cancelled."
    if undo:
        text += f" Unmuting {counted(result.to_unmute, 'account', bold=True)} this list alone had muted."
    return text


def job_started_embed(text: str, *, in_dms: bool) -> discord.Embed:
    """The answer to a command that started a job: what it does, and where its progress shows."""
    where = "Progress is in your DMs." if in_dms else "Your DMs are closed, so progress shows here."
    return discord.Embed(description=f"{text}\n{where}", colour=COLOUR_OK)


# -- /mutelist capture -------------------------------------------------------------------------------------------

SOURCE_WORDS = {
    "author": ("author", "author"), "replied": ("replier", "repliers"), "quoted": ("quoter", "quoters"),
    "reposted": ("reposter", "reposters"), "liked": ("liker", "likers"),
}
# Why a preview left an account out, by the key CapturePreview.excluded counts it under.
EXCLUDED_WORDS = {"own": "your own X account", "members": "linked by members of this server",
                  "protected": "protected in this server"}
SAMPLE = 10  # accounts a preview names


def preview_embed(preview: CapturePreview) -> discord.Embed:
    """How many from each source, how many already on the list or excluded and why, a sample, the X reads."""
    author = f" by @{preview.author.username}" if preview.author else ""
    lines = [f"Post{author}: {preview.post_url}",
             f"{counted(preview.total, 'different account')} took part"
             + (" (an account in several sources counted once):" if preview.per_source else ".")]
    for source, count in preview.per_source.items():
        singular, plural = SOURCE_WORDS[source]
        lines.append(f"- {counted(count, singular, plural)}")
    lines.append(f"Already on {code_span(preview.mute_list.name)}: {preview.already}.")
    if preview.excluded:
        lines.append("Left out: " + "; ".join(f"{n} {EXCLUDED_WORDS[why]}" for why, n in preview.excluded.items())
                     + ".")
    notes = []
    if preview.stopped_in is not None:
        notes.append(f"A capture reads at most 1,000 accounts: it stopped there while reading the "
                     f"{SOURCE_WORDS[preview.stopped_in][1]}, so some of them were not read.")
    if preview.likes_need_link:
        notes.append("Likers were not read: your X link predates mutebot asking X to see likes. A fresh `/link` "
                     "adds likers; the other sources were captured meanwhile.")
    for source, reset_at in preview.limited.items():
        notes.append(f"X's limit for reading {SOURCE_WORDS[source][1]} is used up until <t:{int(reset_at) + 1}:R>; "
                     + ("the rest of them were not read." if source in preview.per_source else "they were not read."))
    if preview.old_post:
        notes.append("The post is more than 7 days old: X's recent search only finds replies from the last 7 days.")
    notes.append(f"X reads: {preview.x_reads}.")
    embed = discord.Embed(title=f"Capture preview: {counted(len(preview.to_add), 'account')} to add",
                          colour=COLOUR_OK if preview.to_add else COLOUR_INFO, description="\n".join(lines)[:4096])
    if preview.to_add:
        sample = ", ".join(code_span("@" + a.username) for a in preview.to_add[:SAMPLE])
        more = len(preview.to_add) - SAMPLE
        embed.add_field(name="Sample", value=(sample + (f" and {more} more" if more > 0 else ""))[:1024],
                        inline=False)
    embed.add_field(name="Notes", value="\n".join(notes)[:1024], inline=False)
    embed.set_footer(text="Nothing changes until you press Add. This preview lasts 15 minutes.")
    return embed


def capture_added_embed(result: CaptureAdded) -> discord.Embed:
    text = (f"Added {counted(result.added, 'account', bold=True)} to {code_span(result.mute_list.name)} from "
            f"{result.post_url}; {result.already} {'was' if result.already == 1 else 'were'} already on it.")
    if result.excluded:
        text += f" {counted(result.excluded, 'account')} protected since the preview left out."
    if result.queued_for:
        text += f" Queued for {counted(result.queued_for, 'subscriber')}."
    return discord.Embed(title="Capture added", colour=COLOUR_OK, description=text)


def capture_cancelled_embed() -> discord.Embed:
    return discord.Embed(title="Capture cancelled", colour=COLOUR_INFO, description="Nothing was added.")


def modlog_line(change: ListChange) -> str:
    """The moderation log's line for a change: who, what, how many, and on which list."""
    who = f"<@{change.actor}>"
    shown = code_span(change.list_name or "")
    account = code_span(f"@{change.username}") if change.username else "an account"
    kind = change.kind
    if kind == "create":
        return f"{who} created the list {shown} ({counted(0, 'account')})."
    if kind == "delete":
        return f"{who} deleted the list {shown}, which held {counted(change.count, 'account')}."
    if kind == "add":
        return f"{who} added {counted(change.count, 'account')} to {shown}: {account}."
    if kind == "update":
        return f"{who} changed the reason of {account} on {shown}."
    if kind == "remove":
        return f"{who} removed {counted(change.count, 'account')} from {shown}: {account}."
    if kind == "import":
        return (f"{who} imported {counted(change.count, 'account')} into {shown} ({change.already} already on it, "
                f"{counted(change.problems, 'row')} not usable).")
    if kind == "capture":
        return (f"{who} captured {counted(change.count, 'account')} into {shown} from the post "
                f"<{change.post_url}>.")
    if kind == "publish":  # `problems`: the mutes left out because the server protects them
        left_out = f", {counted(change.problems, 'protected account')} left out" if change.problems else ""
        return (f"{who} published {counted(change.count, 'account')} of their own X mutes to {shown} "
                f"({change.already} already on it{left_out}).")
    if kind == "protect":
        return (f"{who} protected {account}: no list of this server may hold it; taken off "
                f"{counted(change.count, 'list')}.")
    if kind == "unprotect":
        return f"{who} lifted the protection of {account}; lists of this server may hold it again."
    if kind == "modlog":
        return f"{who} made this channel the moderation log: every change to this server's mute lists shows here."
    return f"{who} stopped the moderation log: changes to this server's mute lists no longer show here."


def modlog_refused(channel_id: int, gone: bool) -> str:
    """The DM to the moderator whose change could not be announced (sent once, until a post works again)."""
    why = ("that channel no longer exists. Pick another channel" if gone else
           "mutebot is not allowed to post there (it needs View Channel and Send Messages in that channel). Give "
           "mutebot those permissions there, or pick another channel")
    return (f"Your change to the server's mute lists was made, but it could not be announced in the moderation "
            f"log <#{channel_id}>: {why} with `/mutelist modlog channel:`; `/mutelist modlog` without a channel "
            "stops announcing. You will not be told again until announcing works.")


# -- /link, /unlink and /status -----------------------------------------------------------------------------

LINK_HERE = "Your DMs are closed, so here is your link:"


def link_view(url: str) -> discord.ui.View:
    """The button that opens the link (our start page, then X's authorization page)."""
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label="Authorize mutebot on X", url=url, emoji="🔗"))
    return view


def link_embed(expires_at: float, linked_as: str | None, *, here: bool = False) -> discord.Embed:
    """/link's message: what the button does, until when, and whose account it replaces (`linked_as`, the X
    username linked now); `here` when it is the reply itself because the member's DMs are closed."""
    embed = discord.Embed(
        title="Link your X account",
        colour=COLOUR_OK,
        description=(
            "Open X's authorization page and approve mutebot; it can then mute and unmute accounts for "
            f"your X account only. Finish in the browser the button opens. The link works once and expires "
            f"<t:{int(expires_at)}:R>. Keep it to yourself: whoever opens it first links their X account to your "
            "Discord account."
        ),
    )
    if linked_as is not None:
        embed.description = (f"{embed.description}\nYou are linked as **@{linked_as}** now; approving "
                             "replaces that link with the account you approve.")
    if here:
        embed.set_footer(text="Your DMs are closed, so the link is here; only you can see it.")
    return embed


def link_sent_text(expires_at: float) -> str:
    return f"I sent you a DM with your link to X. It expires <t:{int(expires_at)}:R>."


def nothing_to_unlink_embed() -> discord.Embed:
    return discord.Embed(title="No X account linked", colour=COLOUR_INFO,
                         description="You have no linked X account, so there is nothing to unlink.")


def unlinked_embed(user: XUser, revocation: str) -> discord.Embed:
    return account_embed("X account unlinked", user, colour=COLOUR_INFO, note=unlinked_note(revocation))


def not_linked_status_embed() -> discord.Embed:
    return discord.Embed(
        title="No X account linked",
        colour=COLOUR_INFO,
        description="You are not linked yet. Run `/link` and approve mutebot on X to connect your account.",
    )


def status_embed(user: XUser, account: LinkedAccount, pending: int, paused_until: float) -> discord.Embed:
    """/status: the linked account, whether its link still works, and the member's queued actions (and, while
    X's usage cap pauses the queue, until when)."""
    note = f"Linked <t:{int(account.linked_at)}:R>."
    if account.unreadable:
        note += ("\n⚠️ mutebot can no longer read this link (its encryption key changed), so it needs "
                 "relinking: run `/link` again to reconnect.")
    elif account.needs_relink:
        note += "\n⚠️ X no longer accepts this link: run `/link` again to reconnect."
    note += f"\nPending queued actions: **{pending}**" if pending else "\nNo queued actions."
    if paused_until:
        note += ("\n⏸️ mutebot has reached its monthly usage cap at X; queued work resumes "
                 f"<t:{int(paused_until)}:R>.")
    return account_embed("Your linked X account", user, note=note)


def unlinked_note(revocation: str) -> str:
    """What /unlink did at X, as it happened (`revocation` as bot.accounts says it: "confirmed", "unconfirmed" or
    "not_asked")."""
    if revocation == "confirmed":
        note = "mutebot's access was revoked at X and its tokens deleted."
    elif revocation == "unconfirmed":
        note = ("mutebot forgot its tokens here, but X did not confirm the revoke; you can revoke mutebot "
                "yourself at x.com/settings/connected_apps.")
    else:  # X was never asked: nothing here can read the tokens any more
        note = ("mutebot forgot its tokens here, but could not ask X to revoke them: its encryption key changed, so "
                "it can no longer read them. You can revoke mutebot yourself at x.com/settings/connected_apps.")
    return f"{note} Your mutes on X stay as they are."


# -- the web server's pages (bot/web.py serves them; a link's refusals are LINK_REFUSALS in bot/errors.py) --------

PAGE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title} · mutebot</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#0f1419}}
h1{{font-size:1.4rem}}</style></head>
<body><h1>{title}</h1><p>{message}</p></body></html>
"""

# Our words for the errors the server itself answers (not a handler's), by HTTP status.
SERVER_ERROR_PAGES = {
    400: ("Bad request", "This request could not be understood."),
    404: ("Not found", "There is nothing here. To link your X account, run /link in Discord."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    413: ("Request too large", "This request is larger than mutebot accepts."),
    431: ("Request too large", "This request's headers are larger than mutebot accepts."),
}


def server_error_page(status: int) -> tuple[str, str]:
    """The title and text of the page for an HTTP error the server answers itself."""
    if status in SERVER_ERROR_PAGES:
        return SERVER_ERROR_PAGES[status]
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    return title, "mutebot could not answer this request."


def page_html(title: str, message: str) -> str:
    """A whole page: the title heads it, the message (plain text, escaped here) is its one paragraph."""
    return PAGE_HTML.format(title=html.escape(title), message=html.escape(message))


def incident_page(incident: str) -> tuple[str, str]:
    """The link page of a bug: the incident id the operator's log has."""
    return ("Linking failed",
            f"Something went wrong while linking (incident {incident}). Run /link again in Discord.")


def linked_page(linked: Linked) -> tuple[str, str]:
    """The title and text of the page a successful link ends on."""
    who = f"the Discord account {linked.member_name}" if linked.member_name else "your Discord account"
    message = f"Your X account @{linked.user.username} is now linked to {who}. You can return to Discord."
    if linked.member_name:  # a button's address forwarded before its owner opened it links whoever opens it
        message += (f" If {linked.member_name} is not you, someone passed you their link: revoke mutebot's access at "
                    "x.com/settings/connected_apps.")
    if linked.replaced is not None:
        message += f" It replaces @{linked.replaced.username}, which mutebot no longer acts for."
    if linked.revocation == "unconfirmed":
        message += (" X did not confirm revoking mutebot's previous access; you can revoke it yourself at "
                    "x.com/settings/connected_apps.")
    elif linked.revocation == "not_asked":
        message += (" mutebot could not ask X to revoke its previous access: its encryption key changed, so it can "
                    "no longer read it. You can revoke it yourself at x.com/settings/connected_apps.")
    return f"Linked @{linked.user.username}", message


def error_embed(message: str) -> discord.Embed:
    return discord.Embed(description=message[:4096], colour=COLOUR_ERROR)


async def send_ephemeral(
    interaction: discord.Interaction, content: str | None = None, *, embed: discord.Embed | None = None,
    view: discord.ui.View | None = None,
) -> None:
    """Answer or follow up, whichever the interaction's state allows."""
    missing = discord.utils.MISSING
    if interaction.response.is_done():
        await interaction.followup.send(
            content or missing, embed=embed or missing, view=view or missing, ephemeral=True
        )
    else:
        await interaction.response.send_message(
            content, embed=embed or missing, view=view or missing, ephemeral=True
        )


def is_expected(error: BaseException) -> bool:
    return isinstance(error, MutebotError | InvalidUsername | XError)


OUTCOME_REFUSED = "refused"  # an expected failure: the member is told why
OUTCOME_ERROR = "error"  # a bug: the member gets an apology and an incident id
OUTCOME_EXPIRED = "expired"  # Discord no longer takes an answer to the interaction: nobody can be told
UNKNOWN_INTERACTION = 10062  # Discord's code for an interaction past its deadline (3 s; a followup's 15 min)


async def report_error(interaction: discord.Interaction, error: BaseException) -> str:
    """The one place that decides what a member sees when something fails; returns which kind of failure it
    was (OUTCOME_REFUSED, OUTCOME_ERROR or OUTCOME_EXPIRED)."""
    outcome = OUTCOME_REFUSED
    if isinstance(error, app_commands.CommandInvokeError | app_commands.TransformerError):
        error = error.__cause__ or error
    if isinstance(error, discord.app_commands.errors.CommandInvokeError):
        error = error.original
    if isinstance(error, discord.NotFound) and error.code == UNKNOWN_INTERACTION:
        # Not a bug of ours and no use apologising: Discord would refuse that message too.
        log.warning("%s came too late to answer: Discord no longer takes an answer to that interaction",
                    _where(interaction))
        return OUTCOME_EXPIRED
    if is_expected(error):
        message = describe(error)
    elif isinstance(error, app_commands.MissingPermissions | app_commands.CheckFailure) and not isinstance(
        error, app_commands.NoPrivateMessage
    ):
        message = describe(NotModerator()) if isinstance(error, app_commands.MissingPermissions) else (
            "You cannot use this command here."
        )
    elif isinstance(error, app_commands.NoPrivateMessage):
        message = describe(GuildOnly())
    elif isinstance(error, app_commands.CommandOnCooldown):
        message = f"Slow down a little: try again in {error.retry_after:.0f} s."
    else:
        outcome = OUTCOME_ERROR
        incident = secrets.token_hex(4)
        log.error("incident %s in %s", incident, _where(interaction), exc_info=error)
        message = (f"Sorry, something went wrong on our side. Nothing you did caused it. "
                   f"(incident {code_span(incident)})")
    try:
        await send_ephemeral(interaction, embed=error_embed(message))
    except discord.HTTPException as exc:
        log.warning("could not deliver an error message (%s)", exc.status)
    return outcome


def _where(interaction: discord.Interaction) -> str:
    if interaction.command is not None:
        return f"/{interaction.command.qualified_name}"
    data = interaction.data
    return str(data.get("custom_id", "interaction")) if data else "interaction"


# -- pages of a list (bot/paginator.py) --------------------------------------------------------------------

NOT_YOUR_BUTTONS = "These buttons are not yours; run the command yourself to browse."
JUMP_TITLE = "Go to page"


def not_a_page(typed: str, pages: int) -> str:
    return f"{code_span(typed[:20])} is not a page number between 1 and {pages}."

