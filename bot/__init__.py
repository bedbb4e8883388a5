"""mutebot: mute X accounts from Discord, alone or through moderator-curated lists."""

from bot.logs import quiet_start_up_noise

__version__ = "0.1.0"

quiet_start_up_noise()
