"""mutebot: mute X accounts from Discord, alone or through moderator-curated lists."""

__version__ = "0.1.0"
