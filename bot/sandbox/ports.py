"""Free loopback ports for the stand-ins and the bot, chosen where outgoing connections never take theirs."""

from __future__ import annotations

import os
import random
import socket

# Below Linux's default ephemeral range (32768-60999): a port handed out here and bound a moment later cannot have
# been taken meanwhile as the local end of one of the many client connections a test opens.
LOW, HIGH = 20000, 32767
# The stand-ins' accept queue. aiohttp's default (128) is a small server's: 500 commands answered at once open
# several hundred connections in a moment, the kernel drops the SYNs past 128, and each dropped client waits out
# TCP's 1 s retransmission. X and Discord answer behind load balancers that never do that, so neither do their
# stand-ins (the kernel caps it at net.core.somaxconn, 4096 by default).
LISTEN_BACKLOG = 4096
_handed_out: set[int] = set()
_random = random.Random(os.getpid())


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, not handed out before by this process."""
    for _ in range(200):
        port = _random.randint(LOW, HIGH)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded range: let the kernel choose
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
