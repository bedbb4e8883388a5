"""`mutebot demo`: the whole member and moderator journey against the bundled X emulator and Discord stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Attachment, Member, Message, Reply

WINDOW_SECONDS = 3.0  # X's 15-minute rate window, compressed so the queue's progress is visible in seconds
LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)]+)\)")
TIMESTAMP = re.compile(r"<t:(\d+):R>")
CODE_SPAN = re.compile(r"(`[^`]+`)")
ESCAPE = re.compile(r"\\([\\`*_~|>#\[\]()<:-])")  # markdown escapes outside code spans, as Discord drops them


class StepFailed(Exception):
    """A demo step did not behave as expected."""


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise StepFailed(what)


def as_discord_shows(text: str) -> str:
    """What Discord shows for `text`, in a terminal: code spans as they are (Discord shows their contents
    literally, backslashes included), and outside them links, relative times, bold and escapes as Discord renders
    them, with nothing else smoothed over, so a wrong escape shows here as it would in Discord."""
    return "".join(part if CODE_SPAN.fullmatch(part) else _rendered(part) for part in CODE_SPAN.split(text))


def _rendered(text: str) -> str:
    def relative(match: re.Match[str]) -> str:
        delta = int(match.group(1)) - time.time()
        return f"in {delta:.0f} s" if delta >= 0 else f"{-delta:.0f} s ago"

    text = LINK.sub(lambda m: f"{m.group(1)} <{m.group(2)}>", text)
    text = TIMESTAMP.sub(relative, text).replace("**", "")
    return ESCAPE.sub(r"\1", text)


class Printer:
    def __init__(self) -> None:
        self.out = sys.stdout

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def step(self, number: int, title: str) -> None:
        self.line()
        self.line(f"── {number}. {title} " + "─" * max(0, 72 - len(title)))

    def command(self, member: Member, text: str) -> None:
        self.line(f"  {member.username} › {text}")

    def message(self, who: str, text: str, embeds: list[dict[str, Any]], buttons: list[dict[str, Any]],
                *, ephemeral: bool = False, attachments: list[str] | None = None) -> None:
        tag = " (only you can see this)" if ephemeral else ""
        self.line(f"  {who}{tag}:")
        if text:
            for row in as_discord_shows(text).splitlines():
                self.line(f"    {row}")
        for embed in embeds:
            if embed.get("title"):
                self.line(f"    ┃ {as_discord_shows(str(embed['title']))}")
            for row in as_discord_shows(str(embed.get("description", ""))).splitlines():
                self.line(f"    ┃ {row}")
            for field in embed.get("fields", []):
                for index, row in enumerate(as_discord_shows(str(field["value"])).splitlines()):
                    self.line(f"    ┃ {field['name'] + ': ' if index == 0 else '  '}{row}")
            if embed.get("footer", {}).get("text"):
                self.line(f"    ┃ — {embed['footer']['text']}")
        if buttons:
            shown = []
            for button in buttons:
                label = str(button.get("label") or "")
                if button.get("url"):
                    label += " ↗"
                shown.append(f"[{label}]" if not button.get("disabled") else f"({label})")
            self.line("    " + " ".join(shown))
        for name in attachments or []:
            self.line(f"    📎 {name}")

    def reply(self, reply: Reply, who: str = "mutebot") -> None:
        self.message(who, reply.text, reply.embeds, reply.buttons, ephemeral=reply.ephemeral,
                     attachments=[a.filename for a in reply.attachments])

    def dm(self, message: Message) -> None:
        self.message("mutebot (DM)", message.text, message.embeds, message.buttons,
                     attachments=[a.filename for a in message.attachments])


class Demo:
    def __init__(self, sandbox: Sandbox, printer: Printer) -> None:
        self.s = sandbox
        self.p = printer

    async def slash(self, member: Member, command: str, **options: object) -> Reply:
        shown = " ".join(f"{k}:{v.filename if isinstance(v, Attachment) else v}" for k, v in options.items())
        self.p.command(member, f"/{command} {shown}".rstrip())
        reply = await member.slash(command, **options)
        self.p.reply(reply)
        return reply

    async def click(self, member: Member, reply: Reply, label: str) -> Reply:
        self.p.command(member, f"presses [{label}]")
        after = await reply.click(label)
        self.p.reply(after)
        return after

    async def link(self, member: Member, x_username: str) -> None:
        await self.slash(member, "link")
        dm = (await member.dms())[-1]
        self.p.dm(dm)
        url = self.s.link_url(dm)
        page = await self.s.http.get(url, follow_redirects=True)  # our start page sets its cookie, then on to X
        expect(page.status_code == 200 and "user1" in page.text, "X's authorization page did not list the accounts")
        expect(bool(page.history) and "set-cookie" in page.history[0].headers,
               "the link's start page did not bind the link to this browser")
        self.p.line(f"  browser › opens the button: mutebot's page ties the link to this browser and sends it on to "
                    f"X, whose authorization page offers {len(self.s.x.users)} accounts; {member.username} approves "
                    f"as @{x_username}")
        done = await self.s.authorize(url, x_username)
        expect(done.status_code == 200, f"the callback answered {done.status_code}")
        title, said = re.search(r"<h1>(.*?)</h1>", done.text), re.search(r"<p>(.*?)</p>", done.text)
        self.p.line(f"  browser › {done.url.path} answers {done.status_code}: {title.group(1) if title else ''}")
        if said:
            self.p.line(f"    {html.unescape(said.group(1))}")
        confirmation = await member.wait_for_dm(lambda m: bool(m.embeds) and "linked" in str(m.embeds[0]))
        self.p.dm(confirmation)

    async def watch_progress(self, member: Member, done: Callable[[], bool], timeout: float = 40) -> None:
        """Print the member's progress DM each time the bot edits it, until `done()`."""
        seen = {message.id: str(message.embeds) + message.text for message in await member.dms()}
        deadline = time.monotonic() + timeout
        finished_at: float | None = None
        while True:
            for message in await member.dms():
                state = str(message.embeds) + message.text
                if seen.get(message.id) != state:
                    self.p.dm(message)
                    seen[message.id] = state
            if finished_at is None and done():
                finished_at = time.monotonic()
            if finished_at is not None and time.monotonic() - finished_at > 0.6:
                return  # a little longer, for the final edit and the summary
            if time.monotonic() > deadline:
                raise StepFailed("the queue did not finish in time")
            await asyncio.sleep(0.25)


async def journey(demo: Demo) -> None:
    s, p = demo.s, demo.p
    alice, mod, bob = s.member("alice"), s.member("mod", moderator=True), s.member("bob")
    x = s.x
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = []

    async def link_alice() -> None:
        await demo.slash(alice, "status")
        await demo.link(alice, "user1")
        reply = await demo.slash(alice, "status")
        expect("@user1" in str(reply.embeds), "/status does not show @user1")

    async def mute_alice() -> None:
        reply = await demo.slash(alice, "mute", username="@user2")
        expect(x.user("user2").id in x.mutes_of("user1"), "user2 is not muted at X")
        reply = await demo.slash(alice, "mute", username="https://x.com/user3")
        expect(x.user("user3").id in x.mutes_of("user1"), "user3 is not muted at X")
        reply = await demo.slash(alice, "unmute", username="user2")
        expect(x.user("user2").id not in x.mutes_of("user1"), "user2 is still muted at X")
        reply = await demo.slash(alice, "mute", username="not a name!")
        expect("not a valid X username" in str(reply.embeds), "bad input was not explained")

    async def browse() -> None:
        x.seed_mutes("user1", [f"user{i}" for i in range(30, 50)] + [f"spammer{i}" for i in range(1, 21)])
        p.line("  (meanwhile alice mutes 40 more accounts in X's own app)")
        reply = await demo.slash(alice, "mutes")
        reply = await demo.click(alice, reply, "Refresh")
        reply = await demo.click(alice, reply, "Next")
        reply = await demo.click(alice, reply, "Last")
        expect("41 muted accounts" in str(reply.embeds), "/mutes does not count 41 accounts")

    async def moderator() -> None:
        await demo.link(mod, "user10")
        await demo.slash(mod, "mutelist create", name="spam", description="Known spam accounts")
        rows = ["username"] + [f"spammer{i}" for i in range(1, 61)] + ["@spammer5", "not valid!", "nobody_known"]
        for i in range(1, 61):
            with contextlib.suppress(ValueError):
                x.add_user(f"spammer{i}")
        csv = ("\n".join(rows) + "\n").encode()
        await demo.slash(mod, "mutelist import", name="spam", file=Attachment("spam.csv", csv, "text/csv"))
        x.seed_mutes("user10", ["user44", "user45"])
        await demo.slash(mod, "mutelist publish", name="spam")
        reply = await demo.slash(mod, "mutelist show", name="spam")
        expect("62" in str(reply.embeds), "the list does not hold 62 entries")
        await demo.slash(mod, "mutelist all")

    async def subscriber() -> None:
        await demo.link(bob, "user20")
        p.line(f"  (X's rate window is compressed to {WINDOW_SECONDS:g} s here; on X it is 15 minutes)")
        await demo.slash(bob, "mutelist subscribe", name="spam")
        await demo.watch_progress(bob, lambda: len(x.mutes_of("user20")) >= 62)
        await demo.slash(bob, "status")

    async def addition() -> None:
        await demo.slash(mod, "mutelist add", name="spam", username="user46", reason="impersonation")
        p.line("  … the bot queues it for every subscriber")
        deadline = time.monotonic() + 15
        while x.user("user46").id not in x.mutes_of("user20"):
            if time.monotonic() > deadline:
                raise StepFailed("bob's X account did not mute user46")
            await asyncio.sleep(0.2)
        p.line("  X › @user20 (bob) now mutes @user46")
        await demo.slash(mod, "mutelist export", name="spam")

    async def capture() -> None:
        trolls = [f"troll{i}" for i in range(1, 11)]
        post = x.seed_post("loudmouth", repliers=trolls[:6], quoters=trolls[3:7], reposters=trolls[7:9],
                           likers=[trolls[0], trolls[9], "user20"])
        p.line("  (meanwhile on X, a pile-on: @loudmouth's post draws replies, quotes, reposts and likes, one of "
               "them from @user20, bob's own account)")
        reply = await demo.slash(mod, "mutelist capture", name="spam",
                                 post=f"https://x.com/loudmouth/status/{post.id}", reason="pile-on")
        expect("Capture preview: 11 accounts to add" in str(reply.embeds), "the preview does not offer 11 accounts")
        expect("1 linked by members of this server" in str(reply.embeds), "bob's own account was not left out")
        reply = await demo.click(mod, reply, "Add")
        expect("Capture added" in str(reply.embeds), "the capture was not added")

    async def unlink() -> None:
        await demo.slash(alice, "unlink")
        reply = await demo.slash(alice, "status")
        expect("not linked" in str(reply.embeds), "alice still looks linked")

    steps = [
        ("A member links her X account", link_alice),
        ("She mutes by username and by profile link, and unmutes", mute_alice),
        ("She browses /mutes page by page", browse),
        ("A moderator builds a shared list: create, import a CSV, publish their own mutes", moderator),
        ("A second member subscribes and watches the queue work through X's rate limit", subscriber),
        ("The moderator adds an entry; the subscriber receives it", addition),
        ("A pile-on on X: the moderator captures who took part, previews it, and adds it", capture),
        ("The first member unlinks", unlink),
    ]
    for number, (title, step) in enumerate(steps, start=1):
        p.step(number, title)
        try:
            await step()
        except StepFailed as exc:
            raise StepFailed(f"step {number} ({title}): {exc}") from None
        except Exception as exc:
            raise StepFailed(f"step {number} ({title}): {type(exc).__name__}: {exc}") from exc


def keep_running_hint(sandbox: Sandbox) -> list[str]:
    """What to try by hand: commands that work as printed, with a real token of a seeded X account."""
    x = sandbox.x
    token = x.issue_token("user1")
    me, target = x.user("user1").id, x.user("user5").id
    auth = f"-H 'Authorization: Bearer {token['access_token']}'"
    hours = int(token["expires_in"]) // 3600
    return [
        f"Still running (Ctrl+C to stop). Try it by hand, as @user1 of the X emulator (the token works for {hours} h):",
        f"  curl -s {auth} {x.base_url}/2/users/me",
        f"  curl -s -X POST {auth} -H 'Content-Type: application/json' -d '{{\"target_user_id\": \"{target}\"}}' "
        f"{x.base_url}/2/users/{me}/muting",
        f"  curl -s {sandbox.public_base_url}/healthz",
    ]


async def _run(keep_running: bool) -> int:
    printer = Printer()
    started = time.monotonic()
    printer.line("mutebot demo: the X API emulator, a Discord stand-in and the real bot, all on this machine.")
    async with Sandbox(window_seconds=WINDOW_SECONDS) as sandbox:
        printer.line(f"  X emulator      {sandbox.x.base_url}")
        printer.line(f"  Discord stand-in {sandbox.discord.api_base}")
        printer.line(f"  bot web server  {sandbox.public_base_url}")
        try:
            await journey(Demo(sandbox, printer))
        except StepFailed as exc:
            printer.line()
            printer.line(f"✗ demo failed at {exc}")
            return 1
        printer.line()
        printer.line(f"✓ every step behaved as expected ({time.monotonic() - started:.1f} s)")
        if keep_running:
            for line in keep_running_hint(sandbox):
                printer.line(line)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            printer.line("stopped")
    return 0


def run_demo(*, keep_running: bool = False) -> int:
    logging.basicConfig(level=logging.ERROR, format="  [log] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("discord").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(_run(keep_running))
    except KeyboardInterrupt:
        return 0
