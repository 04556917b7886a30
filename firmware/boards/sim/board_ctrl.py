# The simulated board's control channel: ground truth, the operator's inputs and injected faults,
# on a loopback socket beside the serial port (never on it). JSON lines: every message is one
# object {"kind": KIND, FIELD: value, ...} with exactly the fields listed for its kind here.
# This file is the one definition: board.py imports it on the board (MicroPython), and the harness
# (host/mesosim/control.py, CPython) loads this same file by path, so neither side can drift.
import json

# harness -> board
TO_BOARD = {
    "trigger": ("pressed",),  # the operator presses (true) or releases the trigger
    "estop": ("pressed",),  # the emergency stop
    "truth?": (),  # asks for a "truth" message
    "occlude": ("factor", "ramp_per_s"),  # needle resistance x factor, growing by ramp_per_s
    "content": ("content_nl",),  # what is left in the syringe
    "sensor": ("working",),  # false: the pressure sensor reads 0 whatever the pressure
    "load": ("diameter_um", "content_nl", "barrel_um"),  # another syringe in the clamp
    "clamp": ("reading_um",),  # the clamp sensor reads this whatever is loaded (-1: healed)
    "stall": ("ms",),  # the firmware's next loop pass takes this much longer
    "hang": (),  # the firmware stops running (only the watchdog saves it)
}

# board -> harness
FROM_BOARD = {
    "boot": ("reset_cause",),  # the firmware is up and the control channel with it
    "led": ("code", "t_us"),
    # an input or fault as the board took it: board time, syringe content, whether the flash had the
    # firmware stalled, plunger steps since boot - at that instant (value: the input's first field)
    "took": ("input", "value", "t_us", "content_nl", "flash_busy", "forward_steps"),
    "pen": ("t0_us", "t1_us", "volume_nl", "max_depth_um", "t1_ms"),  # a needle entry, at its exit
    "truth": ("out_nl", "air_nl", "depth_um", "penetrations", "content_nl", "pressure_kpa", "last_step_us",
              "now_us", "forward_steps"),
    "erase": ("t_us",),  # the data flash began erasing a block
    "wdt": (),  # the firmware fed its watchdog
    "reset": (),  # the firmware pulls its own reset line
    # the model's physical state changed: the harness hands state back to the next boot; air_nl is
    # what left the needle outside the skin (what a balance weighs)
    "snap": ("air_nl", "state"),
}


def check(table, msg):
    # msg if it is one of table's kinds with exactly its fields, else ValueError saying what is wrong
    if not isinstance(msg, dict) or "kind" not in msg:
        raise ValueError("control message without a kind: %s" % json.dumps(msg))
    kind = msg["kind"]
    fields = table.get(kind)
    if fields is None:
        raise ValueError("unknown control message kind %r (known: %s)" % (kind, ", ".join(sorted(table))))
    if len(msg) != len(fields) + 1:
        missing = [f for f in fields if f not in msg]
        extra = [f for f in msg if f != "kind" and f not in fields]
        raise ValueError("control message %r: missing %s, unknown %s (its fields: %s)"
                         % (kind, ", ".join(missing) or "none", ", ".join(extra) or "none", ", ".join(fields)))
    for f in fields:
        if f not in msg:
            raise ValueError("control message %r: missing %s (its fields: %s)" % (kind, f, ", ".join(fields)))
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
