# The simulated board's control channel: ground truth, the operator's inputs and injected faults,
# on a loopback socket beside the serial port (never on it). JSON lines: every message is one
# object {"kind": KIND, FIELD: value, ...} with exactly the fields listed for its kind below.
# This file is the one definition: board.py imports it on the board (MicroPython), and the harness
# (host/mesosim/control.py, CPython) loads this same file by path, so neither side can drift.
# The tables are text, one kind a line then its fields: on the board's 192 KB heap (the RP2040's)
# a string costs a fraction of a dict of tuples, and the firmware's own margin is a few KB.
import json

# harness -> board
# trigger, estop: the operator presses (true) or releases it, at_ns the harness's time.time_ns() when it
# did (the pin's edge: the board stamps it on its own clock, so latency counts from the physical event,
# not from when the firmware got round to the socket); truth?: asks for a "truth" message;
# occlude: needle resistance x factor, growing by ramp_per_s; content: what is left in the syringe;
# sensor: false, the pressure sensor reads 0 whatever the pressure; load: another syringe in the
# clamp; clamp: the clamp sensor reads reading_um whatever is loaded (-1: healed); stall: the
# firmware's next loop pass takes ms longer; hang: the firmware stops (only the watchdog saves it);
# fit_head: another needle head on the gun, dry (its ID voltage, dead volume, each needle's relative
# conductance); block: that needle's resistance x factor (1: clear); head_id: the head ID reads reading_mv
# whatever is fitted (-1: healed); head_truth?: asks for a "head_truth" message; contact: the operator holds
# the gun on the skin (true: the contact switch closed, a vacuum head sealed) or lifts it;
# load_channel: another syringe in that channel's clamp; drug_truth?: asks for a "drug_truth" message
TO_BOARD = """
trigger pressed at_ns
estop pressed at_ns
truth?
occlude factor ramp_per_s
content content_nl
sensor working
load diameter_um content_nl barrel_um
clamp reading_um
stall ms
hang
fit_head id_mv dead_nl conductance
block needle factor
head_id reading_mv
head_truth?
contact held
load_channel channel diameter_um content_nl barrel_um
drug_truth?
"""

# board -> harness
# boot: the firmware is up, the control channel with it; took: an input or fault as the board took
# it, with board time, syringe content, whether the flash had the firmware stalled and plunger steps
# since boot at that instant (value: the input's first field; edge_us: board time of the pin's edge for
# trigger/estop, else t_us); pen: a needle entry, at its exit;
# erase: the data flash began erasing a block; gap: two control passes (motors on) were us apart, ending
# at t_us, with littlefs's block reads, the flash's busy time, the process's CPU time and its time waiting
# for a CPU (Linux schedstat), the image file's I/O time, the time in serial and control-channel writes and in the idle wait
# in between; wdt: the firmware fed its watchdog; reset: it pulls
# its own reset line; snap: the model's physical state changed (state: handed back to the next boot,
# opaque to the harness; air_nl: what left the needle outside the skin, what a balance weighs);
# pen_needles: what each needle of the head put into that penetration (sent right after its pen);
# head_truth: the head fitted, its dead volume, how much of it is filled, what each needle let out;
# drug_truth: the channel selected, the drugs in the head's path (front_nl of path_front nearest the tip, then
# path_back; 3 = mixed), per drug (index = channel, 3 mixed) out of the needles, into the skin, left in its
# syringe; wrong_nl: into the skin pushed by the other channel; switch_moving: channel changes under way;
# probe: a prime's compliance estimate (est_pl -1: none, in_force_pl: the one the points now use) and what the
# firmware derived it from (compliance.Probe), beside the model's truth then (true_pl, true_lag_us, true_tau_us)
# and what the host took from the process over the prime's pass (waited_us, taken_us); tau: test_calibration recomputes it
# needle_figures: the blocked-needle watch's figures as a full dose was judged (needles.Watch, 1/16 kPa; prime or
# point, the verdict, steady reads per half) with the model's truth then: the line's flow resistance (kPa s/nL:
# x the flow is the flow pressure), the sensor's offset and noise (kPa)
FROM_BOARD = """
boot reset_cause
led code t_us
took input value t_us edge_us content_nl flash_busy forward_steps
pen t0_us t1_us volume_nl max_depth_um t1_ms reflux_nl creep_nl
truth out_nl air_nl depth_um penetrations content_nl pressure_kpa last_step_us now_us forward_steps gap tip_nl stored_nl
erase t_us
gap t_us us reads busy_us cpu_us waited_us io_us send_us idle_us taken_us asked_us
wdt
reset
snap air_nl state
pen_needles t1_us volumes_nl
head_truth id_mv dead_nl vacuum_kpa pump fill_nl needles_nl
drug_truth channel path_front front_nl path_back out_nl skin_nl content_nl wrong_nl switch_moving
probe pushed_nl est_pl in_force_pl dense split ps16 p1 i_kpa_us j16_us m1 s_split16 t_end_us p_end16 lag_us half_samples true_pl true_lag_us true_tau_us t_us waited_us taken_us
needle_figures prime verdict flow16 mean16 ref16 zero16 n1 n2 line_kpa_s_per_nl offset_kpa noise_kpa
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
