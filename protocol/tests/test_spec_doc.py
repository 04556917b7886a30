"""PROTOCOL.md's message table says what spec.py lays out: every message, its TYPE and its size."""

import pathlib
import re
import struct

from mesoprotocol import spec

DOC = (pathlib.Path(__file__).parents[1] / "PROTOCOL.md").read_text()


def documented() -> dict[str, tuple[int, int]]:
    """name -> (TYPE, payload bytes) from the message table (two messages a row)."""
    rows = re.findall(r"^\| ([A-Z_]+)(?: ✱)? \| 0x([0-9A-F]{2}) \| (\d+) \|[^|]*\| \|(?: ([A-Z_]+) \| 0x([0-9A-F]{2}) \| (\d+) \|)?",
                      DOC, re.M)
    found = {}
    for row in rows:
        for name, msg_type, size in (row[0:3], row[3:6]):
            if name:
                found[name] = (int(msg_type, 16), int(size))
    return found


def test_the_message_table_matches_the_spec():
    laid_out = {name: (msg_type, struct.calcsize("<" + "".join(f for _, f in fields)))
                for msg_type, (name, fields) in spec.MESSAGES.items()}
    assert documented() == laid_out
