"""How a job's progress reads: the bar, the sentences, and the Discord reporter that edits messages in place.

The queue (bot/queue.py) knows counts and machine-readable pause kinds; the words are all here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable

import discord

from bot.queue import JobProgress
from bot.replies import COLOUR_OK, code_span
from bot.store.queue import PAUSE_RELINK, PAUSE_USAGE_CAP

log = logging.getLogger(__name__)

INTERACTION_EDIT_WINDOW = 14.5 * 60  # Discord honours an interaction token for 15 minutes


def progress_bar(fraction: float, width: int = 10) -> str:
    """`[██████░░░░] 60%`"""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = math.floor(fraction * width + 1e-9)
    return f"[{'█' * filled}{'░' * (width - filled)}] {math.floor(fraction * 100 + 1e-9)}%"


def duration(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def pause_sentence(kind: str | None, until: float | None) -> str:
    if kind == PAUSE_USAGE_CAP:
        when = f"<t:{int(until)}:R>" if until else "later"
        return f"mutebot has reached its monthly usage cap at X; everything queued waits and is retried {when}."
    if kind == PAUSE_RELINK:
        return "X needs you to run `/link` again; the rest waits until then."
    return "waiting for X"


def render_progress(job: JobProgress) -> str:
    lines = [f"**{job.title}**", f"{code_span(progress_bar(job.fraction))} {job.finished}/{job.total}"]
    if job.status == "paused":
        lines.append(f"⏸️ Paused: {pause_sentence(job.pause_kind, job.pause_until)}")
    elif job.over:
        lines.append("Cancelled." if job.status == "cancelled" else "Finished.")
    elif job.eta_seconds is not None and job.total:
        lines.append(f"About {duration(job.eta_seconds)} left (X accepts only so many changes every 15 minutes).")
    return "\n".join(lines)


def render_summary(job: JobProgress) -> str:
    done = "unmuted" if job.unmuting else "muted"
    parts = [f"{done.capitalize()} **{job.succeeded}**"]
    if not job.unmuting:
        parts.append(f"already muted **{job.already_muted}**")
    if job.kept_unmuted:
        parts.append(f"left alone because you unmuted them yourself **{job.kept_unmuted}**")
    if job.skipped:
        parts.append(f"skipped **{job.skipped}**")
    if job.cancelled:
        parts.append(f"cancelled **{job.cancelled}**")
    parts.append(f"failed **{job.failed}**")
    text = " · ".join(parts)
    if job.failures:
        text += "\n\nFailed:\n" + "\n".join(f"• @{name}: {reason}" for name, reason in job.failures[:20])
        if job.failed > 20:
            text += f"\n… and {job.failed - 20} more."
    return text[:4000]


class DiscordProgress:
    """JobReporter for Discord: edits the job's message in place, then sends the summary."""

    def __init__(
        self, client: discord.Client, dm: Callable[..., Awaitable[discord.Message | None]],
        *, clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.dm = dm
        self.clock = clock
        self._interactions: dict[int, tuple[discord.Interaction, float]] = {}

    def use_interaction(self, interaction: discord.Interaction) -> int:
        """Report in this interaction's own (ephemeral) reply; returns the key to store as the message id."""
        self._interactions[interaction.id] = (interaction, self.clock())
        return interaction.id

    async def _edit(self, job: JobProgress, content: str) -> bool:
        if job.message_id is None:
            return False
        try:
            if job.channel_id is None:
                held = self._interactions.get(job.message_id)
                if held is None or self.clock() - held[1] > INTERACTION_EDIT_WINDOW:
                    return False
                await held[0].edit_original_response(content=content)
                return True
            channel = self.client.get_partial_messageable(job.channel_id)
            await channel.get_partial_message(job.message_id).edit(content=content)
            return True
        except discord.HTTPException as exc:
            log.info("could not edit the progress of job %s (%s)", job.id, exc.status)
            return False

    async def progress(self, job: JobProgress) -> None:
        await self._edit(job, render_progress(job))

    async def finished(self, job: JobProgress) -> None:
        await self._edit(job, render_progress(job))
        title = f"{'Cancelled' if job.status == 'cancelled' else 'Finished'}: {job.title}"
        embed = discord.Embed(title=title[:256], description=render_summary(job), colour=COLOUR_OK)
        if job.channel_id is None and job.message_id is not None:
            held = self._interactions.pop(job.message_id, None)
            if held is not None and self.clock() - held[1] <= INTERACTION_EDIT_WINDOW:
                try:
                    await held[0].followup.send(embed=embed, ephemeral=True)
                    return
                except discord.HTTPException as exc:
                    log.info("could not send the summary of job %s (%s)", job.id, exc.status)
        await self.dm(job.member_id, embed=embed)
