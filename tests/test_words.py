"""The words members see, as Discord receives them: names in code spans as typed, counts in proper plurals."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bot.mutelists import Published
from bot.replies import code_span, counted, published_embed
from bot.sandbox.harness import Sandbox
from bot.sandbox.members import Attachment, Member
from bot.store.lists import MuteList

ROOT = Path(__file__).resolve().parents[1]
# Every module: members read errors and replies, operators read the log lines and messages of all the others.
EVERY_MODULE = sorted((ROOT / "bot").rglob("*.py")) + sorted((ROOT / "cogs").glob("*.py"))
# Words that are not ours: the stand-in answers as Discord does, word for word (its error code 50033).
NOT_OURS = {"Invalid Recipient(s)"}


def test_code_span_shows_a_name_as_it_is_and_cannot_be_broken_out_of() -> None:
    assert code_span("spam_bots_2") == "`spam_bots_2`"
    assert code_span("*not bold* \\_ ~~x~~") == "`*not bold* \\_ ~~x~~`"  # nothing escaped: shown literally
    assert code_span("a`b``c") == "`a\u02cbb\u02cb\u02cbc`"  # a backtick would end the span
    assert code_span("two\nlines") == "`two lines`"
    assert code_span("") == "` `"


def test_counted_says_one_thing_or_several() -> None:
    assert counted(1, "row") == "1 row"
    assert counted(0, "row") == "0 rows"
    assert counted(2, "entry", "entries") == "2 entries"
    assert counted(3, "account", bold=True) == "**3** accounts"


def test_a_publish_says_how_many_protected_accounts_it_left_out() -> None:
    spam = MuteList(1, 2, "spam_2", "", 3, 0.0)
    assert published_embed(Published(spam, 0, 2, 0, 2)).description == (
        "Added **0** accounts to `spam_2`; 2 were already on it. 2 protected accounts were left out: no list of "
        "this server may hold them.")
    assert published_embed(Published(spam, 1, 1, 3, 0)).description == (
        "Added **1** account to `spam_2`; 1 was already on it. Queued for 3 subscribers.")


def _strings(path: Path) -> list[tuple[int, str]]:
    """Every string literal and f-string piece in a module, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
    return found


@pytest.mark.parametrize("path", EVERY_MODULE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_plural_is_written_as_s_in_parentheses(path: Path) -> None:
    offending = [(line, text) for line, text in _strings(path) if "(s)" in text and text not in NOT_OURS]
    assert offending == [], f"{path.name}: use bot.replies.counted() (bot/text.py) instead of '(s)'"


@pytest.mark.parametrize("path", EVERY_MODULE, ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_is_escaped_inside_a_code_span(path: Path) -> None:
    # Discord shows a backslash inside backticks literally: "`spam\_bots`". Code spans go through code_span().
    assert not re.search(r"`\{[^}`]*escape_markdown", path.read_text()), path


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "bot").glob("*.py")) + sorted((ROOT / "cogs").glob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_code_span_is_written_by_hand(path: Path) -> None:
    # f"`{name}`" breaks when the name holds a backtick; code_span() cannot be broken out of.
    spans = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.JoinedStr):
            for before, value in zip(node.values, node.values[1:], strict=False):
                if (isinstance(before, ast.Constant) and str(before.value).endswith("`")
                        and isinstance(value, ast.FormattedValue)):
                    spans.append((node.lineno, ast.unparse(node)))
    assert spans == [], f"{path.name}: use bot.replies.code_span() for a value in backticks"


# Modules that write no sentence of their own: their words live in bot/errors.py and bot/replies.py (CONTRIBUTING).
WORDLESS = [ROOT / "cogs" / name for name in ("muting.py", "mutelists.py", "linking.py")] + [
    ROOT / "bot" / name for name in ("mutelists.py", "capture.py", "capture_view.py", "mutes.py", "durations.py",
                                     "usernames.py", "timers.py", "modlog.py", "queue.py", "accounts.py", "web.py",
                                     "paginator.py")]
TWO_WORDS = re.compile(r"[A-Za-z]{2,}[\s,;:]+[A-Za-z]{2,}")
# Strings that are not sentences for members: what Discord shows in its command menus, which stays beside its
# command (app_commands' command, describe, Group, choices), and the operator's log lines.
COMMAND_TEXT = {"command", "describe", "Group", "Choice", "choices", "rename"}
LOG_LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
# Keyword arguments whose text only the operator reads: a queued action's outcome when it is cancelled.
OPERATOR_KEYWORDS = {"outcome"}
# The few strings of those modules that look like words and are none for people, each with why.
NOT_SENTENCES = {
    "bot/accounts.py": {
        "tweet.read users.read like.read mute.read mute.write offline.access",  # OAuth 2.0 scopes, as X names them
        "link cookie",  # what the link cookie's signing key is derived for: a new label would be a new key
        "X refused to refresh the token (", "X's token endpoint did not answer",  # XUnavailable's text, logged only
    },
    "bot/web.py": {"the response was already being sent"},  # a ConnectionError aiohttp logs, never a page
}


def _sentences(path: Path) -> list[tuple[int, str]]:
    """The string literals (f-string pieces too) of a module that read like words, outside docstrings, command
    text, log lines and operator keywords."""
    tree = ast.parse(path.read_text())
    exempt: set[int] = set()

    def exempt_all(node: ast.AST) -> None:
        exempt.update(id(sub) for sub in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # docstrings
            exempt_all(node)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            logging = (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                       and func.value.id in ("log", "logger", "logging") and name in LOG_LEVELS)
            if name in COMMAND_TEXT or logging:
                exempt_all(node)
            for keyword in node.keywords:
                if keyword.arg in OPERATOR_KEYWORDS:
                    exempt_all(keyword.value)
    allowed = NOT_SENTENCES.get(path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else "", set())
    return sorted((node.lineno, node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in exempt
                  and TWO_WORDS.search(node.value) and node.value not in allowed)


@pytest.mark.parametrize("path", WORDLESS, ids=lambda p: str(p.relative_to(ROOT)))
def test_cogs_and_services_write_no_sentences(path: Path) -> None:
    assert _sentences(path) == [], (f"{path.relative_to(ROOT)}: words for people go in bot/replies.py (a render "
                                    "helper) or bot/errors.py (a MutebotError carrying its sentence)")


def test_every_string_let_through_is_still_there() -> None:
    # An entry whose string is gone would let the same words back in unseen: the list only shrinks.
    for module, strings in NOT_SENTENCES.items():
        present = {text for _, text in _strings(ROOT / module)}
        assert strings <= present, (module, strings - present)


def test_the_sentence_scan_finds_sentences_and_nothing_else(tmp_path: Path) -> None:
    module = tmp_path / "cog.py"
    module.write_text('''"""A module's docstring, which is no sentence for members."""
import logging
log = logging.getLogger(__name__)


@app_commands.command(name="mute", description="Mute an X account for your own X account")
@app_commands.describe(username="@name, name or a profile link")
async def mute(interaction, username):
    """What the command does."""
    log.info("muted %s for %s", username, interaction.user.id)
    queue.cancel(batch, outcome="you muted it again")
    await send(embed=Embed(title="Muted on X", description=f"{code_span(username)} is muted now."))
    raise MutebotError(
        "That is your own X account; "
        f"X does not let you mute @{username}."
    )
''')
    assert _sentences(module) == [(12, " is muted now."), (12, "Muted on X"),
                                  (14, "That is your own X account; X does not let you mute @")]


async def test_a_list_name_reaches_discord_without_backslashes(sandbox: Sandbox, mod: Member) -> None:
    reply = await mod.slash("mutelist create", name="spam_bots_2")
    description = reply.embeds[0]["description"]
    assert description.startswith("`spam_bots_2` is ready."), description
    assert "\\" not in description
    everything = await mod.slash("mutelist all")
    assert "`spam_bots_2` — 0 accounts, 0 subscribers" in everything.embeds[0]["description"]


async def test_the_import_report_shows_rows_as_they_were_written(sandbox: Sandbox, mod: Member) -> None:
    await sandbox.link(mod, "user1")
    await mod.slash("mutelist create", name="spam")
    rows = "username\nuser2\nnobody_known_x\nbad `name`\n*stars*\n"
    reply = await mod.slash("mutelist import", name="spam", file=Attachment("spam.csv", rows.encode()))
    embed = reply.embeds[0]
    assert embed["description"].startswith("4 rows read: **1** added to `spam`, 0 already on it, 3 not usable.")
    problems = embed["fields"][0]["value"]
    assert "line 3: `nobody_known_x` — " in problems
    assert "line 4: `bad \u02cbname\u02cb` — " in problems  # the row's backticks cannot end the span early
    assert "line 5: `*stars*` — " in problems
    assert "\\" not in problems
    one = await mod.slash("mutelist import", name="spam", file=Attachment("one.txt", b"user3\n"))
    assert one.embeds[0]["description"].startswith("1 row read: **1** added to `spam`")


async def test_a_mistyped_username_is_quoted_as_typed(sandbox: Sandbox, alice: Member) -> None:
    await sandbox.link(alice, "user1")
    reply = await alice.slash("mute", username="not_a*name!")
    assert reply.embeds[0]["description"].startswith("`not_a*name!` is not a valid X username"), reply.embeds


async def test_unmuting_an_account_mutebot_never_saw_muted_says_so(sandbox: Sandbox, alice: Member) -> None:
    await sandbox.link(alice, "user1")
    reply = await alice.slash("unmute", username="user7")
    assert reply.embeds[0]["title"] == "Not muted on X"
    assert "does not mute it now" in reply.embeds[0]["description"]
    assert "footer" not in reply.embeds[0]  # no "X user id 1000000007" for members to puzzle over
    muted = await alice.slash("mute", username="user7")
    assert muted.embeds[0]["title"] == "Muted on X" and "footer" not in muted.embeds[0]
    assert (await alice.slash("unmute", username="user7")).embeds[0]["title"] == "Unmuted on X"


async def test_link_while_linked_names_the_linked_account(sandbox: Sandbox, alice: Member) -> None:
    await sandbox.link(alice, "user1")
    await alice.slash("link")
    dm = (await alice.dms())[-1]
    assert "You are linked as **@user1** now" in dm.embeds[0]["description"]
    first = await sandbox.member("bob").slash("link")
    assert "linked as" not in str(first.embeds) + str(await sandbox.member("bob").dms())


async def test_unsubscribing_from_a_list_one_never_subscribed_to_says_subscribe(
    sandbox: Sandbox, mod: Member, alice: Member
) -> None:
    await mod.slash("mutelist create", name="spam")
    reply = await alice.slash("mutelist unsubscribe", name="spam")
    assert reply.embeds[0]["description"] == "You were not subscribed to `spam`."


def test_every_moderator_command_says_so_in_its_description(sandbox: Sandbox) -> None:
    assert sandbox.bot is not None
    [group] = [c for c in sandbox.bot.tree.get_commands() if c.name == "mutelist"]
    descriptions = {c.name: c.description for c in group.walk_commands()}  # type: ignore[union-attr]
    for name in ("create", "delete", "add", "remove", "import", "publish"):
        assert descriptions[name].endswith("(moderators)"), (name, descriptions[name])
    for name in ("export", "show", "all", "apply", "subscribe", "unsubscribe"):
        assert "(moderators)" not in descriptions[name], name


async def test_a_list_name_with_a_backtick_is_quoted_whole(sandbox: Sandbox, mod: Member) -> None:
    # The name as typed goes through code_span: a raw backtick would end the span and show the rest as markdown.
    missing = await mod.slash("mutelist show", name="a`b *c*")
    assert missing.embeds[0]["description"] == (
        "This server has no mute list called `a\u02cbb *c*`. `/mutelist all` shows them.")
    await mod.slash("mutelist create", name="Spam_2")
    duplicate = await mod.slash("mutelist create", name="spam_2")
    assert duplicate.embeds[0]["description"] == "This server already has a list called `Spam_2` (names ignore case)."
    gone = await mod.slash("mutelist remove", name="Spam_2", username="user5")
    assert gone.embeds[0]["description"] == "@user5 is not on the list `Spam_2`."


async def test_a_jobs_progress_names_its_list_in_a_code_span(sandbox: Sandbox, mod: Member, alice: Member) -> None:
    await mod.slash("mutelist create", name="spam_bots_2")
    await sandbox.link(mod, "user1")
    await mod.slash("mutelist add", name="spam_bots_2", username="user5")
    await sandbox.link(alice, "user2")
    for command, options, title in (
        ("mutelist apply", {}, "Applying the list `spam_bots_2`"),
        ("mutelist subscribe", {}, "Subscribing to the list `spam_bots_2`"),
        ("mutelist unsubscribe", {"undo": True}, "Undoing the list `spam_bots_2`"),
    ):
        await alice.slash(command, name="spam_bots_2", **options)
        summary = await alice.wait_for_dm(
            lambda m, t=title: bool(m.embeds) and m.embeds[0]["title"] == f"Finished: {t}")
        assert "\\" not in summary.embeds[0]["title"]
        progress = [m for m in await alice.dms() if m.text.startswith(f"**{title}**\n")]
        assert len(progress) == 1, (title, [m.text for m in await alice.dms()])


async def test_mutes_says_when_x_refused_a_refresh(sandbox: Sandbox, alice: Member) -> None:
    await sandbox.link(alice, "user1")
    sandbox.x.seed_mutes("user1", ["user7"])
    reply = await alice.slash("mutes")
    for _ in range(14):  # X allows 15 reads of the mutes per window: the first /mutes and 14 refreshes
        reply = await reply.click("Refresh")
        assert "refresh is possible" not in reply.embeds[0]["description"]
    refused = await reply.click("Refresh")
    description = refused.embeds[0]["description"]
    assert re.fullmatch(r"1\. Sandbox User 7 \(\[@user7\]\(https://x\.com/user7\)\)\n\nX allows 15 list reads per 15 "
                        r"minutes; showing the list as of <t:\d+:R>\. A refresh is possible <t:\d+:R>\.",
                        description), description
    assert refused.embeds[0]["footer"]["text"] == "Page 1 of 1 · 1 muted account"
