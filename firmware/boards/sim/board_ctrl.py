# The simulated board's control channel: ground truth, the operator's inputs and injected faults,
# on a loopback socket beside the serial port (never on it). JSON lines: every message is one
# object {"kind": KIND, FIELD: value, ...} with exactly the fields listed for its kind below.
# This file is the one definition: board.py imports it on the board (MicroPython), and the harness
# (host/mesosim/control.py, CPython) loads this same file by path, so neither side can drift.
# The tables are text, one kind a line then its fields: on the board's 192 KB heap (the RP2040's)
# a string costs a fraction of a dict of tuples, and the firmware's own margin is a few KB.
import json

# harness -> board
# trigger, estop: the operator presses (true) or releases it; truth?: asks for a "truth" message;
# occlude: needle resistance x factor, growing by ramp_per_s; content: what is left in the syringe;
# sensor: false, the pressure sensor reads 0 whatever the pressure; load: another syringe in the
# clamp; clamp: the clamp sensor reads reading_um whatever is loaded (-1: healed); stall: the
# firmware's next loop pass takes ms longer; hang: the firmware stops (only the watchdog saves it)
TO_BOARD = """
trigger pressed
estop pressed
truth?
occlude factor ramp_per_s
content content_nl
sensor working
load diameter_um content_nl barrel_um
clamp reading_um
stall ms
hang
"""

# board -> harness
# boot: the firmware is up, the control channel with it; took: an input or fault as the board took
# it, with board time, syringe content, whether the flash had the firmware stalled and plunger steps
# since boot at that instant (value: the input's first field); pen: a needle entry, at its exit;
# erase: the data flash began erasing a block; wdt: the firmware fed its watchdog; reset: it pulls
# its own reset line; snap: the model's physical state changed (state: handed back to the next boot,
# opaque to the harness; air_nl: what left the needle outside the skin, what a balance weighs)
FROM_BOARD = """
boot reset_cause
led code t_us
took input value t_us content_nl flash_busy forward_steps
pen t0_us t1_us volume_nl max_depth_um t1_ms reflux_nl
truth out_nl air_nl depth_um penetrations content_nl pressure_kpa last_step_us now_us forward_steps
erase t_us
wdt
reset
snap air_nl state
"""


def kinds(table):
    return [line.split()[0] for line in table.split("\n") if line]


def fields(table, kind):
    # the field names of a kind, in order; ValueError naming the kind if the table has no such kind
    start = table.find("\n%s\n" % kind)
    if start < 0:
        start = table.find("\n%s " % kind)
    if start < 0 or " " in kind or not kind:
        raise ValueError("unknown control message kind %r (known: %s)" % (kind, ", ".join(sorted(kinds(table)))))
    start += len(kind) + 1
    return table[start:table.find("\n", start)].split()


def check(table, msg):
    # msg if it is one of table's kinds with exactly its fields, else ValueError saying what is wrong
    if not isinstance(msg, dict) or not isinstance(msg.get("kind"), str):
        raise ValueError("control message without a kind: %s" % json.dumps(msg))
    kind = msg["kind"]
    names = fields(table, kind)
    if len(msg) != len(names) + 1 or [f for f in names if f not in msg]:
        missing = [f for f in names if f not in msg]
        extra = [f for f in msg if f != "kind" and f not in names]
        raise ValueError("control message %r: missing %s, unknown %s (its fields: %s)"
                         % (kind, ", ".join(missing) or "none", ", ".join(extra) or "none", ", ".join(names)))
    return msg


def encode(table, msg):
    # one line on the wire
    return json.dumps(check(table, msg)) + "\n"


def decode(table, line):
    # a line off the wire (without its newline) -> the checked message
    try:
        msg = json.loads(line)
    except ValueError:
        raise ValueError("control message is not JSON: %r" % line)
    return check(table, msg)
