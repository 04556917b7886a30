"""The simulated board's end of its control channel (board_ctrl.py on the MicroPython VM, from the staged
sim image): it refuses what is outside the schema with the very words the harness uses, and what it
encodes the harness decodes."""

import json
import subprocess

from mesosim import control
from mesosim.harness import micropython_binary

BAD_LINES = ['{"kind": "bogus"}', '{"kind": "load", "diameter_um": 4700}', '{"kind": "hang", "now": 1}',
             '[1, 2]', 'trigger 1']

SCRIPT = """
import json, board_ctrl
out = []
for line in %r:
    try:
        board_ctrl.decode(board_ctrl.TO_BOARD, line)
        out.append(None)
    except ValueError as e:
        out.append(str(e))
snap = board_ctrl.encode(board_ctrl.FROM_BOARD, {"kind": "snap", "air_nl": 0.1, "state": {"gap": 1.5, "pen_t0": 7}})
print(json.dumps({"errors": out, "snap": snap}))
"""


def test_the_board_refuses_what_the_harness_refuses_in_the_same_words(flash):
    proc = subprocess.run([micropython_binary(), "-c", SCRIPT % (BAD_LINES,)], cwd=flash, env={"MICROPYPATH": str(flash)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    schema = control.schema()
    harness = []
    for line in BAD_LINES:
        try:
            schema.decode(schema.TO_BOARD, line)
            harness.append(None)
        except ValueError as e:
            harness.append(str(e))
    assert None not in got["errors"]
    assert got["errors"] == harness
    assert "unknown control message kind 'bogus'" in got["errors"][0]
    assert "'load': missing content_nl, barrel_um" in got["errors"][1]
    assert schema.decode(schema.FROM_BOARD, got["snap"].rstrip("\n")) == {
        "kind": "snap", "air_nl": 0.1, "state": {"gap": 1.5, "pen_t0": 7}}
