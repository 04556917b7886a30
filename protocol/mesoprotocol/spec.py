# mesoinject wire protocol: the single source of message ids, layouts, limits and codes.
# Imported unchanged by the host (CPython) and the firmware (MicroPython), so it
# uses only what both have: no typing, no enum, no dataclasses.
# PROTOCOL.md is the prose for this file; when they disagree this file wins.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # micropython.const's signature, for CPython
        return x


PROTOCOL_VERSION = const(1)

# ---- framing -----------------------------------------------------------------
# SYNC0 SYNC1 | LEN VER TYPE SEQ | PAYLOAD[LEN] | CRC16 (LE, over LEN..PAYLOAD)
SYNC0 = const(0xA5)
SYNC1 = const(0x5A)
HEADER_SIZE = const(6)  # sync(2) len ver type seq
CRC_SIZE = const(2)
MAX_PAYLOAD = const(96)
MAX_FRAME = const(104)  # HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
INTERBYTE_TIMEOUT_MS = const(100)  # a partial frame older than this is discarded
EVENT_RING = const(16)  # the device keeps its last 16 events for EVENTS (a power of 2: 256 % 16 == 0)


def crc16(data, start=0, end=None):
    # CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout) of data[start:end];
    # indexed, not sliced: the firmware checks frames in place, with no allocation.
    crc = 0xFFFF
    for i in range(start, len(data) if end is None else end):
        crc ^= data[i] << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        crc &= 0xFFFF
    return crc


# Struct codes of the message fields, by name. A tuple of literals only is a constant, and an .mpy (the
# image a board runs) loads every string inside a constant tuple as a heap object of its own (~48 B each
# on the 64-bit unix port, ~32 B on the chip), where a tuple built at import takes the interned name: these
# names in the layouts below keep about 10 KB of the firmware's heap (64-bit; 5 KB on the chip) free.
_U8 = "B"
_U16 = "H"
_U32 = "I"
_I32 = "i"
_BYTES8 = "8s"
_BYTES12 = "12s"
_BYTES16 = "16s"

# ---- message types -------------------------------------------------------------
# 0x01-0x3F: host -> device commands; each gets exactly one reply with the same SEQ
# (ACK, NACK, IDENTITY or STATUS). 0x80-0xBF: device -> host replies and events.
HELLO = const(0x01)
CONFIGURE = const(0x02)
PRIME = const(0x03)
ARM = const(0x04)
PAUSE = const(0x05)
RESUME = const(0x06)
ABORT = const(0x07)
STATUS = const(0x08)
SETTINGS = const(0x09)
CALIBRATE = const(0x0A)
RECORDS = const(0x0B)  # acknowledge a stored record, get the oldest unacknowledged one
EVENTS = const(0x0C)  # send again the events from this sequence number (ones the host missed)
REPL = const(0x0D)  # in pairing mode only: ACK, the key is erased, the board resets into its REPL for one boot
PAIR = const(0x0E)  # provision the command key; only in pairing mode (a physical action on the gun)
OPEN = const(0x0F)  # open this host's session: the one controlling host (PROTOCOL.md 11)
CLOSE = const(0x10)  # end this host's session
POLL = const(0x11)  # STATUS from the controlling host: the heartbeat that feeds the link watchdog
LINE_TEST = const(0x12)  # the syringe's line capped: measure the sensor's lag, the stopper's compliance and creep

ACK = const(0x80)
IDENTITY = const(0x81)
STATUS_REPLY = const(0x82)
DELIVERY = const(0x83)
ALARM = const(0x84)
STATE = const(0x85)
RECORD = const(0x86)  # reply to RECORDS: one journal record
LINE_RESULT = const(0x87)  # event: a line test's outcome and figures
NACK = const(0x8F)
REPLIES = (ACK, NACK, IDENTITY, STATUS_REPLY, RECORD)  # answers to a command; the rest are events
UNCACHED = (HELLO, STATUS, EVENTS)  # answered afresh every time, never from the reply cache (PROTOCOL.md 3)

# ---- device states (PROTOCOL.md draws the machine) --------------------------------
STATE_IDLE = const(0)
STATE_CONFIGURED = const(1)
STATE_PRIMING = const(2)
STATE_PRIMED = const(3)
STATE_ARMED = const(4)
STATE_DELIVERING = const(5)
STATE_PAUSED = const(6)
STATE_COMPLETE = const(7)
STATE_FAULT = const(8)

TECHNIQUE_POINT = const(1)  # one trigger press = one dose
TECHNIQUE_NAPPAGE = const(2)  # trigger held = shots at a cadence
TECHNIQUE_TEST_DOSE = const(3)  # one small allergy-test point

# every KIND_* < 16: the journal keeps the syringe measured in the high nibble of its kind byte
KIND_POINT = const(1)
KIND_SHOT = const(2)
KIND_TEST_DOSE = const(3)
KIND_PRIME = const(4)  # into the air, never counted as delivered to the patient
# journal records that are not deliveries (RECORD only): point = the code, programmed_nl = the detail
KIND_ALARM = const(5)  # point = ALARM_*, programmed_nl = the ALARM's detail as u32 (two's complement)
KIND_END = const(6)  # a program ended on the device: point = END_*, programmed_nl = points or shots done
DELIVERY_KINDS = (KIND_POINT, KIND_SHOT, KIND_TEST_DOSE, KIND_PRIME)
END_COMPLETE = const(1)  # the program reached COMPLETE: every point given (fewer only if the session cap stopped it)
END_ABORTED = const(2)  # ABORT before the program completed

FLAG_PARTIAL = const(0x01)  # stopped before the programmed volume
FLAG_TRIGGER_RELEASED = const(0x02)
FLAG_ABORTED = const(0x04)  # stopped by ABORT, PAUSE or any alarm
FLAG_FAULT = const(0x08)
FLAG_POWER_LOST = const(0x10)  # power failed mid-point: delivered is the last journal checkpoint
FLAG_CONTACT_LOST = const(0x20)  # skin contact (switch, or the head's vacuum) lost mid-dose: stopped in that tick
FLAG_UNCALIBRATED = const(0x40)  # the syringe was not calibrated: delivered is an estimate from the table's bore

# ---- NACK reasons ------------------------------------------------------------------
NACK_UNKNOWN_TYPE = const(1)
NACK_BAD_LENGTH = const(2)
NACK_BAD_VERSION = const(3)
NACK_BAD_STATE = const(4)  # limit = bitmask of states that accept the command
NACK_LIMIT = const(5)  # field, value and limit name the broken limit
NACK_BAD_VALUE = const(6)  # not a known code (technique, syringe...)
NACK_INFEASIBLE = const(7)  # each value legal, the combination is not
NACK_HELLO_FIRST = const(8)  # after LINK_LOST only a new handshake (HELLO) re-opens the device
NACK_JOURNAL_FULL = const(9)  # value = records the journal can take, limit = records the program needs
NACK_AUTH = const(10)  # field 0: not paired; the counter's: replayed or old (limit = last accepted); the mac's: wrong key
NACK_NOT_PAIRING = const(11)  # PAIR outside pairing mode
NACK_SYRINGE = const(12)  # the clamp sensor measures another syringe: value = the command's (or program's) syringe
#                           code, limit = the barrel diameter measured in um (0: no reading)
NACK_OTHER_HOST = const(13)  # OPEN while another host's session is live: value = ms since it was heard, limit = lapse ms
NACK_NO_SESSION = const(14)  # a session command outside the open session: value = its session, limit = 1 if one is open
NACK_HEAD = const(15)  # the head's ID resistor reads another head: value = the command's (or program's) head code,
#                        limit = the ID voltage read, mV (no head's band: none fitted, or a fault)
NACK_CHANNEL = const(16)  # the needle path holds the other channel's drug (PRIME at least the head's dead volume of
#                           this one first), or the board has no such channel: value = the command's (or program's)
#                           channel (PRIME: its volume), limit = the channel in the path (PRIME: the dead volume)

# ---- alarms --------------------------------------------------------------------------
ALARM_LINK_LOST = const(1)  # no command for link_timeout_ms while priming, armed or delivering
ALARM_TRIGGER_STUCK = const(2)
ALARM_OCCLUSION = const(3)
ALARM_SYRINGE_EMPTY = const(4)
ALARM_ESTOP = const(5)
ALARM_RESET = const(6)
ALARM_JOURNAL_FULL = const(7)  # no room to journal the next point: it is not given
ALARM_SYRINGE = const(8)  # the clamp sensor no longer measures the program's syringe (swapped, out, or a sensor
#                           fault: a reading in no syringe's band); detail = barrel diameter measured, um
ALARM_HEAD = const(9)  # the head's ID no longer reads the program's head (changed, off, or a fault); detail = mV read
ALARM_NEEDLE_BLOCKED = const(10)  # a multi-needle head's dispense pressure rose past its baseline: a needle is
#                                   (partly) blocked, its dose went to the others; detail = the cycle's mean kPa

RESET_POWER_ON = const(0)
RESET_SOFT = const(1)
RESET_WATCHDOG = const(2)
# the persistent boot counter (IDENTITY, STATUS_REPLY, ALARM `boot_count`) counts modulo 2^30: a small int on a
# 32-bit MCU, and a boot loop of one boot a second takes 34 years to wrap it, so (serial, journal epoch,
# boot_count) names one boot of a device and the host stores each boot's RESET once under it
BOOT_COUNT_MOD = const(1 << 30)

# status indicator on the gun (a board output, also seen by the simulator's operator)
LED_OFF = const(0)
LED_READY = const(1)  # armed: press the trigger
LED_DELIVERING = const(2)
LED_COMPLETE = const(3)
LED_FAULT = const(4)
LED_PAIRING = const(5)  # pairing mode is open (PAIR accepted)

# ---- hard limits: the firmware enforces these whatever the host sends ----------------
MIN_DEPTH_UM = const(500)
MAX_DEPTH_UM = const(4000)  # never deeper than 4 mm
NEEDLE_MARGIN_UM = const(200)  # depth <= needle length - margin (hub seating)
MIN_VOLUME_NL = const(500)
# every board's mechanics that a program rule depends on (rules.py): the host checks with the same figures
PLUNGER_STEPS_PER_MM = const(3200)  # 200 steps/rev x 16 microsteps on a 1 mm lead screw
NEEDLE_SPEED_UM_S = const(50000)  # needle axis travel speed (nappage feasibility)
# CONFIGURE's program values by name: their index in the values tuple (the firmware keeps it as it
# came); a NACK's `field` is this + 1. test_spec_doc checks them against the layout.
CFG_TECHNIQUE = const(0)
CFG_SYRINGE = const(1)
CFG_HEAD = const(2)
CFG_NEEDLE_LENGTH = const(3)
CFG_DEPTH = const(4)
CFG_VOLUME = const(5)
CFG_COUNT = const(6)
CFG_CADENCE = const(7)
CFG_FLOW = const(8)
CFG_VACUUM = const(9)
CFG_CHANNEL = const(10)
CFG_SESSION = const(11)
CFG_SESSION_CAP = const(12)
FLUSH_VOLUMES = const(2)  # a prime into a path holding the other drug pushes this many dead volumes (the interface mixes)
CHANNELS = const(2)  # syringe channels (two drugs), each its own syringe and plunger axis into the one needle path
MIN_DOSE_STEPS = const(100)  # a dose's steps are rounded with a carried remainder (< 1 step off): 1 % needs 100
MAX_POINT_NL = const(50000)  # point-by-point default: 20-50 uL per point
CEIL_POINT_NL = const(200000)  # no setting can allow more than 0.2 mL in one point
MAX_TEST_DOSE_NL = const(20000)
MAX_SHOT_NL = const(10000)  # nappage shots are a few uL
MAX_SESSION_NL = const(5000000)
MAX_POINTS = const(500)
MAX_SHOTS = const(5000)
MIN_CADENCE_MHZ = const(500)
MAX_CADENCE_MHZ = const(12000)  # 12 shots per second (mesoguns top out near 9)
MIN_FLOW_NL_S = const(1000)
MAX_FLOW_NL_S = const(100000)  # plunger speed ceiling, 100 uL/s
MAX_PRIME_NL = const(200000)
LINK_TIMEOUT_MS = const(500)
MIN_LINK_TIMEOUT_MS = const(100)
MAX_LINK_TIMEOUT_MS = const(5000)
# a calibration may correct the table's bore area by +-8 %: a real bore is +-3 % off its maker's nominal and
# makers' nominals differ from the table by up to 2 % (area +-6 % and more); beyond, it is another syringe
MIN_CAL_PPM = const(920000)
MAX_CAL_PPM = const(1080000)
OCCLUSION_KPA = const(400)  # line pressure that means a blocked needle or line (max flow runs ~170)
RELIEF_KPA = const(20)  # after an occlusion the plunger backs off to this pressure
MAX_RELIEF_NL = const(5000)  # ...by at most this volume
SHOT_SETTLE_MS = const(10)  # a nappage shot waits this long at most for line pressure to settle
POINT_SETTLE_MS = const(100)  # a point, this long (both count in the nappage feasibility rule)
JOURNAL_CHECKPOINT_NL = const(1000)  # a dose in progress is journalled this often, and 4 times a dose at least
TRIGGER_STUCK_MS = const(2000)  # held this long beyond what a point needs -> TRIGGER_STUCK
SYRINGE_SENSOR_MS = const(30)  # the clamp must disagree with the program this long before it counts (not one sample)
HEAD_SENSOR_MS = const(30)  # the head ID must disagree with the program this long before it counts
HEAD_NEEDLE_SPREAD_PCT = const(8)  # a head's needles' conductances within +-this % of nominal (one lot's bore tolerance)
#                             (its first full cycle after priming) means a blocked needle
CADENCE_SLACK_DIV = const(10)  # a nappage shot may make up at most period / 10 of lateness: no catch-up
# skin contact: a single-needle head has a contact switch; a multi-needle head draws the skin onto its needles
# with a vacuum pump and a pressure sensor. A dose starts only with contact held and stops in the control pass
# that finds it lost (FLAG_CONTACT_LOST).
MIN_VACUUM_KPA = const(10)  # below ambient: less does not hold skin on the needles
MAX_VACUUM_KPA = const(60)  # more bruises (suction devices for skin stay within ~60 kPa)
VACUUM_HYST_KPA = const(5)  # the pump runs until the vacuum is this far past the program's level

# ---- device settings: limits a device may lower, never raise past the hard ceiling --------
# (field, struct code, default, lowest allowed, hard ceiling). SETTINGS carries them in
# this order; IDENTITY reports the ones in force; the device keeps them on its flash.
SETTINGS_TABLE = (
    ("max_point_nl", _U32, MAX_POINT_NL, MIN_VOLUME_NL, CEIL_POINT_NL),
    ("max_shot_nl", _U32, MAX_SHOT_NL, MIN_VOLUME_NL, MAX_SHOT_NL),
    ("max_session_nl", _U32, MAX_SESSION_NL, MIN_VOLUME_NL, MAX_SESSION_NL),
    ("max_depth_um", _U16, MAX_DEPTH_UM, MIN_DEPTH_UM, MAX_DEPTH_UM),
    ("max_cadence_mhz", _U16, MAX_CADENCE_MHZ, MIN_CADENCE_MHZ, MAX_CADENCE_MHZ),
    ("max_flow_nl_s", _U32, MAX_FLOW_NL_S, MIN_FLOW_NL_S, MAX_FLOW_NL_S),
    ("link_timeout_ms", _U16, LINK_TIMEOUT_MS, MIN_LINK_TIMEOUT_MS, MAX_LINK_TIMEOUT_MS),
    ("max_vacuum_kpa", _U16, MAX_VACUUM_KPA, MIN_VACUUM_KPA, MAX_VACUUM_KPA),
)
SET_POINT = const(0)  # indexes into SETTINGS_TABLE
SET_SHOT = const(1)
SET_SESSION = const(2)
SET_DEPTH = const(3)
SET_CADENCE = const(4)
SET_FLOW = const(5)
SET_LINK_TIMEOUT = const(6)
SET_VACUUM = const(7)
_SETTING_FIELDS = tuple((row[0], row[1]) for row in SETTINGS_TABLE)
# ---- authentication: commands that change state or move fluid end with a counter and a MAC ------
# mac = HMAC-SHA256(key, VER TYPE payload-before-the-mac)[:8]. OPEN's counter is the device's
# (> every one it accepted, kept on flash); OPEN ACKed opens a session whose id is that counter.
# Every other signed command (SESSION_COMMANDS) also carries the session id before the counter,
# and its counter counts within the session (> the last one accepted in it). One session at a
# time: only its traffic feeds the link watchdog (PROTOCOL.md 8, 11).
# HELLO, STATUS, PAUSE, ABORT and EVENTS stay open: anyone may look, and anyone may stop the device.
AUTHENTICATED = (CONFIGURE, PRIME, ARM, RESUME, SETTINGS, CALIBRATE, RECORDS, REPL, OPEN, CLOSE, POLL, LINE_TEST)
SESSION_COMMANDS = (CONFIGURE, PRIME, ARM, RESUME, SETTINGS, CALIBRATE, RECORDS, REPL, CLOSE, POLL, LINE_TEST)
KEY_SIZE = const(16)
MAC_SIZE = const(8)
AUTH_SIZE = const(12)  # counter u32 + mac, the end of every signed payload
SESSION_SIZE = const(4)  # host_session u32, just before the counter (SESSION_COMMANDS)
RAW_FIELDS = ("key", "mac")  # byte strings, not text
_SIGNED = (("counter", _U32), ("mac", _BYTES8))  # the end of every signed payload
_SESSION_SIGNED = (("host_session", _U32),) + _SIGNED  # ... of a session command
PAIRING_HOLD_MS = const(3000)  # E-stop pressed and trigger held this long: pairing mode...
PAIRING_WINDOW_MS = const(60000)  # ...for this long, or until a PAIR

# a delivery, as DELIVERY sends it and RECORD returns it from the journal
_DELIVERY_FIELDS = (
    ("record_id", _U32),  # unique and increasing per device, across reboots
    ("session", _U32),  # CONFIGURE's session tag (0: prime before any CONFIGURE)
    ("point", _U16),  # 0-based point or shot index in the program
    ("kind", _U8),  # KIND_*
    ("flags", _U8),  # FLAG_*
    ("programmed_nl", _U32),
    ("delivered_nl", _U32),
    ("depth_um", _U16),
    ("time_ms", _U32),  # device clock at the end of the point
    ("syringe", _U8),  # the syringe the clamp sensor confirmed loaded (SYRINGES code; 0: earlier firmware)
    ("channel", _U8),  # the syringe channel it came from (0: earlier firmware, alarm and end records)
    ("epoch", _U32),  # the journal's epoch: a record is (epoch, record_id), unique per device
)

_VACUUM = (("vacuum_kpa", _U8),)  # the least vacuum held while the dose ran (multi-needle heads); 0: switch head,
# prime, alarm and end records, earlier firmware's records

# what the host's encoder puts in a field its caller leaves out (CPython only): a one-channel program of before
FIELD_DEFAULTS = {CONFIGURE: {"channel": 1}, DELIVERY: {"channel": 0}, RECORD: {"channel": 0, "vacuum_kpa": 0}}

# Each message: (name, ((field, struct code), ...)). Little-endian, packed.
# Units live in the field names: _nl nanolitres, _um micrometres, _ms milliseconds,
# _mhz millihertz, _nl_s nanolitres per second. Never floats.
MESSAGES = {
    HELLO: ("HELLO", ()),
    CONFIGURE: (
        "CONFIGURE",
        (
            ("technique", _U8),  # TECHNIQUE_*
            ("syringe", _U8),  # SYRINGES code
            ("head", _U8),  # HEADS code: the needle head fitted (its ID resistor is read)
            ("needle_length_um", _U16),  # the head's needle length: must be the HEADS table's (a check)
            ("depth_um", _U16),
            ("volume_nl", _U32),  # per point (per cycle: all the head's needles), or per shot in nappage
            ("count", _U16),  # points, or shots in nappage
            ("cadence_mhz", _U16),  # nappage shots per 1000 s; 0 otherwise
            ("flow_nl_s", _U32),  # plunger flow while dispensing
            ("vacuum_kpa", _U8),  # multi-needle heads: the vacuum that holds the skin on the needles; 0: contact switch
            ("channel", _U8),  # the syringe channel (1 or CHANNELS) whose drug the program gives
            ("session", _U32),  # the host's tag for this session, journalled with every record (not 0)
            ("session_cap_nl", _U32),  # this session's total cap (a plan's total); 0: max_session_nl alone
        ) + _SESSION_SIGNED,
    ),
    PRIME: ("PRIME", (("volume_nl", _U32),) + _SESSION_SIGNED),
    ARM: ("ARM", _SESSION_SIGNED),
    PAUSE: ("PAUSE", ()),
    RESUME: ("RESUME", _SESSION_SIGNED),
    ABORT: ("ABORT", ()),
    STATUS: ("STATUS", ()),
    SETTINGS: ("SETTINGS", _SETTING_FIELDS + _SESSION_SIGNED),
    CALIBRATE: (
        "CALIBRATE",
        (
            ("syringe", _U8),
            ("area_ppm", _U32),  # effective bore area / table area, parts per million
        ) + _SESSION_SIGNED,
    ),
    RECORDS: ("RECORDS", (("ack_id", _U32),) + _SESSION_SIGNED),  # record_id the host has committed; 0 = none
    EVENTS: ("EVENTS", (("from_seq", _U8),)),  # the first event SEQ the host has not received
    REPL: ("REPL", _SESSION_SIGNED),
    PAIR: ("PAIR", (("key", _BYTES16),)),  # never readable back
    OPEN: ("OPEN", _SIGNED),  # signed with the device's counter; the session id is that counter
    CLOSE: ("CLOSE", _SESSION_SIGNED),
    POLL: ("POLL", _SESSION_SIGNED),  # reply STATUS_REPLY
    LINE_TEST: ("LINE_TEST", _SESSION_SIGNED),  # ACK, then LINE_RESULT when the test has ended
    ACK: ("ACK", (("command", _U8), ("state", _U8))),
    NACK: (
        "NACK",
        (
            ("command", _U8),
            ("reason", _U8),  # NACK_*
            ("field", _U8),  # 1-based index into the command's fields; 0 = none
            ("state", _U8),
            ("value", _U32),  # offending value as received (every command field is unsigned)
            ("limit", _U32),  # the limit it broke (BAD_STATE: bitmask of states that accept it)
        ),
    ),
    IDENTITY: (
        "IDENTITY",
        (
            ("protocol", _U8),
            ("fw_major", _U8),
            ("fw_minor", _U8),
            ("fw_patch", _U8),
            ("board", _BYTES12),
            ("serial", _BYTES12),
            ("syringe", _U8),  # currently configured syringe code, 0 = none
            ("cal_ppm", _U32),  # that syringe's calibration (CALIBRATE), 1000000 = as the table
            ("reset_cause", _U8),  # RESET_*
        ) + _SETTING_FIELDS + (  # the device's limits in force
            ("boot_count", _U32),  # this boot: the persistent boot counter (mod BOOT_COUNT_MOD)
            ("journal_free", _U16),  # records the journal can take before the host acknowledges more
            ("build", _U32),  # build id `mesoinject flash` wrote in /build.json (8 hex digits); 0: a source image
            ("paired", _U8),  # 1: the device has a command key (PAIR)
            ("auth_counter", _U32),  # the highest command counter accepted: the next must be greater
            ("journal_epoch", _U32),  # drawn when the journal was created: record ids count within it
            ("journal_area", _U16),  # entry slots of the journal's append area (no erase in a dose); 0: none
        ),
    ),
    STATUS_REPLY: (
        "STATUS_REPLY",
        (
            ("state", _U8),  # STATE_*
            ("alarm", _U8),  # active ALARM_* code, 0 = none
            ("trigger", _U8),  # 1 while the trigger is held
            ("technique", _U8),
            ("done", _U16),  # points or shots delivered this program
            ("planned", _U16),
            ("delivered_nl", _U32),  # this program, partial points included
            ("syringe_left_nl", _U32),
            ("depth_um", _U16),  # current needle depth
            ("rx_errors", _U16),  # byte runs dropped: bad CRC, oversize length, interbyte timeout
            ("time_ms", _U32),  # device clock
            ("unacked", _U16),  # journal records the host has not acknowledged (RECORDS)
            ("next_event_seq", _U8),  # SEQ the next event will carry: the host sees what it missed
            ("boot_count", _U32),  # this boot (IDENTITY boot_count): a new value means the event SEQs restarted
            ("overruns", _U16),  # control passes, while anything moved, longer than their 1 ms tick (saturates)
            ("worst_pass_us", _U32),  # the longest such pass (overrun or not), us; both since boot
            ("lag_ms", _U32),  # since boot, how far the moves ran behind their commanded rate (late passes), ms
        ),
    ),
    DELIVERY: ("DELIVERY", _DELIVERY_FIELDS + _VACUUM),
    # a journalled DELIVERY (record_id 0: none left); vacuum_kpa journalled with it (and with its checkpoints:
    # a point cut by power keeps the least vacuum held until then)
    RECORD: ("RECORD", _DELIVERY_FIELDS + _VACUUM + (("pending", _U16),)),
    ALARM: (
        "ALARM",
        (
            ("code", _U8),
            ("state", _U8),
            ("detail", _I32),
            ("time_ms", _U32),
            ("record_id", _U32),  # its journal record (KIND_ALARM), acknowledged by RECORDS; 0: not journalled
            ("epoch", _U32),
            ("boot_count", _U32),  # the boot it was raised in (RESET: the boot it starts): one RESET per boot
        ),
    ),
    STATE: ("STATE", (("old", _U8), ("new", _U8), ("time_ms", _U32))),
    LINE_RESULT: (
        "LINE_RESULT",
        (
            ("outcome", _U8),  # LINE_*
            ("syringe", _U8),  # the syringe tested (SYRINGES code)
            ("lag_us", _U16),  # the pressure sensor's time constant (0: not measured)
            ("compliance_pl", _U32),  # the stopper's and barrel's fast compliance, pL/kPa (0: not measured)
            ("creep_permille", _U16),  # the stopper's slow (creep) compliance, per mille of the fast one
            ("creep_ms", _U16),  # the time constant it takes volume with (0: no creep seen)
            ("step_kpa16", _U16),  # the pressure step the test pushed, 1/16 kPa
            ("peak_kpa", _U16),  # the highest line pressure it read
        ),
    ),
}


def layout(msg_type):
    # struct format string and field names of a message type
    fields = MESSAGES[msg_type][1]
    return "<" + "".join(f[1] for f in fields), tuple(f[0] for f in fields)




# ---- line test (LINE_TEST, PROTOCOL.md 4): the syringe's outlet capped, the plunger pushes one pressure step
# and holds it. The sensor's reading after the step is its own lag alone (the capped line does not move), the
# step's size per volume is the stopper's compliance, and the hold's slow fall is its creep: what a prime, whose
# line empties through the needle in the same few ms as the sensor's lag, cannot tell apart (compliance.py)
LINE_OK = const(0)
LINE_OPEN = const(1)  # the pressure never rose within the play: no cap on the outlet, or an empty syringe
LINE_LEAK = const(2)  # the held pressure fell further than a stopper's creep lets it: a loose cap or a leak
LINE_STOPPED = const(3)  # an E-stop, ABORT or alarm ended it; the plunger backed off all it had pushed
LINE_ONSET_KPA = const(8)  # the pusher has met the stopper once the line reads this
LINE_STEP_KPA = const(60)  # the measured step (sized by a first, smaller one: never past LINE_MAX_KPA)
LINE_MAX_KPA = const(150)  # the test never pushes a capped line past this (a syringe holds several bar)
LINE_HOLD_MS = const(1200)  # the hold that shows the creep (3 blocks of 400 ms)


# ---- syringe table: code -> (name, inner diameter um, usable stroke um, dead space nL, barrel outer diameter um) --
# Nominal bores as infusion-pump drug libraries list them; a calibration (CALIBRATE)
# corrects each syringe's real bore. Dead space stays in the hub when the stopper
# is at the end of its stroke: it is never deliverable. The barrel's outer diameter is what
# the clamp sensor measures (as an infusion pump's syringe-size sensor does): a reading within
# SYRINGE_BARREL_TOL_UM of it fits. Syringes of one size from different makers fit the same
# band (BD, Terumo and Omnifix 1 mL): the sensor tells sizes apart, the program names the maker.
SYRINGES = {
    1: ("BD 1 mL", 4780, 57000, 70000, 6600),
    2: ("BD 3 mL", 8660, 51000, 80000, 10700),
    3: ("BD 5 mL", 12060, 44000, 80000, 14500),
    4: ("BD 10 mL", 14500, 61000, 100000, 17200),
    5: ("Terumo 1 mL", 4700, 58000, 60000, 6500),
    6: ("Terumo 2.5 mL", 8950, 40000, 80000, 10900),
    7: ("B. Braun Omnifix 1 mL", 4690, 58000, 60000, 6400),
    8: ("B. Braun Omnifix 5 mL", 12450, 41000, 80000, 14700),
}
SYRINGE_BARREL_TOL_UM = const(600)  # sensor and moulding tolerance; the size classes are >= 2.5 mm apart


# Syringe maths in integers only, the same on the host (CPython) and on the device (MicroPython,
# whose floats are single precision on rp2 and esp32 and disagreed with the host's by 1-2 nL at a
# limit): pi is 355/113 (7 digits, error 8.5e-8). Intermediates pass 2^30, which a 32-bit port
# holds as a heap integer: these run per CONFIGURE or CALIBRATE, never in the dosing loop.
PI_NUM = const(355)
PI_DEN = const(113)


def syringe_capacity_nl(code, cal_ppm=1000000):
    # deliverable content of a full syringe: pi/4 d^2 x stroke (um^3 = fL; / 10^6 -> nL), scaled
    # by the bore's calibration (area ppm), rounded down, less dead space
    diameter_um, stroke_um, dead_nl = SYRINGES[code][1:4]
    num = PI_NUM * diameter_um * diameter_um * stroke_um * cal_ppm
    return num // (PI_DEN * 4 * 1000000 * 1000000) - dead_nl


def pl_per_step(code, plunger_steps_per_mm, cal_ppm=1000000):
    # picolitres pushed out per plunger microstep, rounded to nearest: pi/4 d^2 (um^2, calibrated)
    # x 1000 / steps_per_mm (um per step) = fL; / 1000 -> pL
    diameter_um = SYRINGES[code][1]
    num = PI_NUM * diameter_um * diameter_um * cal_ppm
    den = PI_DEN * 4 * 1000000 * plunger_steps_per_mm
    return (2 * num + den) // (2 * den)


def syringe_fits(code, barrel_um):
    # does a barrel measured at barrel_um fit syringe `code`? (0: no reading fits nothing)
    d = SYRINGES[code][4] - barrel_um
    return barrel_um > 0 and -SYRINGE_BARREL_TOL_UM <= d <= SYRINGE_BARREL_TOL_UM


def syringes_fitting(barrel_um):
    # codes of every syringe a barrel measured at barrel_um may be (empty: a sensor fault or no syringe)
    return [code for code in sorted(SYRINGES) if syringe_fits(code, barrel_um)]



# ---- needle heads: code -> (name, needles, gauge, needle length um, dead volume nL, ID voltage mV) -----------
# A head carries one resistor from its ID pin to ground; the board pulls that pin up through
# HEAD_PULLUP_OHM to 3.3 V and reads it on an ADC: ID mV = 3300 R / (R + 10k). Chosen over a 1-Wire
# or EEPROM id: a resistor costs a cent, survives autoclaving, needs no protocol or firmware on the head,
# and reads in a microsecond every control pass. The E12 values (1k, 2.2k, 3.9k, 6.8k, 12k, 22k, 47k)
# sit >= 290 mV apart; a reading within HEAD_ID_TOL_MV of a head's fits it. No head (the pull-up,
# 3300 mV), a short (0 mV) or a broken resistor reads in no head's band: a fault, dosing stops.
# Dead volume: what the head holds between the syringe's luer and the needle tips (the manifold of a
# multi-injector): priming fills it, it is never delivered.
HEADS = {
    1: ("30G 4 mm", 1, 30, 4000, 1500, 300),
    2: ("30G 6 mm", 1, 30, 6000, 1500, 595),
    3: ("30G 13 mm", 1, 30, 13000, 2000, 926),
    4: ("32G 4 mm", 1, 32, 4000, 1200, 1336),
    5: ("27G 4 mm", 1, 27, 4000, 2500, 1800),
    6: ("5-needle 30G 4 mm", 5, 30, 4000, 45000, 2269),
    7: ("9-needle 30G 4 mm", 9, 30, 4000, 80000, 2721),
}
HEAD_PULLUP_OHM = const(10000)
HEAD_ID_TOL_MV = const(120)  # 1 % resistors, the pull-up and ADC error; the bands are >= 290 mV apart


def head_needles(code):
    return HEADS[code][1]


def head_block_rise_permille(code):
    # the least rise of the line pressure one fully blocked needle makes (per mille): the narrowest
    # needle (1 - spread) blocked while the others are the widest (1 + spread): g / (G - g)
    n = HEADS[code][1]
    if n < 2:
        return 0
    s = HEAD_NEEDLE_SPREAD_PCT
    return 1000 * (100 - s) // (n * (100 + s) - (100 - s))


def head_block_permille(code):
    # ALARM_NEEDLE_BLOCKED's threshold: half that least rise, a miss and a false alarm equally far from it
    # (5-needle 102, 9-needle 52 per mille)
    return head_block_rise_permille(code) // 2


# A needle blocked before the prime: the prime's flow pressure is the blocked-needle watch's reference, so it
# must itself be a clear head's. The head table bounds what a clear head reads: Poiseuille through its
# needles' bores (ISO 9626:2016 regular wall, nominal: 30G 159 um) over their length, plus each needle's hub,
# Luer and entry losses (0.2 kPa per uL/s), for the most viscous drug the device is for (DRUG_MAX_MPA_S),
# every needle at the narrow end of the lot's spread (HEAD_NEEDLE_SPREAD_PCT), the syringe's bore at the wide
# end of its tolerance (+-2 %, ISO 7886-1: its flow 4 % over the program's) - the highest a clear head can
# read. Per mL/s of flow, 1/16 kPa (protocol/tests/test_head_table.py recomputes them).
# It cannot see one blocked needle of most heads: the drugs' viscosities (1-2 mPa s) move the line 1.56x, one
# blocked needle 1.25x (5 needles) or 1.125x (9); it catches two or more (or one of 5 with a drug over
# ~1.8 mPa s), and refuses a drug more viscous than the table's (PROTOCOL.md "Blocked needles").
DRUG_MAX_MPA_S = const(2)  # lidocaine and saline ~1 mPa s, vitamin and hyaluronic cocktails up to 2
HEAD_LINE_MAX16 = {6: 2569, 7: 1427}  # code -> the clear head's highest flow pressure per mL/s, 1/16 kPa
HEAD_TABLE_MARGIN16 = const(8)  # + half the sensor's 1 kPa quantum: the zero's and the reads' rounding


def head_prime_max16(code, flow_nl_s):
    # the highest flow pressure a clear head `code` makes at flow_nl_s, 1/16 kPa (0: a single needle, none)
    per_ml_s = HEAD_LINE_MAX16.get(code, 0)
    return per_ml_s * (flow_nl_s // 1000) // 1000 + HEAD_TABLE_MARGIN16 if per_ml_s else 0


def head_fits(code, id_mv):
    # does a head ID read at id_mv fit head `code`?
    d = HEADS[code][5] - id_mv
    return -HEAD_ID_TOL_MV <= d <= HEAD_ID_TOL_MV


def head_fitted(id_mv):
    # the code of the head an ID reading is (0: none: no head, a short, or a fault)
    for code in HEADS:
        if head_fits(code, id_mv):
            return code
    return 0


if __import__("sys").implementation.name != "micropython":  # the host's names for the codes: never on a device's heap
    from .names import *  # noqa: E402,F403
