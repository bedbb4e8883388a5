"""Drives the Discord stand-in as its members would, so tests read like a member's session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.sandbox.discord_payloads import (
    ADMINISTRATOR,
    COMPONENTS_V2_FLAG,
    EPHEMERAL_FLAG,
    JSON,
    VIEW_CHANNEL,
    InteractionRecord,
    StoredAttachment,
    StoredMessage,
    walk_components,
)

if TYPE_CHECKING:
    from bot.sandbox.discord_standin import DiscordStandIn

__all__ = ["Attachment", "CommandNotAvailable", "Member", "Message", "Reply"]

# Application command option types.
SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN, USER, CHANNEL = 1, 2, 3, 4, 5, 6, 7
NUMBER, ATTACHMENT = 10, 11
GUILD_TEXT = 0


class CommandNotAvailable(LookupError):
    """The member could not run this in Discord: not registered, hidden by permissions, or a bad option."""


@dataclass(frozen=True)
class Attachment:
    """A file a member uploads as an attachment option."""

    filename: str
    data: bytes
    content_type: str = "text/csv"


def _buttons(components: list[JSON]) -> list[JSON]:
    return [
        {
            "label": c.get("label"),
            "custom_id": c.get("custom_id"),
            "url": c.get("url"),
            "disabled": bool(c.get("disabled", False)),
            "style": c.get("style"),
            "emoji": c.get("emoji"),
        }
        for c in walk_components(components)
        if c.get("type") == 2
    ]


def partial_channel(channel: JSON, permissions: int) -> JSON:
    """A channel as an interaction's resolved data carries it: a partial channel with the invoking member's
    permissions in it (Discord's "Resolved Data Structure")."""
    keep = ("id", "name", "type", "guild_id", "parent_id", "position", "topic", "nsfw", "last_message_id",
            "rate_limit_per_user", "flags")
    return {**{k: channel[k] for k in keep if k in channel}, "permissions": str(permissions)}


def _text(message: StoredMessage) -> str:
    if message.content or not message.flags & COMPONENTS_V2_FLAG:
        return message.content
    # Components v2 messages carry their words in text displays instead of content.
    return "\n".join(str(c.get("content", "")) for c in walk_components(message.components) if c.get("type") == 10)


class Message:
    """A message the bot sent, read in its latest state (edits applied)."""

    def __init__(self, standin: DiscordStandIn, message_id: int, reader: Member) -> None:
        self._standin = standin
        self._id = message_id
        self._reader = reader

    def __repr__(self) -> str:
        return f"<Message id={self.id} text={self.text!r} buttons={[b['label'] for b in self.buttons]}>"

    @property
    def stored(self) -> StoredMessage:
        return self._standin.messages[self._id]

    @property
    def id(self) -> str:
        return str(self._id)

    @property
    def channel_id(self) -> str:
        return str(self.stored.channel_id)

    @property
    def text(self) -> str:
        return _text(self.stored)

    @property
    def embeds(self) -> list[JSON]:
        return self.stored.embeds

    @property
    def components(self) -> list[JSON]:
        return self.stored.components

    @property
    def buttons(self) -> list[JSON]:
        return _buttons(self.stored.components)

    @property
    def attachments(self) -> list[StoredAttachment]:
        return self.stored.attachments

    @property
    def ephemeral(self) -> bool:
        return bool(self.stored.flags & EPHEMERAL_FLAG)

    @property
    def edits(self) -> int:
        return self.stored.edits

    @property
    def deleted(self) -> bool:
        return self.stored.deleted

    async def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 10) -> Message:
        await self._standin.wait_for_state(lambda: predicate(self), timeout, f"message {self.id} to change")
        return self

    async def click(self, label_or_custom_id: str, *, as_member: Member | None = None) -> Reply:
        return await _click(self._standin, self.stored, label_or_custom_id, as_member or self._reader)

    async def select(
        self, custom_id_or_placeholder: str, values: list[str], *, as_member: Member | None = None
    ) -> Reply:
        return await _select(self._standin, self.stored, custom_id_or_placeholder, values, as_member or self._reader)


class Reply:
    """The bot's answer to one interaction, kept up to date as the bot edits it.

    Its message is the interaction's original response once that shows anything, else the first
    followup: a cog that defers and then sends a followup reads the same as one that answers at once.
    """

    def __init__(self, standin: DiscordStandIn, record: InteractionRecord, member: Member) -> None:
        self._standin = standin
        self.record = record
        self.member = member

    def __repr__(self) -> str:
        return (
            f"<Reply callback={self.record.callback_type} ephemeral={self.ephemeral} text={self.text!r} "
            f"buttons={[b['label'] for b in self.buttons]} followups={len(self.record.followup_ids)}>"
        )

    def _primary(self) -> StoredMessage | None:
        messages = self._standin.messages
        original = messages.get(self.record.original_message_id or 0)
        if original is not None and original.visible:
            return original
        for followup_id in self.record.followup_ids:
            if messages[followup_id].visible:
                return messages[followup_id]
        return original

    @property
    def message(self) -> Message | None:
        primary = self._primary()
        return None if primary is None else Message(self._standin, primary.id, self.member)

    @property
    def message_id(self) -> str:
        primary = self._primary()
        return "" if primary is None else str(primary.id)

    @property
    def ephemeral(self) -> bool:
        primary = self._primary()
        return bool(primary and primary.flags & EPHEMERAL_FLAG)

    @property
    def text(self) -> str:
        primary = self._primary()
        return "" if primary is None or primary.deleted else _text(primary)

    @property
    def embeds(self) -> list[JSON]:
        primary = self._primary()
        return [] if primary is None or primary.deleted else primary.embeds

    @property
    def components(self) -> list[JSON]:
        primary = self._primary()
        return [] if primary is None or primary.deleted else primary.components

    @property
    def buttons(self) -> list[JSON]:
        return _buttons(self.components)

    @property
    def attachments(self) -> list[StoredAttachment]:
        primary = self._primary()
        return [] if primary is None or primary.deleted else primary.attachments

    @property
    def modal(self) -> JSON | None:
        return self.record.modal

    @property
    def choices(self) -> list[JSON] | None:
        return self.record.choices

    @property
    def callback_type(self) -> int | None:
        return self.record.callback_type

    @property
    def followups(self) -> list[Message]:
        return [Message(self._standin, i, self.member) for i in self.record.followup_ids]

    @property
    def ack_latency(self) -> float | None:
        """Seconds from INTERACTION_CREATE to the bot's first callback."""
        acked = self.record.acked_at
        return None if acked is None else acked - self.record.dispatched_at

    @property
    def latency(self) -> float | None:
        """Seconds from INTERACTION_CREATE to the first thing the member could read."""
        shown = self.record.first_content_at
        return None if shown is None else shown - self.record.dispatched_at

    async def wait_for(self, predicate: Callable[[Reply], bool], timeout: float = 10) -> Reply:
        await self._standin.wait_for_state(lambda: predicate(self), timeout, f"the reply to change ({self!r})")
        return self

    async def click(self, label_or_custom_id: str, *, as_member: Member | None = None) -> Reply:
        primary = self._primary()
        if primary is None:
            raise CommandNotAvailable(f"nothing to click: the bot has not answered ({self!r})")
        return await _click(self._standin, primary, label_or_custom_id, as_member or self.member)

    async def select(
        self, custom_id_or_placeholder: str, values: list[str], *, as_member: Member | None = None
    ) -> Reply:
        """Pick ``values`` (option values or labels) in a string select menu on this reply."""
        primary = self._primary()
        if primary is None:
            raise CommandNotAvailable(f"nothing to select: the bot has not answered ({self!r})")
        return await _select(self._standin, primary, custom_id_or_placeholder, values, as_member or self.member)

    async def submit(self, values: dict[str, str], *, as_member: Member | None = None) -> Reply:
        """Fill in this reply's modal (keys: a text input's custom_id or label) and submit it."""
        modal = self.record.modal
        if modal is None:
            raise CommandNotAvailable(f"the bot did not answer with a modal ({self!r})")
        remaining = dict(values)
        components = [_submitted(c, remaining) for c in modal["components"]]
        if remaining:
            raise CommandNotAvailable(f"the modal has no inputs {sorted(remaining)}")
        source = self._standin.messages.get(self.record.source_message_id or 0)
        member = as_member or self.member
        record = await self._standin.dispatch_interaction(
            member,
            5,
            {"custom_id": modal["custom_id"], "components": components},
            source=source,
            in_dm=self.record.guild_id is None,
        )
        return await _answered(self._standin, record, member, f"the modal {modal['custom_id']!r}")


def _submitted(component: JSON, values: dict[str, str]) -> JSON:
    """One modal component as the Discord client submits it, with the member's value filled in."""
    kind = component.get("type")
    if kind == 1:
        return {"type": 1, "components": [_submitted(c, values) for c in component.get("components", [])]}
    if kind == 18:
        inner = dict(component["component"])
        inner.setdefault("label", component.get("label"))
        return {"type": 18, "component": _submitted(inner, values)}
    if kind != 4:
        return {"type": kind, "custom_id": component.get("custom_id")}
    custom_id = str(component["custom_id"])
    key = custom_id if custom_id in values else component.get("label")
    value = values.pop(str(key), None) if key in values else None
    if value is None:
        value = str(component.get("value") or "")
    if component.get("required", True) and not value:
        raise CommandNotAvailable(f"the modal's input {component.get('label') or custom_id!r} is required")
    if value and not int(component.get("min_length") or 0) <= len(value) <= int(component.get("max_length") or 4000):
        raise CommandNotAvailable(f"the modal's input {custom_id!r} rejects a value of length {len(value)}")
    return {"type": 4, "custom_id": custom_id, "value": value}


async def _click(standin: DiscordStandIn, message: StoredMessage, target: str, member: Member) -> Reply:
    buttons = [c for c in walk_components(message.components) if c.get("type") == 2]
    button = next((b for b in buttons if b.get("custom_id") == target), None) or next(
        (b for b in buttons if b.get("label") == target), None
    )
    if button is None:
        labels = [b.get("label") or b.get("custom_id") for b in buttons]
        raise CommandNotAvailable(f"no button {target!r} on message {message.id}; it has {labels}")
    if button.get("url") or button.get("style") == 5:
        raise CommandNotAvailable(f"button {target!r} is a link to {button.get('url')}; it sends no interaction")
    if button.get("disabled"):
        raise CommandNotAvailable(f"button {target!r} is disabled")
    record = await standin.dispatch_interaction(
        member,
        3,
        {"custom_id": button["custom_id"], "component_type": 2},
        source=message,
        in_dm=message.guild_id is None,
    )
    return await _answered(standin, record, member, f"the click on {target!r}")


async def _select(
    standin: DiscordStandIn, message: StoredMessage, target: str, values: list[str], member: Member
) -> Reply:
    menus = [c for c in walk_components(message.components) if c.get("type") == 3]
    menu = next((m for m in menus if m.get("custom_id") == target), None) or next(
        (m for m in menus if m.get("placeholder") == target), None
    )
    if menu is None:
        raise CommandNotAvailable(f"no select menu {target!r} on message {message.id}")
    if menu.get("disabled"):
        raise CommandNotAvailable(f"select menu {target!r} is disabled")
    options = list(menu.get("options") or [])
    by_label = {str(o.get("label")): str(o["value"]) for o in options}
    chosen = [v if v in by_label.values() else by_label.get(v, "") for v in values]
    if "" in chosen:
        raise CommandNotAvailable(f"select menu {target!r} offers only {sorted(by_label.values())}")
    if not int(menu.get("min_values", 1)) <= len(chosen) <= int(menu.get("max_values", 1)):
        raise CommandNotAvailable(
            f"select menu {target!r} takes {menu.get('min_values', 1)}-{menu.get('max_values', 1)} values"
        )
    record = await standin.dispatch_interaction(
        member,
        3,
        {"custom_id": menu["custom_id"], "component_type": 3, "values": chosen},
        source=message,
        in_dm=message.guild_id is None,
    )
    return await _answered(standin, record, member, f"the choice in {target!r}")


async def _answered(standin: DiscordStandIn, record: InteractionRecord, member: Member, what: str) -> Reply:
    reply = Reply(standin, record, member)
    await standin.wait_for_answer(record, member.reply_timeout, f"the bot to answer {what}")
    return reply


class Member:
    """A fake Discord user in one of the stand-in's servers."""

    # How long slash(), click() and submit() wait for the bot's complete answer.
    reply_timeout: float = 10.0

    def __init__(
        self, standin: DiscordStandIn, *, user_id: int, username: str, guild_id: int, permissions: int
    ) -> None:
        self._standin = standin
        self.id = user_id
        self.username = username
        self.guild_id = guild_id
        self.permissions = permissions

    def __repr__(self) -> str:
        return f"<Member {self.username} id={self.id} guild={self.guild_id}>"

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    async def slash(self, command: str, /, **options: object) -> Reply:
        """Run ``/command`` (path such as ``"mutelist add"``) and wait for the bot's complete answer."""
        data = await self._command_data(command, options, focused=None)
        record = await self._standin.dispatch_interaction(self, 2, data)
        return await _answered(self._standin, record, self, f"/{command}")

    async def autocomplete(self, command: str, option: str, value: str, /, **other_options: object) -> list[JSON]:
        """Type ``value`` into ``option`` of ``/command``; the choices the bot offered."""
        data = await self._command_data(command, {**other_options, option: value}, focused=option)
        record = await self._standin.dispatch_interaction(self, 4, data)
        await _answered(self._standin, record, self, f"autocomplete of {option!r} in /{command}")
        return list(record.choices or [])

    async def dms(self) -> list[Message]:
        """The DMs the bot sent this member, oldest first, in their latest state."""
        channel_id = self._standin.dm_channels.get(self.id)
        if channel_id is None:
            return []
        return [Message(self._standin, m.id, self) for m in self._standin.channel_messages(channel_id)]

    async def wait_for_dm(self, predicate: Callable[[Message], bool] | None = None, timeout: float = 10) -> Message:
        """The first DM (oldest first) that satisfies ``predicate``, waiting for it to arrive."""
        found: list[Message] = []

        def arrived() -> bool:
            channel_id = self._standin.dm_channels.get(self.id)
            for stored in self._standin.channel_messages(channel_id) if channel_id else []:
                message = Message(self._standin, stored.id, self)
                if predicate is None or predicate(message):
                    found.append(message)
                    return True
            return False

        await self._standin.wait_for_state(arrived, timeout, f"a DM to {self.username}")
        return found[0]

    # -- building interaction data from the registered schema --------------------------------------

    async def _registered(self, name: str) -> JSON:
        standin = self._standin
        command = standin.registered_command(name, self.guild_id)
        if command is None and standin.command_writes == 0:
            # The bot may still be syncing at start-up; once it has written commands, absence is final.
            await standin.wait_for_state(
                lambda: standin.command_writes > 0, self.reply_timeout, "the bot to register its commands"
            )
            command = standin.registered_command(name, self.guild_id)
        if command is None:
            known = sorted(c["name"] for scope in (None, self.guild_id) for c in standin.commands.get(scope, []))
            raise CommandNotAvailable(f"/{name} is not registered with the stand-in (registered: {known})")
        required = command.get("default_member_permissions")
        if (
            standin.enforce_command_permissions
            and required is not None
            and not self.permissions & ADMINISTRATOR
            and self.permissions & int(required) != int(required)
        ):
            raise CommandNotAvailable(
                f"Discord does not show /{name} to {self.username}: it lacks permissions {required}"
            )
        return command

    async def _command_data(self, path: str, options: dict[str, object], *, focused: str | None) -> JSON:
        parts = path.strip().lstrip("/").split()
        if not parts:
            raise CommandNotAvailable("empty command path")
        command = await self._registered(parts[0])
        chain: list[JSON] = []
        schema: list[JSON] = list(command.get("options") or [])
        for part in parts[1:]:
            sub = next((o for o in schema if o["name"] == part and o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)), None)
            if sub is None:
                raise CommandNotAvailable(f"/{path}: {part!r} is not a subcommand of /{' '.join(parts[:1])}")
            chain.append(sub)
            schema = list(sub.get("options") or [])
        if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in schema):
            names = [o["name"] for o in schema]
            raise CommandNotAvailable(f"/{path} is a group; name one of its subcommands {names}")
        resolved: JSON = {}
        by_name = {o["name"]: o for o in schema}
        unknown = set(options) - set(by_name)
        if unknown:
            raise CommandNotAvailable(f"/{path} has no options {sorted(unknown)}; it has {sorted(by_name)}")
        built: list[JSON] = []
        for spec in schema:
            if spec["name"] not in options:
                if spec.get("required") and focused is None:
                    raise CommandNotAvailable(f"/{path} needs option {spec['name']!r}")
                continue
            value = options[spec["name"]]
            if spec["name"] == focused:
                built.append({"name": spec["name"], "type": spec["type"], "value": str(value), "focused": True})
            else:
                built.append(
                    {"name": spec["name"], "type": spec["type"], "value": self._value(path, spec, value, resolved)}
                )
        for sub in reversed(chain):
            built = [{"name": sub["name"], "type": sub["type"], "options": built}]
        data: JSON = {"id": command["id"], "name": command["name"], "type": 1, "options": built}
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        if resolved:
            data["resolved"] = resolved
        return data

    def _value(self, path: str, spec: JSON, value: object, resolved: JSON) -> Any:
        kind, name = spec["type"], spec["name"]

        def wrong(expected: str) -> CommandNotAvailable:
            return CommandNotAvailable(f"/{path} option {name!r} takes {expected}, not {value!r}")

        if kind == STRING:
            if not isinstance(value, str):
                raise wrong("a str")
            if not int(spec.get("min_length") or 0) <= len(value) <= int(spec.get("max_length") or 6000):
                raise wrong("a str of allowed length")
        elif kind == INTEGER:
            if not isinstance(value, int) or isinstance(value, bool):
                raise wrong("an int")
        elif kind == NUMBER:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise wrong("a number")
        elif kind == BOOLEAN:
            if not isinstance(value, bool):
                raise wrong("a bool")
        elif kind == USER:
            if not isinstance(value, Member):
                raise wrong("a Member")
            resolved.setdefault("users", {})[str(value.id)] = self._standin.users[value.id]
            if value.guild_id == self.guild_id:
                member = self._standin.member_payload(value)
                member.pop("user")
                resolved.setdefault("members", {})[str(value.id)] = member
            return str(value.id)
        elif kind == CHANNEL:
            # Discord's picker offers the channels of the member's own server that they can see, of the
            # option's channel_types; the interaction carries the partial channel with their permissions in it.
            if not isinstance(value, int) or isinstance(value, bool):
                raise wrong("a channel id (an int)")
            guild = self._standin.guilds.get(self.guild_id)
            channel = guild.channels.get(value) if guild else None
            if channel is None:
                raise CommandNotAvailable(f"/{path} option {name!r}: Discord offers only the channels of "
                                          f"{self.username}'s server, and {value} is not one of them")
            allowed = spec.get("channel_types")
            if allowed and GUILD_TEXT not in allowed:
                raise wrong(f"a channel of types {allowed}")
            permissions = self._standin.permissions_in(value, self.id)
            if not permissions & VIEW_CHANNEL:
                raise CommandNotAvailable(f"{self.username} cannot see channel {value}, so Discord does not offer it")
            resolved.setdefault("channels", {})[str(value)] = partial_channel(channel.to_json(), permissions)
            return str(value)
        elif kind == ATTACHMENT:
            if not isinstance(value, Attachment):
                raise wrong("an Attachment")
            stored = self._standin.store_attachment(value.filename, value.data, value.content_type, ephemeral=True)
            resolved.setdefault("attachments", {})[str(stored.id)] = stored.to_json()
            return str(stored.id)
        else:
            raise CommandNotAvailable(f"/{path} option {name!r} has type {kind}, which the stand-in cannot fill in")
        if isinstance(value, int | float) and not isinstance(value, bool):
            low, high = spec.get("min_value"), spec.get("max_value")
            if (low is not None and value < low) or (high is not None and value > high):
                raise wrong(f"a value within [{low}, {high}]")
        choices = spec.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            raise wrong(f"one of {[c['value'] for c in choices]}")
        return value
