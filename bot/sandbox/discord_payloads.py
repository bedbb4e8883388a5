"""Records and JSON shapes the Discord stand-in keeps and sends, in the form discord.py 2.7 parses."""

from __future__ import annotations

import asyncio
import itertools
import mimetypes
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
CREATE_INSTANT_INVITE = 1 << 0
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
CHANGE_NICKNAME = 1 << 26
USE_APPLICATION_COMMANDS = 1 << 31

# What @everyone gets in a fresh server: no Manage Server.
DEFAULT_MEMBER_PERMISSIONS = (
    CREATE_INSTANT_INVITE
    | ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS
)
MODERATOR_PERMISSIONS = DEFAULT_MEMBER_PERMISSIONS | MANAGE_GUILD
ALL_PERMISSIONS = (1 << 51) - 1
BOT_PERMISSIONS = DEFAULT_MEMBER_PERMISSIONS

EPHEMERAL_FLAG = 1 << 6
LOADING_FLAG = 1 << 7
COMPONENTS_V2_FLAG = 1 << 15
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

_counter = itertools.count()


def snowflake() -> int:
    """A fresh id that decodes to the current time, as Discord's do."""
    millis = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return (millis << 22) | (next(_counter) & 0x3FFFFF)


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class StoredAttachment:
    id: int
    filename: str
    data: bytes
    content_type: str
    url: str
    ephemeral: bool = False

    def to_json(self) -> JSON:
        return {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.url,
            "content_type": self.content_type,
            "ephemeral": self.ephemeral,
        }


def guess_content_type(filename: str, sent: str | None) -> str:
    # discord.py uploads every file as application/octet-stream; Discord guesses from the name.
    if sent and sent != "application/octet-stream":
        return sent
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


@dataclass
class StoredMessage:
    """One message the bot sent, in its latest state."""

    id: int
    channel_id: int
    guild_id: int | None
    author: JSON
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    attachments: list[StoredAttachment] = field(default_factory=list)
    flags: int = 0
    webhook_id: int | None = None
    timestamp: str = field(default_factory=iso_now)
    edited_timestamp: str | None = None
    edits: int = 0
    deleted: bool = False

    @property
    def visible(self) -> bool:
        """Whether a person would see anything but the "is thinking…" placeholder."""
        if self.deleted or self.flags & LOADING_FLAG:
            return False
        return bool(self.content or self.embeds or self.components or self.attachments)

    def to_json(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "type": 0,
            "content": self.content,
            "author": self.author,
            "attachments": [a.to_json() for a in self.attachments],
            "embeds": self.embeds,
            "components": self.components,
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "flags": self.flags,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
            data["application_id"] = str(self.webhook_id)
        return data


@dataclass
class InteractionRecord:
    """One interaction the stand-in dispatched, and how the bot has answered it so far."""

    id: int
    token: str
    type: int
    payload: JSON
    channel_id: int
    guild_id: int | None
    dispatched_at: float
    # The message a component or modal interaction came from; the @original of types 6 and 7.
    source_message_id: int | None = None
    callback_type: int | None = None
    acked_at: float | None = None
    first_content_at: float | None = None
    original_message_id: int | None = None
    original_edited: bool = False
    followup_ids: list[int] = field(default_factory=list)
    modal: JSON | None = None
    choices: list[JSON] | None = None
    # Set on every change to this interaction's answer, so a member waits on their own interaction only
    # (a shared wake-up for every waiter costs O(waiters) per change, which distorts a 500-command burst).
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    @property
    def complete(self) -> bool:
        """Whether the bot has finished answering, as far as the member can tell."""
        if self.callback_type is None:
            return False
        if self.callback_type in (5, 6):
            # A deferral is only an acknowledgement; the answer is the edit or a followup.
            return self.original_edited or bool(self.followup_ids)
        return True


def user_json(user_id: int, username: str, *, bot: bool = False) -> JSON:
    return {
        "id": str(user_id),
        "username": username,
        "discriminator": "0",
        "global_name": None if bot else username,
        "avatar": None,
        "bot": bot,
        "system": False,
        "public_flags": 0,
        "flags": 0,
        "verified": True,
        "mfa_enabled": False,
        "locale": "en-US",
        "email": None,
    }


def member_json(user: JSON, *, permissions: int | None, joined_at: str) -> JSON:
    data: JSON = {
        "user": user,
        "roles": [],
        "nick": None,
        "avatar": None,
        "joined_at": joined_at,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
    }
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def text_channel_json(
    channel_id: int, guild_id: int, name: str, *, overwrites: list[JSON] | None = None, position: int = 0,
) -> JSON:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": position,
        "permission_overwrites": list(overwrites or []),
        "nsfw": False,
        "topic": None,
        "parent_id": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }


def overwrite_json(target_id: int, *, member: bool, allow: int = 0, deny: int = 0) -> JSON:
    """A channel's permission overwrite for a role (type 0) or a member (type 1), as Discord sends it."""
    return {"id": str(target_id), "type": 1 if member else 0, "allow": str(allow), "deny": str(deny)}


def channel_permissions(base: int, overwrites: list[JSON], *, guild_id: int, role_ids: set[int], member_id: int) -> int:
    """A member's permissions in a channel, computed as Discord's permissions docs lay out ("Permission
    Overwrites"): the base from their roles; ADMINISTRATOR is everything; then the @everyone overwrite, the
    member's roles' overwrites together, and the member's own, each denying before allowing."""
    if base & ADMINISTRATOR:
        return ALL_PERMISSIONS
    permissions = base
    by_target = {(int(o["type"]), int(o["id"])): o for o in overwrites}
    everyone = by_target.get((0, guild_id))
    if everyone is not None:
        permissions = (permissions & ~int(everyone["deny"])) | int(everyone["allow"])
    deny = allow = 0
    for role_id in role_ids:
        role = by_target.get((0, role_id))
        if role is not None:
            deny, allow = deny | int(role["deny"]), allow | int(role["allow"])
    permissions = (permissions & ~deny) | allow
    own = by_target.get((1, member_id))
    if own is not None:
        permissions = (permissions & ~int(own["deny"])) | int(own["allow"])
    return permissions


def dm_channel_json(channel_id: int, recipient: JSON) -> JSON:
    return {"id": str(channel_id), "type": 1, "recipients": [recipient], "last_message_id": None, "flags": 0}


def role_json(role_id: int, name: str, permissions: int) -> JSON:
    return {
        "id": str(role_id),
        "name": name,
        "permissions": str(permissions),
        "position": 0,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "icon": None,
        "unicode_emoji": None,
        "flags": 0,
    }


def walk_components(components: list[JSON]) -> list[JSON]:
    """Every component, depth first, through action rows, sections, containers and labels."""
    found: list[JSON] = []
    for component in components:
        found.append(component)
        found.extend(walk_components(list(component.get("components", []))))
        for key in ("accessory", "component"):
            inner = component.get(key)
            if isinstance(inner, dict):
                found.extend(walk_components([inner]))
    return found


def form_error(errors: JSON, message: str = "Invalid Form Body", code: int = 50035) -> JSON:
    return {"code": code, "message": message, "errors": errors}


def message_problems(msg: StoredMessage) -> JSON | None:
    """Discord's own limits on a message, so the bot learns about them here rather than in production."""
    errors: JSON = {}
    if len(msg.content) > 2000:
        errors["content"] = "Must be 2000 or fewer in length."
    if len(msg.embeds) > 10:
        errors["embeds"] = "Must be 10 or fewer in length."
    for index, embed in enumerate(msg.embeds):
        problem = _embed_problem(embed)
        if problem:
            errors[f"embeds.{index}"] = problem
    rows = [c for c in msg.components if c.get("type") == 1]
    if not msg.flags & COMPONENTS_V2_FLAG and len(rows) > 5:
        errors["components"] = "Must be 5 or fewer in length."
    for row in rows:
        if len(row.get("components", [])) > 5:
            errors["components"] = "An action row holds at most 5 components."
    for component in walk_components(msg.components):
        if len(str(component.get("custom_id") or "")) > 100:
            errors["components.custom_id"] = "Must be 100 or fewer in length."
        if len(str(component.get("label") or "")) > 80:
            errors["components.label"] = "Must be 80 or fewer in length."
    if msg.flags & COMPONENTS_V2_FLAG and (msg.content or msg.embeds):
        errors["content"] = "Messages with components v2 cannot have content or embeds."
    return errors or None


def _embed_problem(embed: JSON) -> str | None:
    limits = {"title": 256, "description": 4096}
    for key, limit in limits.items():
        if len(str(embed.get(key) or "")) > limit:
            return f"{key} must be {limit} or fewer in length."
    fields = embed.get("fields", [])
    if len(fields) > 25:
        return "fields must be 25 or fewer in length."
    total = len(str(embed.get("title") or "")) + len(str(embed.get("description") or ""))
    for item in fields:
        if not item.get("name") or not item.get("value"):
            return "field name and value are required."
        if len(item["name"]) > 256 or len(item["value"]) > 1024:
            return "field name must be 256 and value 1024 or fewer in length."
        total += len(item["name"]) + len(item["value"])
    footer = embed.get("footer") or {}
    total += len(str(footer.get("text") or "")) + len(str((embed.get("author") or {}).get("name") or ""))
    if total > 6000:
        return "Embed size exceeds maximum size of 6000"
    return None
