"""`python -m bot` runs the mutebot command line."""

import sys

from bot.cli import main

sys.exit(main())
