"""Logging set-up with a filter that redacts anything token-shaped before it is written."""

from __future__ import annotations

import logging
import re
import warnings

# A name that carries a secret: anything with token/secret/signature/verifier/password/nonce in it (access_token,
# oauth_token_secret, access_token_secret, client_secret, ...), an OAuth `code` or `state`, an OAuth 1.0a header
# parameter, and our link cookies. It starts after a non-name character or a percent-escape (`%3F`, `%26`: a
# query inside a URL-encoded value).
_KEY = (
    r"(?:(?<![A-Za-z0-9_\-])|(?<=%[0-9A-Fa-f]{2}))"
    r"(?:[A-Za-z0-9_\-]*(?:token|secret|signature|verifier|password|nonce)[A-Za-z0-9_\-]*|code|state|"
    r"oauth_[A-Za-z_]+|mutebot_link_[0-9a-f]+)"
)
_QUOTE = r"\\*[\"']"  # a quote, however many times it was escaped (JSON inside JSON)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # JSON and Python reprs: "state": "...", 'refresh_token': '...'
    (re.compile(rf"(?i)({_QUOTE}{_KEY}{_QUOTE}\s*:\s*{_QUOTE})[^\"'\\]*"), r"\1[redacted]"),
    # quoted assignments: OAuth 1.0a headers (oauth_token="...", oauth_signature="..."), keyword reprs (state='...')
    (re.compile(rf"(?i)({_KEY}\s*=\s*{_QUOTE})[^\"'\\]*"), r"\1[redacted]"),
    # queries and URL-encoded forms, also encoded once or twice more inside another value (%3D, %253D)
    (re.compile(rf"(?i)({_KEY}(?:=|%3D|%253D))(?![\"'\\])[^&\s\"',;)<>\\]+"), r"\1[redacted]"),
    # Authorization schemes; after the key patterns, which a key following the word would otherwise lose to it.
    (re.compile(r"(?i)\b(bearer|bot|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 [redacted]"),
    # Interaction tokens sit in Discord's webhook and callback URLs (discord.py logs those at DEBUG).
    (re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/\s?\"']+"), r"\1[redacted]"),
    # Fernet ciphertexts and Discord bot tokens have recognisable shapes.
    (re.compile(r"gAAAAA[A-Za-z0-9_\-=]{20,}"), "[redacted]"),
    (re.compile(r"[A-Za-z0-9_\-]{23,28}\.[A-Za-z0-9_\-]{6,7}\.[A-Za-z0-9_\-]{27,}"), "[redacted]"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Renders each record's message and traceback, then redacts them in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def setup_logging(level: str = "INFO", handler: logging.Handler | None = None) -> logging.Handler:
    """Install one redacting handler on the root logger (replacing earlier ones of ours)."""
    root = logging.getLogger()
    handler = handler or logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    for existing in list(root.handlers):
        if getattr(existing, "_mutebot", False):
            root.removeHandler(existing)
    handler._mutebot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # discord.py and aiohttp are chatty at DEBUG; keep their noise at INFO unless asked.
    for name in ("discord.gateway", "discord.http", "aiohttp.access"):
        logging.getLogger(name).setLevel(max(logging.getLevelName(level), logging.INFO))
    return handler


# discord.py logs these once per process when a voice library is missing; mutebot has no voice features.
_VOICE_NOTICES = frozenset({
    "PyNaCl is not installed, voice will NOT be supported",
    "davey is not installed, voice will NOT be supported",
})


class VoiceNoticeFilter(logging.Filter):
    """Drops exactly discord.py's notices about missing voice libraries, nothing else from discord.client."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in _VOICE_NOTICES


def quiet_start_up_noise() -> None:
    """Silence the start-up notices an operator cannot act on. Called once, when `bot` is imported."""
    # authlib's deprecate module runs warnings.simplefilter("always", AuthlibDeprecationWarning) when imported, which
    # would sit in front of any filter installed earlier: import it first, then put ours in front of it. Its httpx
    # integration warns once, when first imported, so let that happen here, under our filter; once imported it never
    # warns again, whatever filters a caller (pytest, per test) installs later.
    from authlib.deprecate import AuthlibDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The httpx module is deprecated", category=AuthlibDeprecationWarning)
        import authlib.integrations.httpx_client  # noqa: F401
    client_log = logging.getLogger("discord.client")
    if not any(isinstance(f, VoiceNoticeFilter) for f in client_log.filters):
        client_log.addFilter(VoiceNoticeFilter())
