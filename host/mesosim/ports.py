"""The endpoints the simulated board is reached through: raw ptys and loopback servers."""

from __future__ import annotations

import os
import socket
import tty


def raw_pty() -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(slave)  # at once: a cooked pty turns 0x0A into 0x0D 0x0A
    return master, slave


def loopback_server() -> socket.socket:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))  # loopback only
    srv.listen(1)
    return srv


def read(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except (BlockingIOError, OSError):
        return b""
