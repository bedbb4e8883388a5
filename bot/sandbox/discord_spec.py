"""Checks what a bot sends to Discord: each REST body against Discord's OpenAPI spec, and the rules the spec omits."""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# jsonschema (and its referencing) are test tools, not runtime dependencies: imported when a spec is loaded,
# so the stand-in (and `mutebot demo` from an installed package) runs without them, unchecked.

JSON = dict[str, Any]
Problem = tuple[str, str, str]  # where in the body, Discord's error code, the message

# Vendored under tests/data (see its SOURCES.md): Discord's own description of the v10 HTTP API, from
# github.com/discord/discord-api-spec. The stand-in runs from a checkout (tests, `make demo`), so it reads it there.
SPEC_PATH = Path(__file__).resolve().parents[2] / "tests" / "data" / "discord-api" / "openapi.json"
SPEC_URI = "urn:discord-api:openapi"

COMPONENTS_V2_FLAG = 1 << 15
LINK_STYLE, PREMIUM_STYLE = 5, 6
BUTTON, ACTION_ROW, TEXT_INPUT = 2, 1, 4
# Discord's message limits (https://discord.com/developers/docs/resources/message#create-message and
# .../resources/message#embed-object-embed-limits): the spec has most per-field lengths, not the totals.
CONTENT_LIMIT = 2000  # the spec allows 4000, which is for Nitro users; a bot's messages stop at 2000
EMBED_LIMITS = {"title": 256, "description": 4096}
EMBED_FIELDS_LIMIT, FIELD_NAME_LIMIT, FIELD_VALUE_LIMIT = 25, 256, 1024
FOOTER_LIMIT, AUTHOR_NAME_LIMIT = 2048, 256
EMBEDS_TOTAL_LIMIT = 6000
ROWS_LIMIT, ROW_WIDTH = 5, 5
CUSTOM_ID_LIMIT = 100
# https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-response-object-autocomplete
CHOICES_LIMIT, CHOICE_LIMIT = 25, 100


@dataclass(frozen=True)
class Violation:
    """One thing Discord would refuse in one request: where in the body, Discord's error code, and why."""

    method: str
    path: str
    where: str  # dotted, as Discord's `errors` object nests it ("data.embeds.0.title"); "" for the body itself
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}: {self.where or '(body)'}: {self.message} [{self.code}]"


def form_errors(violations: Iterable[Violation]) -> JSON:
    """Discord's `errors` object of a 50035 Invalid Form Body: nested by key, `_errors` at each leaf."""
    errors: JSON = {}
    for violation in violations:
        node = errors
        for key in violation.where.split(".") if violation.where else []:
            node = node.setdefault(key, {})
        node.setdefault("_errors", []).append({"code": violation.code, "message": violation.message})
    return errors


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _patched(spec: JSON) -> JSON:
    """The spec with the places where Discord (and its docs) accept more than it says."""
    schemas = dict(spec["components"]["schemas"])
    # A snowflake is a string in everything Discord sends, but Discord reads one from a JSON integer too, and
    # discord.py sends integers (recipient_id, attachment ids): "Snowflake IDs ... are always returned as
    # strings" (docs, Reference > Snowflakes), nothing about what it accepts, and Discord accepts both.
    schemas["SnowflakeType"] = {"anyOf": [schemas["SnowflakeType"], {"type": "integer", "minimum": 0}]}
    commands = ("ApplicationCommandCreateRequest", "ApplicationCommandUpdateRequest")
    for name in commands:
        command = dict(schemas[name])
        properties = dict(command["properties"])
        # The docs give default_member_permissions as "?string" (a permission bit set); the spec an integer.
        # discord.py sends the string. The docs win (the spec's README).
        permissions = properties["default_member_permissions"]
        properties["default_member_permissions"] = {
            "anyOf": [permissions, {"type": "string", "pattern": "^[0-9]+$"}]
        }
        command["properties"] = properties
        schemas[name] = command
    return {**spec, "components": {**spec["components"], "schemas": schemas}}


class DiscordSpec:
    """Discord's HTTP API spec, ready to check request bodies: `check(method, path, body)` lists violations."""

    def __init__(self, spec: JSON) -> None:
        import jsonschema  # type: ignore[import-untyped]  # noqa: F401 - every check needs it: refuse now if missing
        from referencing import Registry
        from referencing.jsonschema import DRAFT202012

        self.spec = _patched(spec)
        self._registry: Any = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(self.spec))
        # Templates with more literal segments first, so /users/@me/channels wins over /users/{user_id}/...
        routes: list[tuple[int, re.Pattern[str], str]] = []
        for template in self.spec["paths"]:
            segments = template.strip("/").split("/")
            pattern = "/".join("[^/]+" if s.startswith("{") else re.escape(s) for s in segments)
            literal = sum(not s.startswith("{") for s in segments)
            routes.append((literal, re.compile(f"/{pattern}"), template))
        routes.sort(key=lambda r: -r[0])
        self._routes = [(pattern, template) for _, pattern, template in routes]

    @classmethod
    @functools.cache
    def load(cls, path: Path = SPEC_PATH) -> DiscordSpec:
        """The vendored spec, read once per process (FileNotFoundError without it, ImportError without
        jsonschema)."""
        if not path.is_file():
            raise FileNotFoundError(
                f"Discord's OpenAPI spec is not at {path}: the stand-in checks request bodies against it "
                "(vendored under tests/data/discord-api; DiscordStandIn(check_requests=False) turns the check off)"
            )
        return cls(json.loads(path.read_text()))

    @classmethod
    def available(cls) -> DiscordSpec | None:
        """The spec when this checkout has it and jsonschema is installed (tests, `make demo`); else None."""
        try:
            return cls.load()
        except (FileNotFoundError, ImportError):
            return None

    def template(self, path: str) -> str | None:
        """The spec's path template for a request path (without /api/v10), or None if Discord has no such path."""
        for pattern, template in self._routes:
            if pattern.fullmatch(path):
                return template
        return None

    def check(self, method: str, path: str, body: Any) -> list[Violation]:
        """Everything Discord would refuse in this body; [] for a route or method the spec gives no body."""
        template = self.template(path)
        if template is None:
            return []
        operation = self.spec["paths"][template].get(method.lower()) or {}
        request = operation.get("requestBody")
        if not request or "application/json" not in request["content"]:
            return []
        if body is None:
            if request.get("required"):
                return [Violation(method, path, "", "BASE_TYPE_REQUIRED", "This request needs a body.")]
            return []
        pointer = "/".join(
            ["#", "paths", _escape(template), method.lower(), "requestBody", "content", "application~1json", "schema"]
        )
        problems = self._schema_problems(pointer, body) + rule_problems(template, body)
        # A limit both the spec and the rules know (a title's 256) is one problem, said once.
        return [Violation(method, path, *problem) for problem in dict.fromkeys(problems)]

    # -- the schema ------------------------------------------------------------------------------

    def _schema_problems(self, pointer: str, body: Any) -> list[Problem]:
        schema = self._resolve(pointer)
        union = schema.get("anyOf") or schema.get("oneOf")
        if union and isinstance(body, dict) and "type" in body:
            # The interaction callback is a union over `type`: check the member for this type (a failed union
            # says only "not valid under any of the given schemas"), as the spec's README advises.
            for index, member in enumerate(union):
                allowed = self._resolve_schema(member).get("properties", {}).get("type", {}).get("enum")
                if allowed is not None and body["type"] in allowed:
                    pointer = f"{pointer}/{'anyOf' if 'anyOf' in schema else 'oneOf'}/{index}"
                    break
        errors = self._validator(pointer).iter_errors(body)
        return [_describe(e) for error in errors for e in _leaves(error)]

    def _resolve(self, pointer: str) -> JSON:
        resolved: JSON = self._registry.resolver().lookup(SPEC_URI + pointer).contents
        return resolved

    def _resolve_schema(self, schema: JSON) -> JSON:
        ref = schema.get("$ref")
        return self._resolve(ref) if isinstance(ref, str) else schema

    @functools.cache  # noqa: B019 - one spec per process (load() is cached), so nothing leaks
    def _validator(self, pointer: str) -> Any:
        import jsonschema

        return jsonschema.Draft202012Validator({"$ref": SPEC_URI + pointer}, registry=self._registry)


def _leaves(error: Any) -> list[Any]:
    """A failed oneOf/anyOf as the errors of the member the body was meant to be, not "valid under none"."""
    if error.validator not in ("oneOf", "anyOf") or not error.context or _is_choice(error):
        return [error]
    branches: dict[Any, list[Any]] = defaultdict(list)
    for inner in error.context:
        branches[inner.relative_schema_path[0]].append(inner)
    depth = len(error.absolute_path)

    def misfit(leaves: list[Any]) -> tuple[bool, int, int]:
        # The member meant is the one whose type (or `type` discriminator) fits, then the one with the fewest
        # wrong types, then the fewest errors: a null-or-object union reports the object's errors.
        def relative(e: Any) -> list[Any]:
            return list(e.absolute_path)[depth:]

        wrong_kind = any(
            (not relative(e) and (e.validator in ("type", "enum", "const") or _is_choice(e)))
            or (relative(e) == ["type"] and (e.validator in ("enum", "const") or _is_choice(e)))
            for e in leaves
        )
        wrong_types = sum(e.validator == "type" for e in leaves)
        return wrong_kind, wrong_types, len(leaves)

    expanded = [[leaf for inner in errors for leaf in _leaves(inner)] for errors in branches.values()]
    return min(expanded, key=misfit)


def _is_choice(error: Any) -> bool:
    """A union of constants (the spec's enums: `oneOf: [{const: 1}, {const: 2}, ...]`) that none matched."""
    members = error.validator_value if error.validator in ("oneOf", "anyOf") else None
    return isinstance(members, list) and bool(members) and all(isinstance(m, dict) and "const" in m for m in members)


def _where(path: Sequence[Any]) -> str:
    return ".".join(str(p) for p in path)


def _describe(error: Any) -> Problem:
    """A jsonschema error in Discord's words (codes and messages as Discord's 50035 answers carry them)."""
    where, value, keyword = _where(error.absolute_path), error.validator_value, error.validator
    if keyword in ("maxLength", "maxItems"):
        return where, "BASE_TYPE_MAX_LENGTH", f"Must be {value} or fewer in length."
    if keyword in ("minLength", "minItems"):
        return where, "BASE_TYPE_MIN_LENGTH", f"Must be {value} or more in length."
    if keyword == "required":
        missing = [p for p in value if isinstance(error.instance, dict) and p not in error.instance]
        return _where([*error.absolute_path, *missing[:1]]), "BASE_TYPE_REQUIRED", "This field is required"
    if keyword in ("enum", "const") or _is_choice(error):
        choices = value if keyword == "enum" else [m["const"] for m in value] if _is_choice(error) else [value]
        return where, "BASE_TYPE_CHOICES", f"Value must be one of {tuple(choices)}."
    if keyword == "maximum":
        return where, "NUMBER_TYPE_MAX", f"Value should be less than or equal to {value}."
    if keyword == "minimum":
        return where, "NUMBER_TYPE_MIN", f"Value should be greater than or equal to {value}."
    return where, f"SCHEMA_{keyword.upper()}", str(error.message)


# -- the rules the spec leaves out -------------------------------------------------------------------

# The routes whose body is a message, and the routes whose `data` is one for these callback types.
MESSAGE_ROUTES = {
    "/channels/{channel_id}/messages",
    "/channels/{channel_id}/messages/{message_id}",
    "/webhooks/{webhook_id}/{webhook_token}",
    "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
    "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
}
CALLBACK_ROUTE = "/interactions/{interaction_id}/{interaction_token}/callback"
MESSAGE_CALLBACKS = {4, 7}
AUTOCOMPLETE_CALLBACK, MODAL_CALLBACK = 8, 9


def rule_problems(template: str, body: Any) -> list[Problem]:
    """Discord's cross-field rules and totals, which the spec cannot say, for the body of a route."""
    if not isinstance(body, dict):
        return []
    if template in MESSAGE_ROUTES:
        return message_rule_problems(body)
    if template != CALLBACK_ROUTE or not isinstance(body.get("data"), dict):
        return []
    data, kind = body["data"], body.get("type")
    if kind in MESSAGE_CALLBACKS:
        return message_rule_problems(data, "data.")
    if kind == AUTOCOMPLETE_CALLBACK:
        return choice_problems(data.get("choices"), "data.choices")
    if kind == MODAL_CALLBACK:
        return _custom_id_problems(data.get("components"), "data.components")
    return []


def message_rule_problems(message: JSON, prefix: str = "") -> list[Problem]:
    problems: list[Problem] = []
    content = message.get("content")
    if isinstance(content, str) and len(content) > CONTENT_LIMIT:
        problems.append((f"{prefix}content", "BASE_TYPE_MAX_LENGTH", f"Must be {CONTENT_LIMIT} or fewer in length."))
    problems += embed_problems(message.get("embeds"), f"{prefix}embeds")
    flags = message.get("flags")
    if not (isinstance(flags, int) and flags & COMPONENTS_V2_FLAG):
        problems += row_problems(message.get("components"), f"{prefix}components")
    problems += _custom_id_problems(message.get("components"), f"{prefix}components")
    return problems


def _length(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _too_long(where: str, value: Any, limit: int) -> list[Problem]:
    if _length(value) > limit:
        return [(where, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")]
    return []


def embed_problems(embeds: Any, where: str) -> list[Problem]:
    """Per-field lengths, at most 25 fields, and 6,000 characters across all the message's embeds."""
    if not isinstance(embeds, list):
        return []
    problems: list[Problem] = []
    total = 0
    for index, embed in enumerate(_items(embeds)):
        at = f"{where}.{index}"
        for key, limit in EMBED_LIMITS.items():
            problems += _too_long(f"{at}.{key}", embed.get(key), limit)
            total += _length(embed.get(key))
        footer, author = _object(embed.get("footer")), _object(embed.get("author"))
        problems += _too_long(f"{at}.footer.text", footer.get("text"), FOOTER_LIMIT)
        problems += _too_long(f"{at}.author.name", author.get("name"), AUTHOR_NAME_LIMIT)
        total += _length(footer.get("text")) + _length(author.get("name"))
        fields = _items(embed.get("fields"))
        if len(fields) > EMBED_FIELDS_LIMIT:
            message = f"Must be {EMBED_FIELDS_LIMIT} or fewer in length."
            problems.append((f"{at}.fields", "BASE_TYPE_MAX_LENGTH", message))
        for number, field in enumerate(fields):
            problems += _too_long(f"{at}.fields.{number}.name", field.get("name"), FIELD_NAME_LIMIT)
            problems += _too_long(f"{at}.fields.{number}.value", field.get("value"), FIELD_VALUE_LIMIT)
            total += _length(field.get("name")) + _length(field.get("value"))
    if total > EMBEDS_TOTAL_LIMIT:
        # Discord's docs: "the combined sum of characters in all title, description, field.name, field.value,
        # footer.text, and author.name fields across all embeds attached to a message must not exceed 6000".
        problems.append((where, "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {EMBEDS_TOTAL_LIMIT}"))
    return problems


def _items(value: Any) -> list[JSON]:
    """A list in a body, each element as an object ({} for anything else: the schema reports that)."""
    return [_object(item) for item in value] if isinstance(value, list) else []


def _object(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def row_problems(components: Any, where: str) -> list[Problem]:
    """At most 5 action rows of at most 5 buttons (a select fills a row), and each button complete for its style."""
    rows = _items(components)
    problems: list[Problem] = []
    if len(rows) > ROWS_LIMIT:
        problems.append((where, "BASE_TYPE_MAX_LENGTH", f"Must be {ROWS_LIMIT} or fewer in length."))
    for index, row in enumerate(rows):
        if row.get("type") != ACTION_ROW:
            continue
        items = _items(row.get("components"))
        width = sum(1 if item.get("type", BUTTON) == BUTTON else ROW_WIDTH for item in items)
        if width > ROW_WIDTH:
            problems.append((
                f"{where}.{index}.components", "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                f"The specified component exceeds the maximum width of {ROW_WIDTH}",
            ))
        for number, item in enumerate(items):
            if item.get("type") == BUTTON:
                problems += button_problems(item, f"{where}.{index}.components.{number}")
    return problems


def button_problems(button: JSON, where: str) -> list[Problem]:
    """Discord's button rules: a link button has a url and no custom_id; a premium one an sku_id and neither;
    any other a custom_id and no url (docs, Components > Button)."""
    style = button.get("style")
    has_id, has_url = bool(button.get("custom_id")), bool(button.get("url"))
    problems: list[Problem] = []
    if style == LINK_STYLE:
        if not has_url:
            problems.append((f"{where}.url", "BUTTON_COMPONENT_URL_REQUIRED", "A link button requires a url"))
        if has_id:
            problems.append((
                f"{where}.custom_id", "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED", "A link button cannot have a custom_id"
            ))
    elif style == PREMIUM_STYLE:
        if not button.get("sku_id"):
            problems.append((f"{where}.sku_id", "BASE_TYPE_REQUIRED", "A premium button requires an sku_id"))
    else:
        if not has_id:
            problems.append((
                f"{where}.custom_id", "BUTTON_COMPONENT_CUSTOM_ID_REQUIRED", "A non-link button requires a custom_id"
            ))
        if has_url:
            problems.append((f"{where}.url", "BUTTON_COMPONENT_URL_NOT_ALLOWED", "Only a link button can have a url"))
    return problems


def _walk(components: Any, where: str) -> Iterator[tuple[str, JSON]]:
    for index, component in enumerate(components if isinstance(components, list) else []):
        if not isinstance(component, dict):
            continue
        at = f"{where}.{index}"
        yield at, component
        yield from _walk(component.get("components"), f"{at}.components")
        for key in ("accessory", "component"):
            if isinstance(component.get(key), dict):
                yield from _walk([component[key]], f"{at}.{key}")


def _custom_id_problems(components: Any, where: str) -> list[Problem]:
    """custom_id at most 100 characters, and unique within the message or modal (docs, Components)."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for at, component in _walk(components, where):
        custom_id = component.get("custom_id")
        if not isinstance(custom_id, str):
            continue
        problems += _too_long(f"{at}.custom_id", custom_id, CUSTOM_ID_LIMIT)
        if custom_id in seen:
            message = "Component custom id cannot be duplicated"
            problems.append((f"{at}.custom_id", "COMPONENT_CUSTOM_ID_DUPLICATED", message))
        seen.add(custom_id)
    return problems


def choice_problems(choices: Any, where: str) -> list[Problem]:
    """An autocomplete answer: at most 25 choices, each name 1-100 characters and a string value at most 100."""
    if not isinstance(choices, list):
        return []
    problems: list[Problem] = []
    if len(choices) > CHOICES_LIMIT:
        problems.append((where, "BASE_TYPE_MAX_LENGTH", f"Must be {CHOICES_LIMIT} or fewer in length."))
    for index, choice in enumerate(_items(choices)):
        if not choice.get("name"):
            problems.append((f"{where}.{index}.name", "BASE_TYPE_MIN_LENGTH", "Must be 1 or more in length."))
        problems += _too_long(f"{where}.{index}.name", choice.get("name"), CHOICE_LIMIT)
        problems += _too_long(f"{where}.{index}.value", choice.get("value"), CHOICE_LIMIT)
    return problems
