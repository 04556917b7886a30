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


def test_configure_values_are_named_in_layout_order():
    layout = [name for name, _ in spec.MESSAGES[spec.CONFIGURE][1]]
    named = {name[len("CFG_"):].lower(): getattr(spec, name) for name in dir(spec) if name.startswith("CFG_")}
    wire = {"needle_length": "needle_length_um", "depth": "depth_um", "volume": "volume_nl", "cadence": "cadence_mhz",
            "flow": "flow_nl_s", "vacuum": "vacuum_kpa", "session_cap": "session_cap_nl"}
    assert {wire.get(name, name): index for name, index in named.items()} == {
        name: index for index, name in enumerate(layout[: len(named)])}
