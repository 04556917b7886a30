"""Command keys, one per device serial: a file readable only by this user (0600).

`mesoinject pair` writes a device's key here; the client signs every state-changing
command with it. The device never sends its key back, so this file is the host's only copy.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pathlib

import platformdirs

from mesoprotocol import spec


def default_dir() -> pathlib.Path:
    env = os.environ.get("MESOINJECT_KEYS")
    return pathlib.Path(env) if env else pathlib.Path(platformdirs.user_data_dir("mesoinject")) / "keys"


def mac(key: bytes, msg_type: int, payload_before_mac: bytes) -> bytes:
    """HMAC-SHA256 over VER TYPE and the payload before the tag, truncated (PROTOCOL.md §11)."""
    msg = bytes([spec.PROTOCOL_VERSION, msg_type]) + payload_before_mac
    return hmac.new(key, msg, hashlib.sha256).digest()[: spec.MAC_SIZE]


class KeyStore:
    def __init__(self, directory: str | os.PathLike | None = None):
        self.dir = pathlib.Path(directory) if directory else default_dir()

    def path(self, serial: str) -> pathlib.Path:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in serial)
        return self.dir / f"{safe}.key"

    def get(self, serial: str) -> bytes | None:
        try:
            key = bytes.fromhex(self.path(serial).read_text().strip())
        except (OSError, ValueError):
            return None
        return key if len(key) == spec.KEY_SIZE else None

    def put(self, serial: str, key: bytes) -> pathlib.Path:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.path(serial)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others
        with os.fdopen(fd, "w") as f:
            f.write(key.hex() + "\n")
        os.replace(tmp, path)
        return path
