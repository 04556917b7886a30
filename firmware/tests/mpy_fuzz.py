# Runs on MicroPython: mutational fuzzing of the firmware's frame parser (codec, link) and
# command dispatcher (app, device), as built by app.App, on a fake board and a virtual clock.
# The firmware's own control loop (App.run) drives it: each pass starts at the board's
# feed_watchdog(), where the fuzzer checks what came out and picks the next case; link.poll and
# device.tick are wrapped to check each case and each tick; the loop's sleeps move the clock.
# A failure is recorded (with the case's bytes) and the firmware restarted; the run goes on.
#
# Configuration comes from the environment (an argv item >= 256 bytes crashes the unix port):
#   MESOFUZZ_VECTORS  protocol/vectors/frames.json: the seeds (required)
#   MESOFUZZ_FRAMES   mutated frames to feed (default 100000)
#   MESOFUZZ_SEED     PRNG seed, printed (default 1)
#   MESOFUZZ_SAMPLES  failures described in full (default 20)
#   MESOFUZZ_JOURNAL_CELLS  the board's journal size (default 64: small, so it fills up)
# The working directory becomes the board's flash, mounted as / (settings, calibration,
# boot_count, journal land there).
# Human-readable lines first; the last line of stdout is the JSON summary.
#
# Every case is checked against an oracle derived from PROTOCOL.md and spec.MESSAGES, never
# from the firmware's own code: a reference frame reader (section 2) predicts drops, framing
# NACKs and frames; each command frame must reach the dispatcher once with the decoded
# values (or be answered from the reply cache, section 3), get exactly one reply with its
# SEQ, events before it with consecutive event SEQs; a NACKed command must leave the device,
# its settings and its flash unchanged and emit nothing; BAD_STATE NACKs must agree with the
# states the command was accepted in; the field checks of SETTINGS, CALIBRATE, PRIME and
# CONFIGURE (sections 4 and 7) must give exactly the NACK the spec's tables give. Commands in
# spec.AUTHENTICATED carry a counter and an HMAC-SHA256 tag: the fuzzer provisions the device's
# key (the vectors' test_key) before the first boot, signs what it means to be valid, and
# expects NACK AUTH, nothing executed and nothing cached, for forged, replayed and old frames.
# One controlling host (section 11): the fuzzer opens a host session after every boot (OPEN,
# signed with the device's counter), signs session commands with host_session and a counter
# counting within it, follows OPEN and CLOSE ACKs and the reset that closes the session, and
# expects NO_SESSION for a session command outside the open session and OTHER_HOST for an OPEN
# while the session is live. Only the session's signed traffic and an ACKed OPEN may restart
# the link watchdog (section 8): every other command must leave it alone, and a LINK_LOST must
# come exactly when the controlling host has been silent past link_timeout_ms.
import binascii
import hashlib
import json
from array import array
import os
import random
import struct
import sys
import time

from mesoprotocol import spec as S
from mesoprotocol import names  # the codes' names: spec.py re-exports them on CPython only

for _name in dir(names):
    if _name.endswith("_NAMES"):
        setattr(S, _name, getattr(names, _name))
from mesofw import app as fwapp
from standin import StandInBoard, mount_cwd_as_root
from vclock import CLOCK, install, v_ms, v_ticks_diff

install()  # the firmware's ticks and sleeps come from the virtual clock (vclock.py)

VECTORS = os.getenv("MESOFUZZ_VECTORS")
FRAMES = int(os.getenv("MESOFUZZ_FRAMES") or 100000)
SEED = int(os.getenv("MESOFUZZ_SEED") or 1) & 0xFFFFFFFF
SAMPLES = int(os.getenv("MESOFUZZ_SAMPLES") or 20)
JOURNAL_CELLS = int(os.getenv("MESOFUZZ_JOURNAL_CELLS") or 64)

random.seed(SEED)
rnd = random.getrandbits


def rint(n):  # 0 <= x < n; randrange takes only machine words (31 bits on a 32-bit port)
    if n <= 1:
        return 0
    if n < 1 << 30:
        return random.randrange(n)
    return (rnd(30) << 30 | rnd(30)) % n


def hexs(b):
    return binascii.hexlify(b).decode()


# ---- protocol facts, all from spec ------------------------------------------------------------
MSG = S.MESSAGES
NAME = {}
TYPE_OF = {}
FMT = {}
SIZE = {}
FIELDS = {}
for _t in MSG:
    NAME[_t] = MSG[_t][0]
    TYPE_OF[MSG[_t][0]] = _t
    FMT[_t] = S.layout(_t)[0]
    SIZE[_t] = struct.calcsize(FMT[_t])
    FIELDS[_t] = MSG[_t][1]
COMMANDS = sorted(t for t in MSG if t < 0x80)
DEVICE_TYPES = sorted(t for t in MSG if t >= 0x80)
REPLIES = set(getattr(S, "REPLIES", (S.ACK, S.NACK, S.IDENTITY, S.STATUS_REPLY)))
EVENTS = set(t for t in DEVICE_TYPES if t not in REPLIES)
FRAMING_REASONS = (S.NACK_UNKNOWN_TYPE, S.NACK_BAD_LENGTH, S.NACK_BAD_VERSION)
FIELD_REASONS = (S.NACK_LIMIT, S.NACK_BAD_VALUE, S.NACK_INFEASIBLE)
SETTING_NAMES = [row[0] for row in S.SETTINGS_TABLE]
# result states of an ACKed command (PROTOCOL.md section 5)
ACK_STATES = {
    "CONFIGURE": (S.STATE_CONFIGURED, S.STATE_PRIMED),
    "PRIME": (S.STATE_PRIMING,),
    "ARM": (S.STATE_ARMED,),
    "PAUSE": (S.STATE_PAUSED,),
    "RESUME": (S.STATE_ARMED,),
    "ABORT": (S.STATE_IDLE,),
    "SETTINGS": (S.STATE_IDLE,),
}
ALWAYS_ACCEPTED = ("HELLO", "STATUS", "ABORT", "OPEN", "CLOSE", "POLL")  # OPEN: refused only as OTHER_HOST


def _states(*states):
    m = 0
    for st in states:
        m |= 1 << st
    return m


# states that accept each command, else NACK BAD_STATE with this mask (PROTOCOL.md section 5);
# a command not listed here is held to the mask it reports, consistently
ACCEPTS = {
    "CONFIGURE": _states(S.STATE_IDLE, S.STATE_CONFIGURED, S.STATE_PRIMED, S.STATE_COMPLETE),
    "PRIME": _states(S.STATE_CONFIGURED, S.STATE_PRIMED),
    "ARM": _states(S.STATE_PRIMED, S.STATE_COMPLETE),
    "PAUSE": _states(S.STATE_ARMED, S.STATE_DELIVERING),
    "RESUME": _states(S.STATE_PAUSED),
    "SETTINGS": _states(S.STATE_IDLE),
    "CALIBRATE": _states(S.STATE_IDLE, S.STATE_CONFIGURED, S.STATE_PRIMED, S.STATE_COMPLETE),
}
REPLY_OF = {"HELLO": S.IDENTITY, "STATUS": S.STATUS_REPLY}
if "POLL" in TYPE_OF:
    REPLY_OF["POLL"] = S.STATUS_REPLY
if "RECORDS" in TYPE_OF and "RECORD" in TYPE_OF:
    REPLY_OF["RECORDS"] = TYPE_OF["RECORD"]
NOT_CACHED = tuple(NAME[t] for t in getattr(S, "UNCACHED", (S.HELLO, S.STATUS)))  # executed every time; HELLO clears the key (section 3)
JOURNAL_FULL_FOR = ("ARM", "RESUME", "PRIME")  # section 8
AUTH_TYPES = tuple(getattr(S, "AUTHENTICATED", ()))  # payload ends with counter u32 and mac
NACK_AUTH = getattr(S, "NACK_AUTH", -1)
NACK_NOT_PAIRING = getattr(S, "NACK_NOT_PAIRING", -1)
# one controlling host (section 11): session commands carry host_session before the counter
SESSION_TYPES = tuple(getattr(S, "SESSION_COMMANDS", ()))
OPEN = getattr(S, "OPEN", -1)
NACK_NO_SESSION = getattr(S, "NACK_NO_SESSION", -1)
NACK_OTHER_HOST = getattr(S, "NACK_OTHER_HOST", -1)
# the link watchdog's states (section 8)
WATCHED = (S.STATE_PRIMING, S.STATE_ARMED, S.STATE_DELIVERING)


def trailer(msg_type):
    # fields after the command's own: [host_session] counter mac
    return 3 if msg_type in SESSION_TYPES else 2


class Signer:
    # HMAC-SHA256 (RFC 2104) truncated to MAC_SIZE, over VER TYPE and the payload before the tag
    def __init__(self, key):
        k = key + bytes(64 - len(key))
        self.ipad = bytes(b ^ 0x36 for b in k)
        self.opad = bytes(b ^ 0x5C for b in k)

    def mac(self, msg_type, payload_before_mac):
        inner = hashlib.sha256(self.ipad)
        inner.update(bytes((S.PROTOCOL_VERSION, msg_type)))
        inner.update(payload_before_mac)
        outer = hashlib.sha256(self.opad)
        outer.update(inner.digest())
        return outer.digest()[: S.MAC_SIZE]

    def sign(self, msg_type, payload, counter, session=None):
        # payload: a bytearray of the type's size; writes its host_session (unless None), counter and tag
        n = len(payload)
        if session is not None:
            struct.pack_into("<I", payload, n - S.AUTH_SIZE - S.SESSION_SIZE, session & 0xFFFFFFFF)
        struct.pack_into("<I", payload, n - S.AUTH_SIZE, counter & 0xFFFFFFFF)
        payload[n - S.MAC_SIZE :] = self.mac(msg_type, bytes(payload[: n - S.MAC_SIZE]))

    def verify(self, msg_type, payload):
        n = len(payload)
        return self.mac(msg_type, bytes(payload[: n - S.MAC_SIZE])) == bytes(payload[n - S.MAC_SIZE :])

# ---- CRC-16/CCITT-FALSE, table-driven (independent of spec.crc16) ------------------------------
_CRC = []
for _i in range(256):
    _c = _i << 8
    for _ in range(8):
        _c = ((_c << 1) ^ 0x1021) & 0xFFFF if _c & 0x8000 else (_c << 1) & 0xFFFF
    _CRC.append(_c)


def crc16(data, start, end):
    c = 0xFFFF
    t = _CRC
    for i in range(start, end):
        c = ((c << 8) & 0xFFFF) ^ t[(c >> 8) ^ data[i]]
    return c


assert crc16(b"123456789", 0, 9) == 0x29B1


def mkframe(msg_type, seq, payload, version=S.PROTOCOL_VERSION):
    # a frame with a good CRC, whatever its header says
    end = S.HEADER_SIZE + len(payload)
    f = bytearray(end + S.CRC_SIZE)
    f[0] = S.SYNC0
    f[1] = S.SYNC1
    f[2] = len(payload)
    f[3] = version & 0xFF
    f[4] = msg_type & 0xFF
    f[5] = seq & 0xFF
    f[S.HEADER_SIZE : end] = payload
    c = crc16(f, 2, end)
    f[end] = c & 0xFF
    f[end + 1] = c >> 8
    return bytes(f)


# ---- reference receiver (PROTOCOL.md section 2), written from the spec's table -------------------
D_OVERSIZE = "OVERSIZE"
D_CRC = "CRC"


class RefReader:
    # results: ("D", reason) | ("N", reason, type, seq, version) | ("F", type, seq, payload)
    def __init__(self):
        self.buf = b""

    def pending(self):
        return len(self.buf)

    def reset(self):
        self.buf = b""

    def feed(self, data):
        buf = self.buf + data
        out = []
        sync = bytes((S.SYNC0, S.SYNC1))
        while True:
            i = buf.find(sync)
            if i < 0:  # keep a trailing lone SYNC0
                buf = buf[-1:] if buf and buf[-1] == S.SYNC0 else b""
                break
            buf = buf[i:]
            if len(buf) < S.HEADER_SIZE:
                break
            n = buf[2]
            if n > S.MAX_PAYLOAD:
                out.append(("D", D_OVERSIZE))
                buf = buf[1:]
                continue
            total = S.HEADER_SIZE + n + S.CRC_SIZE
            if len(buf) < total:
                break
            end = S.HEADER_SIZE + n
            if crc16(buf, 2, end) != buf[end] | (buf[end + 1] << 8):
                out.append(("D", D_CRC))
                buf = buf[1:]
                continue
            ver, typ, seq, payload = buf[3], buf[4], buf[5], buf[S.HEADER_SIZE : end]
            buf = buf[total:]
            if ver != S.PROTOCOL_VERSION:
                out.append(("N", S.NACK_BAD_VERSION, typ, seq, ver))
            elif typ not in MSG:
                out.append(("N", S.NACK_UNKNOWN_TYPE, typ, seq, ver))
            elif SIZE[typ] != n:
                out.append(("N", S.NACK_BAD_LENGTH, typ, seq, ver))
            else:
                out.append(("F", typ, seq, payload))
        self.buf = buf
        return out


def vector_self_check(cases):
    # the reference reader must give the golden results: (notes, disagreements); a vector and
    # spec.py that disagree on a layout or a type (one is being changed) make a note
    notes = []
    wrong = []
    for case in cases:
        got = RefReader().feed(binascii.unhexlify(case["hex"]))
        want = case["results"]
        ok = len(got) == len(want)
        stale = False
        for g, w in zip(got, want):
            if "dropped" in w:
                ok = ok and g == ("D", w["dropped"])
            elif "nack" in w:
                ok = ok and g[0] == "N" and S.NACK_NAMES[g[1]] == w["nack"] and g[2:4] == (w["type"], w["seq"])
            elif g[0] == "N" and g[1] == S.NACK_BAD_LENGTH and TYPE_OF.get(w["frame"]) == g[2]:
                stale = True  # the vector predates a layout change in spec.py
            elif g[0] == "N" and g[1] == S.NACK_UNKNOWN_TYPE and w["frame"] not in TYPE_OF:
                stale = True  # the vector is newer than spec.py
            else:
                ok = ok and g[0] == "F" and NAME[g[1]] == w["frame"] and g[2] == w["seq"]
        if stale:
            notes.append("frames.json and spec.py disagree on %r (one of them is being changed)" % case["name"])
        elif not ok:
            wrong.append("reference reader disagrees with vector %r: %r" % (case["name"], got))
    return notes, wrong


# ---- the board: no hardware, no time of its own ---------------------------------------------------
class BoardReset(Exception):  # board.reset(): the firmware asked for a reset (REPL command)
    pass


class Reboot(Exception):  # the fuzzer restarts the firmware (args[0]: check what survives on flash)
    pass


class StopFuzz(Exception):
    pass


class FuzzBoard(StandInBoard):
    # app.App.run() drives the fuzz: each pass of its control loop starts at feed_watchdog(),
    # where the fuzzer checks what came out and picks the next case; the idle wait is virtual
    NAME = "fuzz"
    JOURNAL_CELLS = JOURNAL_CELLS
    CHANNELS = 2  # the two-drug rules fuzzed too (the stand-in's plunger_channel moves nothing)

    def __init__(self, fuzzer):
        super().__init__()
        self.fz = fuzzer
        self.inbox = b""
        self.inpos = 0
        self.out = []

    def fields(self):  # what a command may change on the board
        return (self.motors_on, self.needle_pos, self.plunger_pos, self.led_code)

    def reset(self):
        raise BoardReset()  # a real board does not come back from this

    def host_read(self, buf):
        i = self.inpos
        n = min(len(buf), len(self.inbox) - i)
        if n <= 0:
            return 0
        buf[:n] = self.inbox[i : i + n]
        self.inpos = i + n
        return n

    def host_write(self, buf, n):
        self.out.append(bytes(buf[:n]))

    def wait_input(self, timeout_ms):
        self.fz.wait(timeout_ms)

    def feed_watchdog(self):
        self.fz.iteration()


# ---- snapshots: everything a NACKed command must leave alone -----------------------------------
VOLATILE = ("link_rx_ms",)  # session traffic restarts the link watchdog, NACKed or not (section 8)
SKIP = ("board", "emit")


def _freeze(v):
    # a copy that compares equal while nothing changed (objects: by identity, their own
    # attributes are taken separately)
    t = type(v)
    if t is list:
        return tuple(_freeze(x) for x in v)
    if t is dict:
        return tuple((k, _freeze(x)) for k, x in v.items())
    if t is bytearray or t is array:
        return bytes(v)
    return v


_PLAIN = (int, bool, type(None), str, tuple, float)
_MUTABLE = (list, dict, bytearray, array)


def _values(obj, add):
    for v in obj.__dict__.values():
        t = type(v)
        if t in _PLAIN:
            add(v)
        elif t in _MUTABLE:
            add(_freeze(v))
        else:
            add(v)
            if hasattr(v, "__dict__") and t is not FuzzBoard:
                yield v


def snap(dev):
    # the values of the device's attributes, and of the objects it holds, two levels deep
    # (attribute order is stable while no attribute is added; names in snap_named)
    out = []
    add = out.append
    for k, v in dev.__dict__.items():
        if k in VOLATILE or k in SKIP:
            add(None)
            continue
        t = type(v)
        if t in _PLAIN:
            add(v)
        elif t in _MUTABLE:
            add(_freeze(v))
        else:
            add(v)
            if hasattr(v, "__dict__"):
                for w in _values(v, add):
                    for _ in _values(w, add):
                        pass
    return out


def snap_named(dev):
    # the same, with names, to report what a NACKed command changed
    out = []
    for k, v in dev.__dict__.items():
        if k in VOLATILE or k in SKIP:
            continue
        out.append((k, _freeze(v)))
        if hasattr(v, "__dict__"):
            for k2, w in v.__dict__.items():
                out.append((k + "." + k2, _freeze(w)))
                if hasattr(w, "__dict__") and not isinstance(w, FuzzBoard):
                    for k3, x in w.__dict__.items():
                        out.append((k + "." + k2 + "." + k3, _freeze(x)))
    return out


def flash_files():
    files = {}
    for name in os.listdir("."):
        try:
            with open(name, "rb") as f:
                files[name] = f.read()
        except OSError:
            files[name] = None
    return files


# ---- the fuzzer --------------------------------------------------------------------------------
class Fuzzer:
    def __init__(self, doc):
        self.cases_doc = doc
        self.cases = cases = doc["cases"]
        self.failures = 0
        self.by_kind = {}
        self.samples = []
        self.stats = {"frames": 0, "bytes": 0, "dropped": 0, "framing_nacks": 0, "dispatched": 0,
                      "cache_hits": 0, "acks": 0, "nacks": 0, "events": 0, "timeouts": 0, "reboots": 0,
                      "resets": 0, "auth_nacks": 0}
        self.nack_reasons = {}
        self.states_seen = {}  # commands dispatched per state
        self.ticks_in = {}  # control ticks per state
        self.ops = {}
        self.accepted = {}  # type -> bitmask of states in which it passed the state check
        self.refused = {}  # type -> BAD_STATE limit mask reported
        for t in COMMANDS:
            if NAME[t] in ACCEPTS:
                self.refused[t] = ACCEPTS[NAME[t]]
        self.settings = [row[2] for row in S.SETTINGS_TABLE]
        self.calibration = {}
        self.case_no = 0
        self.explain = False
        self.pre_session = (0, 0, 0)  # the device's session tag, total and cap before the command being checked
        self.state_was = -1
        self.state_since = 0
        self.case = b""
        self.prev_case = b""
        self.last_cmd = None  # (type, seq, payload) of the last command the dispatcher ran
        self.mut = None  # the Mutator: it picks each case
        self.signer = None  # the device's key, once provisioned
        self.sign_counter = 0  # the last device counter the fuzzer signed with (OPEN)
        self.auth_counter = None  # the last device counter the device accepted, when known
        self.accepted_max = 0  # the highest device counter it ever accepted: must hold across resets
        # the host session (section 11): the one the device has open (0: none), the last counter
        # accepted in it; the session the fuzzer signs with (its last, even once closed) and its counter
        self.session = 0
        self.session_counter = 0
        self.host_session = 0
        self.host_counter = 0
        self.opening = None  # the counter of the OPEN the handler is answering
        self.heard_ms = 0  # when the controlling host last restarted the link watchdog (ticks_ms)
        self.boot_count = None  # this boot's, once IDENTITY or STATUS_REPLY said
        self.last_boot_count = None  # an earlier boot's
        self.journal_epoch = None  # the journal's epoch (section 6): drawn once, the same on every boot
        self.saturated = False  # it accepted a counter near 2^32: nothing much is left after it
        self.auth_reset = False  # start the counter afresh at the next boot
        self.next_case = None
        self.gap_until = 0  # the host is silent until then (CLOCK us)
        self.open_after_gap = False  # then an OPEN, just as the link watchdog falls due

    # -- lifecycle
    def run(self):
        # the firmware's own control loop (app.App.run) runs the show; it ends by an exception:
        # the frames are done, the firmware reset itself, or the fuzzer restarts it
        first, check, stalled = True, True, 0
        self.provision()
        while True:
            frames = self.stats["frames"]
            self.boot(first, check)
            first, check = False, True
            try:
                self.app.run()
            except StopFuzz:
                return
            except BoardReset:
                self.stats["resets"] += 1
            except Reboot as e:
                check = e.args[0]
            except Exception as e:  # noqa: BLE001  in the loop, outside the parser, dispatcher and tick
                self.fail("exception in the control loop", "%s: %s" % (type(e).__name__, e))
                sys.print_exception(e)
                check = False
            stalled = stalled + 1 if self.stats["frames"] == frames else 0
            if stalled > 20:
                raise RuntimeError("the firmware does not get past its boot")

    @staticmethod
    def draw_barrel():
        # the syringe in the clamp (its barrel's outer diameter): most often the 1 mL ones the programs use
        return S.SYRINGES[(1, 1, 1, 2, 3, 4, 5, 6, 7, 8)[rint(10)]][4]

    def provision(self):
        # the key, as pairing would write it (the fake board never enters pairing mode)
        auth = sys.modules.get("mesofw.auth")
        if not AUTH_TYPES or auth is None:
            return
        key = binascii.unhexlify(self.cases_doc.get("test_key") or "") or bytes(range(1, S.KEY_SIZE + 1))
        auth.Auth().pair(key)
        self.signer = Signer(key)

    def boot(self, first=False, check=True):
        # a (re)start of the firmware; check=False after a failure, when the model may have lost track
        auth = sys.modules.get("mesofw.auth")
        if self.auth_reset and hasattr(auth, "COUNTER_FILE"):
            # the counter is used up (or was found broken): start it afresh, as re-provisioning would
            try:
                os.remove(auth.COUNTER_FILE)
            except OSError:
                pass
            self.sign_counter = self.accepted_max = 0
            self.saturated = False
        self.auth_reset = False
        safemode = sys.modules.get("mesofw.safemode")
        if safemode is not None and hasattr(safemode, "repl_requested"):
            safemode.repl_requested()  # main.py would stay in the REPL for this boot; the next one runs
        self.board = FuzzBoard(self)
        self.board.barrel_um = self.draw_barrel()
        self.dev = None  # until App() returns: its boot (the journal scan) feeds the watchdog too
        self.app = fwapp.App(self.board)
        self.loop_seen = (0, 0)  # (overruns, worst_pass_us) the device last reported: since boot
        self.link = self.app.link
        self.dev = self.app.device
        self.calls = []
        orig = self.link.on_command

        def on_command(msg_type, values, *signed):
            # the dispatcher as the link calls it, with what a NACK must leave alone before and after
            dev = self.dev
            self.pre_session = (dev.session, dev.session_nl, getattr(dev, "session_cap_nl", 0))
            pre = (snap(dev), self.board.fields(), flash_files(), snap_named(dev) if self.explain else None)
            state = dev.state
            rx = self.link.rx_errors
            watchdog0 = getattr(dev, "link_rx_ms", None)
            reply = orig(msg_type, values, *signed)
            post = None
            if reply[0] == S.NACK:
                post = (snap(dev), self.board.fields(), flash_files(), snap_named(dev) if self.explain else None)
            self.calls.append((msg_type, values, state, dev.state, pre, post, rx, getattr(dev, "link_rx_ms", None),
                               list(dev.settings), watchdog0))
            return reply

        self.link.on_command = on_command
        self.orig_poll = self.link.poll
        self.link.poll = self.poll
        self.orig_tick = self.dev.tick
        self.dev.tick = self.tick
        self.ref = RefReader()
        self.out_ref = RefReader()
        self.event_seq = 0
        self.oldest_record = 0
        self.unacked = 0  # journal records not acknowledged, as the device last said
        self.hello_needed = False
        self.last_key = -1
        self.cached = None
        self.last_byte_ms = v_ms()
        self.next_case = None
        self.auth_counter = None  # kept on flash a block ahead: unknown until IDENTITY says
        self.sign_counter += 1 << 16
        self.session = 0  # a reset closes the host session
        self.heard_ms = v_ms()  # the watchdog starts at boot (no watched state is reachable before a session)
        if self.boot_count is not None:
            self.last_boot_count = self.boot_count
        self.boot_count = None
        if not first:
            self.stats["reboots"] += 1
        # settings and calibration survive a reset (flash)
        if list(self.dev.settings) != self.settings:
            if check:
                self.fail("settings after boot", "device %r, last ACKed %r" % (self.dev.settings, self.settings))
            self.settings = list(self.dev.settings)
        cal = getattr(self.dev, "calibration", None)
        if cal is not None and dict(cal) != self.calibration:
            if check:
                self.fail("calibration after boot", "device %r, last ACKed %r" % (cal, self.calibration))
            self.calibration = dict(cal)

    # -- the control loop's hooks: feed_watchdog (a pass starts), link.poll, device.tick, wait_input
    def iteration(self):
        for item in self.take_output():  # since the last poll: boot, tick
            self.check_event(item, "tick")
        if self.stats["frames"] >= FRAMES:
            raise StopFuzz()
        if self.auth_reset:
            raise Reboot(True)
        self.next_case = None
        if self.dev is None:  # the firmware is still booting: no host frame is read before the loop runs
            return
        if CLOCK[0] < self.gap_until:
            return
        if self.open_after_gap:
            self.open_after_gap = False
            self.ops["OPEN as the session lapses"] = self.ops.get("OPEN as the session lapses", 0) + 1
            self.next_case = self.mut.open_session()
            return
        r = rint(1000)
        if r < 5:  # the host pauses: partial frames time out, the link watchdog may fire
            self.gap_until = CLOCK[0] + (20 + rint(300)) * 1000
            if self.session and rint(2):
                # the controlling host falls silent just past link_timeout_ms, then another host
                # OPENs: the session has lapsed (ACK), unless the device is in a watched state,
                # where the OPEN arrives before the control tick notices: refused (section 11)
                silent = v_ticks_diff(v_ms(), self.heard_ms)
                self.gap_until = CLOCK[0] - CLOCK[0] % 1000 + (self.settings[S.SET_LINK_TIMEOUT] + 1 - silent) * 1000
                self.open_after_gap = True
            return
        if r == 999 and rint(20) == 0:
            raise Reboot(True)  # a reset: settings and calibration must come back from flash
        name, fn = self.mut.pick()
        self.ops[name] = self.ops.get(name, 0) + 1
        self.next_case = fn()

    def wait(self, timeout_ms):
        # idle: the loop sleeps until host input (a case arrives within the timeout) or the timeout
        if CLOCK[0] < self.gap_until:
            CLOCK[0] += timeout_ms * 1000
        else:
            CLOCK[0] += rint(timeout_ms + 1) * 1000

    def poll(self):
        case = self.next_case
        self.next_case = None
        if case is None:
            self.idle_poll()
        else:
            self.run_case(case)

    def tick(self, now_us):
        dev = self.dev
        board = self.board
        if dev.state == S.STATE_ARMED and not board.trig:
            board.trig = rint(30) == 0
        elif board.trig:  # mostly held to the end of a point, sometimes let go early
            board.trig = rint(800 if dev.state == S.STATE_DELIVERING else 50) != 0
        elif rint(2000) == 0:
            board.trig = True  # held while arming or resuming: must never fire
        if dev.state == S.STATE_IDLE and rint(5000) == 0:
            # the operator loads another syringe while no program is set (nothing watches the clamp
            # in IDLE): a run does not stay for good with a syringe no program fits (NACK SYRINGE)
            board.barrel_um = self.draw_barrel()
            self.ops["syringe swapped in IDLE"] = self.ops.get("syringe swapped in IDLE", 0) + 1
        self.ticks_in[dev.state] = self.ticks_in.get(dev.state, 0) + 1
        if dev.state != self.state_was:
            self.state_was = dev.state
            self.state_since = CLOCK[0]
        try:
            self.orig_tick(now_us)
        except Exception as e:  # noqa: BLE001
            self.fail("exception in tick", "%s: %s" % (type(e).__name__, e))
            sys.print_exception(e)
            raise Reboot(False)
        for item in self.take_output():
            self.check_event(item, "tick")

    def idle_poll(self):
        # a poll that reads nothing: a partial frame older than INTERBYTE_TIMEOUT_MS is dropped
        pending = self.ref.pending()
        self.board.inbox = b""
        self.board.inpos = 0
        rx0 = self.link.rx_errors
        try:
            self.orig_poll()
        except Exception as e:  # noqa: BLE001
            self.fail("exception", "%s: %s" % (type(e).__name__, e))
            sys.print_exception(e)
            raise Reboot(False)
        stale = pending and v_ticks_diff(v_ms(), self.last_byte_ms) > S.INTERBYTE_TIMEOUT_MS
        if stale:
            self.ref.reset()
            self.stats["timeouts"] += 1
        if self.link.rx_errors - rx0 != (1 if stale else 0):
            self.fail("interbyte timeout", "rx_errors +%d after %d ms of silence with %d bytes pending" % (
                self.link.rx_errors - rx0, v_ticks_diff(v_ms(), self.last_byte_ms), pending))
            self.ref.reset()
        for item in self.take_output():
            self.check_event(item, "idle poll")

    def fail(self, kind, detail):
        self.failures += 1
        n = self.by_kind.get(kind, 0)
        self.by_kind[kind] = n + 1
        if n < 3 and len(self.samples) < SAMPLES:
            self.samples.append({"case": self.case_no, "kind": kind, "detail": detail, "hex": hexs(self.case),
                                 "state": self.dev.state if hasattr(self, "dev") else None})

    # -- output of the device
    def take_output(self):
        # every host_write is exactly one well-formed frame
        items = []
        for raw in self.board.out:
            got = self.out_ref.feed(raw)
            if len(got) != 1 or got[0][0] != "F" or self.out_ref.pending():
                self.fail("malformed output", "wrote %s, reads as %r" % (hexs(raw), got))
                self.out_ref.reset()
                continue
            _, typ, seq, payload = got[0]
            items.append((typ, seq, struct.unpack(FMT[typ], payload), raw))
        self.board.out = []
        return items

    def check_event(self, item, where):
        typ, seq = item[0], item[1]
        if typ not in EVENTS:
            self.fail("unsolicited reply", "%s: %s seq %d %r" % (where, NAME[typ], seq, item[2]))
            return
        self.check_epoch(NAME[typ], dict(zip([f[0] for f in FIELDS[typ]], item[2])))
        if typ == S.ALARM and item[2][0] == S.ALARM_LINK_LOST:
            self.hello_needed = True
            # section 8: the controlling host silent past link_timeout_ms in a watched state;
            # detail = the silence (only its session traffic counts as heard)
            silent = v_ticks_diff(v_ms(), self.heard_ms)
            timeout = self.settings[S.SET_LINK_TIMEOUT]
            if item[2][2] != silent or silent <= timeout or self.state_was not in WATCHED:
                self.fail("LINK_LOST", "%s: detail %d, from %s; the controlling host was heard %d ms ago, "
                          "timeout %d ms" % (where, item[2][2], S.STATE_NAMES[self.state_was], silent, timeout))
        if seq != self.event_seq:
            self.fail("event seq", "%s: %s seq %d, expected %d" % (where, NAME[typ], seq, self.event_seq))
        self.event_seq = (seq + 1) & 0xFF
        self.stats["events"] += 1

    # -- one case: bytes in, everything checked
    def run_case(self, data):
        self.case = data
        self.case_no += 1
        st = self.stats
        st["frames"] += 1
        st["bytes"] += len(data)
        expected = self.ref.feed(data)
        self.calls = []
        rx0 = self.link.rx_errors
        watchdog0 = getattr(self.dev, "link_rx_ms", None)
        self.board.inbox = data
        self.board.inpos = 0
        try:
            while self.board.inpos < len(data):
                self.orig_poll()
        except BoardReset:
            # reset from inside the dispatcher: fine if a frame reached it; the rest of this
            # case is lost with the reset, as on a board
            if not self.calls:
                self.fail("reset", "the board was reset by a frame that never reached the handler")
            raise
        except Exception as e:  # noqa: BLE001  anything escaping the parser or the dispatcher
            self.fail("exception", "%s: %s" % (type(e).__name__, e))
            sys.print_exception(e)
            raise Reboot(False)
        self.last_byte_ms = v_ms()
        drops = 0
        for r in expected:
            if r[0] == "D":
                drops += 1
        st["dropped"] += drops
        if self.link.rx_errors - rx0 != drops:
            self.fail("rx_errors", "counted %d drop events, the spec gives %d: %r" % (
                self.link.rx_errors - rx0, drops, expected))
        out = self.take_output()
        if not self.walk(expected, out, rx0):
            raise Reboot(False)  # the model lost track: start both afresh
        if not self.calls and watchdog0 is not None and self.dev.link_rx_ms != watchdog0:
            self.fail("watchdog restarted", "no command reached the handler, yet the link watchdog restarted")
        self.prev_case = data

    def walk(self, expected, out, rx0):
        oi = 0
        ci = 0
        state = self.dev.state if not self.calls else self.calls[0][2]
        drops_before = 0
        for r in expected:
            if r[0] == "D":
                drops_before += 1
                continue
            if r[0] == "N" or r[1] >= 0x80:
                reason = r[1] if r[0] == "N" else S.NACK_UNKNOWN_TYPE
                typ, seq = (r[2], r[3]) if r[0] == "N" else (r[1], r[2])
                if oi >= len(out):
                    self.fail("missing framing NACK", "%s for type 0x%02x seq %d" % (S.NACK_NAMES[reason], typ, seq))
                    return False
                o = out[oi]
                oi += 1
                want = (typ, reason, 0, state, 0, 0)
                if reason == S.NACK_BAD_VERSION:  # PROTOCOL.md 10: value = the frame's VER, limit = ours
                    want = (typ, reason, 0, state, r[4], S.PROTOCOL_VERSION)
                if o[0] != S.NACK or o[1] != seq or tuple(o[2]) != want:
                    self.fail("framing NACK", "got %s seq %d %r, want NACK seq %d %r" % (
                        NAME[o[0]], o[1], o[2], seq, want))
                    return False
                self.stats["framing_nacks"] += 1
                self.nack_reasons[S.NACK_NAMES[reason]] = self.nack_reasons.get(S.NACK_NAMES[reason], 0) + 1
                continue
            _, typ, seq, payload = r
            key = (typ << 8) | seq
            if key == self.last_key:  # a retransmission: the cached reply, not executed again
                if oi >= len(out) or out[oi][3] != self.cached:
                    self.fail("reply cache", "%s seq %d: got %s, want the cached %s" % (
                        NAME[typ], seq, hexs(out[oi][3]) if oi < len(out) else "nothing", hexs(self.cached)))
                    return False
                oi += 1
                self.stats["cache_hits"] += 1
                continue
            values = struct.unpack(FMT[typ], payload)
            if typ in AUTH_TYPES:
                refused = self.auth_refused(typ, seq, payload, out[oi] if oi < len(out) else None, state)
                if refused is None:
                    return False
                if refused:
                    oi += 1
                    continue
                values = values[: -trailer(typ)]  # the handler gets the fields without [host_session] counter mac
            if ci >= len(self.calls):
                self.fail("not dispatched", "%s seq %d %r never reached the handler" % (NAME[typ], seq, values))
                return False
            call = self.calls[ci]
            ci += 1
            if call[0] != typ or tuple(call[1]) != values:
                self.fail("dispatched wrong", "handler got %s %r, frame was %s %r" % (
                    NAME.get(call[0], call[0]), call[1], NAME[typ], values))
                return False
            self.stats["dispatched"] += 1
            n_events = 0
            while oi < len(out) and out[oi][0] in EVENTS:
                if NAME[typ] == "EVENTS":  # events sent again: from_seq on, in order, none newer than sent
                    want = (values[0] + n_events) & 0xFF
                    if out[oi][1] != want or (self.event_seq - want) & 0xFF > S.EVENT_RING:
                        self.fail("event resend", "EVENTS from %d: got seq %d, want %d" % (values[0], out[oi][1], want))
                else:
                    self.check_event(out[oi], NAME[typ])
                oi += 1
                n_events += 1
            if oi >= len(out):
                self.fail("no reply", "%s seq %d %r" % (NAME[typ], seq, values))
                return False
            reply = out[oi]
            oi += 1
            if NAME[typ] == "HELLO":
                self.hello_needed = False
                self.last_key = -1
            elif NAME[typ] not in NOT_CACHED:
                self.last_key = key
                self.cached = reply[3]
            self.last_cmd = (typ, seq, payload)
            self.check_command(typ, seq, values, call, reply, n_events, rx0 + drops_before)
            state = call[3]
        if oi != len(out):
            self.fail("extra output", "%d frames nobody asked for: %r" % (len(out) - oi, [
                (NAME[o[0]], o[1], o[2]) for o in out[oi:]]))
            return False
        if ci != len(self.calls):
            self.fail("extra dispatch", "the handler ran %d more times than frames arrived" % (len(self.calls) - ci))
            return False
        return True

    def auth_refused(self, typ, seq, payload, o, state):
        # an authenticated command: True if the link refused it as it should (NACK AUTH or
        # NO_SESSION, not executed, not cached), False if it must reach the handler, None on a
        # failure. Section 11's check order: key, tag, host_session, counter.
        name = NAME[typ]
        n_fields = len(FIELDS[typ])
        n = len(payload)
        counter = struct.unpack_from("<I", payload, n - S.AUTH_SIZE)[0]
        in_session = typ in SESSION_TYPES
        known = self.session_counter if in_session else self.auth_counter
        unknown = False  # the device's counter after a reset, until IDENTITY says
        options = []
        if self.signer is None:
            options.append((NACK_AUTH, 0, 0, 0))
        elif not self.signer.verify(typ, payload):
            options.append((NACK_AUTH, n_fields, counter, 0))
        elif in_session and (not self.session or self.host_session_of(payload) != self.session):
            options.append((NACK_NO_SESSION, n_fields - 2, self.host_session_of(payload), 1 if self.session else 0))
        elif known is None:
            unknown = True
            options.append((NACK_AUTH, n_fields - 1, counter, None))  # limit: the last accepted, >= counter
        elif counter <= known:
            options.append((NACK_AUTH, n_fields - 1, counter, known))
        got = None
        if (o is not None and o[0] == S.NACK and o[1] == seq and o[2][0] == typ
                and o[2][1] in (NACK_AUTH, NACK_NO_SESSION)):
            got = (o[2][1], o[2][2], o[2][4], o[2][5])
        if got is None:
            if options and not unknown:
                self.fail("AUTH", "%s seq %d counter %d reached the handler, want NACK %r" % (name, seq, counter, options))
                return None
            if in_session:
                self.session_counter = counter
                return False
            self.auth_counter = counter
            self.opening = counter
            if counter > self.accepted_max:
                self.accepted_max = counter
            if counter > 0xFFFFFFFF - (1 << 20):
                self.saturated = True  # after the next reset and IDENTITY, start afresh
            return False
        ok = False
        for want in options:
            ok = ok or got == want or (want[3] is None and got[:3] == want[:3] and got[2] <= got[3])
        if not ok or o[2][3] != state:
            self.fail("AUTH", "%s seq %d counter %d: NACK %r in state %d, want one of %r" % (
                name, seq, counter, got, o[2][3], options))
            self.auth_reset = True  # one failure, not one per frame from now on
            return True
        if got[0] == NACK_AUTH and got[1] == n_fields - 1 and not in_session:
            self.auth_counter = got[3]
        rname = S.NACK_NAMES[got[0]]
        self.stats["auth_nacks"] += 1
        self.nack_reasons[rname] = self.nack_reasons.get(rname, 0) + 1
        return True

    def host_session_of(self, payload):
        return struct.unpack_from("<I", payload, len(payload) - S.AUTH_SIZE - S.SESSION_SIZE)[0]

    # -- one dispatched command against the spec
    def check_command(self, typ, seq, values, call, reply, n_events, rx_at_call):
        _, _, state, post_state, pre, post, pre_rx, watchdog, settings_after, watchdog0 = call
        name = NAME[typ]
        rtype, rseq, rv = reply[0], reply[1], reply[2]
        opening, self.opening = self.opening, None
        self.states_seen[S.STATE_NAMES[state]] = self.states_seen.get(S.STATE_NAMES[state], 0) + 1
        if rseq != seq:
            self.fail("reply seq", "%s seq %d answered with %s seq %d" % (name, seq, NAME[rtype], rseq))
        if pre_rx != rx_at_call:
            self.fail("rx_errors", "%d at the call, spec gives %d" % (pre_rx, rx_at_call))
        if watchdog is not None:
            # section 8: only the controlling host's traffic restarts the link watchdog: a session
            # command (it passed the session check to get here) and an OPEN that opened a session
            if watchdog0 != self.heard_ms:
                self.fail("watchdog restarted", "before %s: restarted %d ms ago, the controlling host was heard %d ms "
                          "ago" % (name, v_ticks_diff(v_ms(), watchdog0), v_ticks_diff(v_ms(), self.heard_ms)))
            feeds = typ in SESSION_TYPES or (typ == OPEN and rtype == S.ACK)
            if feeds and watchdog != v_ms():
                self.fail("watchdog", "%s did not restart the link watchdog" % name)
            elif not feeds and watchdog != watchdog0:
                self.fail("watchdog", "%s (%s) restarted the link watchdog: not the controlling host's traffic" % (
                    name, NAME[rtype] if rtype != S.NACK else "NACK " + S.NACK_NAMES[rv[1]]))
            self.heard_ms = watchdog  # one failure, not one per frame from now on
        want_type = REPLY_OF.get(name)
        if want_type is not None:
            if rtype != want_type:
                self.fail("reply type", "%s answered with %s %r" % (name, NAME[rtype], rv))
                return
            self.check_info_reply(rtype, rv, post_state, rx_at_call, values)
            return
        if rtype != S.ACK and rtype != S.NACK:
            if name in ACK_STATES or name in ("CALIBRATE", "OPEN", "CLOSE"):
                self.fail("reply type", "%s answered with %s %r" % (name, NAME[rtype], rv))
            return
        fields = dict(zip([f[0] for f in FIELDS[typ]], values))
        if rv[0] != typ:
            self.fail("reply command", "%s answered for command 0x%02x" % (name, rv[0]))
        if rv[3 if rtype == S.NACK else 1] != post_state:
            self.fail("reply state", "%s reply says state %d, device is in %d" % (name, rv[3 if rtype == S.NACK else 1],
                                                                                post_state))
        if rtype == S.ACK or rv[1] != S.NACK_BAD_STATE:  # it passed the state check
            self.accepted[typ] = self.accepted.get(typ, 0) | (1 << state)
            if typ in self.refused and (self.refused[typ] >> state) & 1 == 0:
                self.fail("state mask", "%s passed the state check in %s, outside its mask 0x%x" % (
                    name, S.STATE_NAMES[state], self.refused[typ]))
        if rtype == S.ACK:
            self.stats["acks"] += 1
            if name in ACK_STATES and post_state not in ACK_STATES[name]:
                self.fail("ACK state", "%s ACKed in %s leaves %s" % (name, S.STATE_NAMES[state], S.STATE_NAMES[post_state]))
            if name == "CALIBRATE" and post_state not in (state, S.STATE_IDLE):
                self.fail("ACK state", "CALIBRATE ACKed in %s leaves %s" % (S.STATE_NAMES[state], S.STATE_NAMES[post_state]))
            if name in ("OPEN", "CLOSE") and post_state != state:
                self.fail("ACK state", "%s ACKed in %s leaves %s" % (name, S.STATE_NAMES[state], S.STATE_NAMES[post_state]))
        else:
            self.stats["nacks"] += 1
            reason, field, value, limit = rv[1], rv[2], rv[4], rv[5]
            rname = S.NACK_NAMES[reason] if reason < len(S.NACK_NAMES) else str(reason)
            self.nack_reasons[rname] = self.nack_reasons.get(rname, 0) + 1
            # a NACKed command changes nothing and says nothing else
            if n_events:
                self.fail("NACK with events", "%s NACKed %s after %d events" % (name, rname, n_events))
            if post[0] != pre[0] or post[1] != pre[1]:
                self.fail("NACK changed state", "%s %r NACKed %s in %s: %s board %r -> %r" % (
                    name, values, rname, S.STATE_NAMES[state], self.diff(pre[3], post[3]) if pre[3] else
                    "(names on the next such failure)", pre[1], post[1]))
                self.explain = True  # name the attributes from now on (slower)
            if post[2] != pre[2]:
                self.fail("NACK wrote flash", "%s %r NACKed %s" % (name, values, rname))
            if reason in FRAMING_REASONS:
                self.fail("framing NACK from dispatcher", "%s %r: %s" % (name, values, rname))
            elif reason == S.NACK_BAD_STATE:
                # REPL also waits for the motors to stop (a retraction may outlast ABORT), and after a stopped line
                # test every command that moves waits for its back-off (PROTOCOL.md "Line test")
                moving = name in ("REPL", "LINE_TEST", "PRIME", "ARM", "RESUME") and pre[1][0]
                if name in ALWAYS_ACCEPTED:
                    self.fail("BAD_STATE", "%s is accepted in every state" % name)
                if value != state or ((limit >> state) & 1 and not moving) or field != 0:
                    self.fail("BAD_STATE", "%s in %s: field %d value %d mask 0x%x" % (
                        name, S.STATE_NAMES[state], field, value, limit))
                if typ in self.refused and self.refused[typ] != limit:
                    self.fail("state mask", "%s BAD_STATE mask 0x%x, want 0x%x" % (name, limit, self.refused[typ]))
                if typ not in self.refused:
                    self.refused[typ] = limit  # a command PROTOCOL.md's table does not list yet
                if (self.accepted.get(typ, 0) >> state) & 1 and not moving:
                    self.fail("state mask", "%s refused in %s where it was accepted before" % (name, S.STATE_NAMES[state]))
                return
            else:
                if reason == S.NACK_LIMIT and field == 0 and name in ("ARM", "RESUME"):
                    # the session total (max_session_nl, or the session's cap when lower) counts every ARM
                    # and RESUME of one session tag
                    if value <= limit or limit != self.session_limit(self.pre_session[2]):
                        self.fail("session cap", "%s: total %d, limit %d" % (name, value, limit))
                elif reason == getattr(S, "NACK_SYRINGE", -1):
                    # the clamp holds another syringe than the command names: both in the NACK
                    want_field = 2 if name == "CONFIGURE" else 0
                    if (name not in ("CONFIGURE", "PRIME", "ARM", "RESUME") or field != want_field
                            or limit != self.board.barrel_um or S.syringe_fits(value, limit)):
                        self.fail("SYRINGE", "%s: field %d, syringe %d, barrel %d um (loaded %d um)" % (
                            name, field, value, limit, self.board.barrel_um))
                elif reason in FIELD_REASONS:
                    if not 1 <= field <= len(values):
                        self.fail("NACK field", "%s %s field %d of %d" % (name, rname, field, len(values)))
                    elif value != values[field - 1]:
                        self.fail("NACK value", "%s %s field %d: value %d, received %d" % (
                            name, rname, field, value, values[field - 1]))
                    if reason == S.NACK_LIMIT and value == limit:
                        self.fail("NACK limit", "%s LIMIT field %d: value %d equals its limit" % (name, field, value))
                elif reason == getattr(S, "NACK_JOURNAL_FULL", -1):
                    if name not in JOURNAL_FULL_FOR or field != 0 or value >= limit:
                        self.fail("JOURNAL_FULL", "%s: field %d, free %d, needed %d" % (name, field, value, limit))
                elif reason == S.NACK_HEAD:
                    # the head on the gun (its ID voltage) is not the one the command names: both in the NACK
                    if (name not in ("CONFIGURE", "PRIME", "ARM", "RESUME") or field != (3 if name == "CONFIGURE" else 0)
                            or limit != self.board.head_mv or S.head_fits(value, limit)):
                        self.fail("HEAD", "%s: field %d, head %d, ID %d mV (fitted %d mV)" % (
                            name, field, value, limit, self.board.head_mv))
                elif reason == S.NACK_CHANNEL:
                    # ARM/RESUME: the head's path holds another channel's drug (value the program's, limit the
                    # path's); PRIME: less than the flushing volume (value < limit; its check above)
                    if name in ("ARM", "RESUME"):
                        bad = field != 0 or value == limit or not 1 <= value <= S.CHANNELS
                    else:
                        bad = name != "PRIME" or field != 1 or value >= limit
                    if bad:
                        self.fail("CHANNEL", "%s: field %d, value %d, limit %d" % (name, field, value, limit))
                elif reason == S.NACK_HELLO_FIRST:
                    if name != "ABORT":
                        self.fail("HELLO_FIRST", "for %s" % name)
                elif reason == NACK_NOT_PAIRING:
                    if name not in ("PAIR", "REPL"):  # the fake board never enters pairing mode
                        self.fail("NOT_PAIRING", "for %s" % name)
                elif reason == NACK_OTHER_HOST:
                    if name != "OPEN":  # its values: check_fields
                        self.fail("OTHER_HOST", "for %s" % name)
                else:
                    self.fail("NACK reason", "%s NACKed with reason %d" % (name, reason))
        self.check_fields(name, typ, fields, values, rtype, rv, state, settings_after, opening, watchdog0)

    def check_epoch(self, name, r):
        # every record names the journal's epoch (IDENTITY journal_epoch), unchanged across resets:
        # a record is (epoch, record_id); RECORD's "none left" carries 0
        epoch = r.get("journal_epoch", r.get("epoch"))
        if epoch is None or (name == "RECORD" and not r.get("record_id")):
            return
        if self.journal_epoch is None:
            self.journal_epoch = epoch
        elif epoch != self.journal_epoch:
            self.fail("journal epoch", "%s says %d, the journal's is %d" % (name, epoch, self.journal_epoch))

    def check_record_kind(self, r):
        # a journal record is a delivery, an alarm (point = ALARM_*) or a program's end (point = END_*)
        kind, point = r.get("kind"), r.get("point")
        if kind == getattr(S, "KIND_ALARM", -1):
            bad = not 1 <= point < len(S.ALARM_NAMES)
        elif kind == getattr(S, "KIND_END", -1):
            bad = not 1 <= point < len(S.END_NAMES)
        else:
            bad = kind not in getattr(S, "DELIVERY_KINDS", (kind,))
        if bad:
            self.fail("RECORD kind", "record %d: kind %r, point %r" % (r.get("record_id"), kind, point))

    def check_info_reply(self, rtype, rv, post_state, rx_at_call, values):
        names = [f[0] for f in FIELDS[rtype]]
        r = dict(zip(names, rv))
        self.check_epoch(NAME[rtype], r)
        if "boot_count" in r:
            # IDENTITY and STATUS_REPLY name this boot; a new boot a new value (section 3)
            got = r["boot_count"] & 0xFFFF
            if self.boot_count is None:
                if got == self.last_boot_count:
                    self.fail("boot_count", "%s says %d, as before the reset" % (NAME[rtype], got))
                self.boot_count = got
            elif got != self.boot_count:
                self.fail("boot_count", "%s says %d, this boot is %d" % (NAME[rtype], got, self.boot_count))
        if rtype == S.IDENTITY:
            if r.get("protocol") != S.PROTOCOL_VERSION:
                self.fail("IDENTITY", "protocol %r" % r.get("protocol"))
            if "auth_counter" in r and self.signer is not None:
                got = r["auth_counter"]
                if self.auth_counter is not None and got != self.auth_counter:
                    self.fail("IDENTITY auth_counter", "%d, the last accepted was %d" % (got, self.auth_counter))
                    self.auth_reset = True
                elif got < self.accepted_max:
                    # after a reset the device must still refuse every counter it accepted before
                    self.fail("auth counter after a reset", "IDENTITY auth_counter %d, but %d was accepted before" % (
                        got, self.accepted_max))
                    self.auth_reset = True
                elif self.saturated:
                    self.auth_reset = True
                self.auth_counter = got
            if "paired" in r and r["paired"] != (1 if self.signer else 0):
                self.fail("IDENTITY paired", "%r" % r["paired"])
            got = [r[n] for n in SETTING_NAMES if n in r]
            if got != self.settings[: len(got)]:
                self.fail("IDENTITY settings", "reports %r, last ACKed %r" % (got, self.settings))
            if "cal_ppm" in r and "syringe" in r:
                want = self.calibration.get(r["syringe"], 1000000)
                if r["cal_ppm"] != want:
                    self.fail("IDENTITY cal_ppm", "syringe %d: %d, last ACKed %d" % (r["syringe"], r["cal_ppm"], want))
        elif rtype == REPLY_OF.get("RECORDS"):
            # section 4 RECORDS: acknowledge ack_id, answer with the oldest record still unacknowledged
            rid = r.get("record_id")
            if rid == 0 and (any(rv) or r.get("pending")):
                self.fail("RECORD", "record_id 0 with fields %r" % (rv,))
            if rid and not r.get("pending"):
                self.fail("RECORD", "record %d with pending %r" % (rid, r.get("pending")))
            if rid:
                self.check_record_kind(r)
            if values[0] and values[0] == self.oldest_record and rid == values[0]:
                self.fail("RECORD", "record %d acknowledged, still the oldest unacknowledged" % rid)
            self.oldest_record = rid
            self.unacked = r.get("pending", 0)
        elif rtype == S.STATUS_REPLY:
            if r.get("state") != post_state:
                self.fail("STATUS_REPLY", "state %r, device in %d" % (r.get("state"), post_state))
            self.unacked = r.get("unacked", 0)
            if "rx_errors" in r and r["rx_errors"] != rx_at_call & 0xFFFF:
                self.fail("STATUS_REPLY rx_errors", "reports %d, spec gives %d" % (r["rx_errors"], rx_at_call & 0xFFFF))
            if "overruns" in r:
                self.check_loop_health(r["overruns"], r["worst_pass_us"])

    def check_loop_health(self, overruns, worst_us):
        # section 5 STATUS_REPLY: passes over their tick since boot (u16, saturating) and the longest
        # pass: never going back within a boot, an overrun means a pass longer than the tick, and
        # no more than the loop itself counted (it may count the pass that answered after the reply)
        seen_n, seen_us = self.loop_seen
        a = getattr(self.app, "overruns", None)
        if overruns < seen_n or worst_us < seen_us:
            self.fail("STATUS_REPLY overruns", "went back: %d, %d us after %d, %d us" % (overruns, worst_us, seen_n,
                                                                                         seen_us))
        if overruns and worst_us <= fwapp.TICK_US:
            self.fail("STATUS_REPLY overruns", "%d overruns, the longest pass %d us is within the tick" % (
                overruns, worst_us))
        if a is not None and (overruns > min(a, 0xFFFF) or worst_us > self.app.worst_pass_us):
            self.fail("STATUS_REPLY overruns", "reports %d, %d us; the loop counted %d, %d us" % (
                overruns, worst_us, a, self.app.worst_pass_us))
        self.loop_seen = (overruns, worst_us)

    def diff(self, a, b):
        out = []
        for x, y in zip(a, b):
            if x != y:
                out.append("%s: %r -> %r" % (x[0], x[1], y[1]))
        if not out and a != b:
            out.append("%r -> %r" % (a, b))
        if len(a) != len(b):
            out.append("%d objects -> %d" % (len(a), len(b)))
        return "; ".join(out)[:800]

    # -- the field checks the spec's tables define exactly
    def check_fields(self, name, typ, f, values, rtype, rv, state, settings_after, opening=None, watchdog0=None):
        want = None  # None: the tables say ACK for what they cover
        covered = ()  # 1-based fields whose checks the oracle knows
        idx = {}
        for i, fd in enumerate(FIELDS[typ]):
            idx[fd[0]] = i + 1
        if name == "SETTINGS":
            covered = tuple(range(1, len(SETTING_NAMES) + 1))
            for i, row in enumerate(S.SETTINGS_TABLE):
                v = values[i]
                if v < row[3]:
                    want = (S.NACK_LIMIT, i + 1, v, row[3])
                    break
                if v > row[4]:
                    want = (S.NACK_LIMIT, i + 1, v, row[4])
                    break
        elif name == "CALIBRATE" and "syringe" in f and "area_ppm" in f:
            covered = (idx["syringe"], idx["area_ppm"])
            ppm = f["area_ppm"]
            if f["syringe"] not in S.SYRINGES:
                want = (S.NACK_BAD_VALUE, idx["syringe"], f["syringe"], 0)
            elif ppm < S.MIN_CAL_PPM:
                want = (S.NACK_LIMIT, idx["area_ppm"], ppm, S.MIN_CAL_PPM)
            elif ppm > S.MAX_CAL_PPM:
                want = (S.NACK_LIMIT, idx["area_ppm"], ppm, S.MAX_CAL_PPM)
        elif name == "PRIME" and "volume_nl" in f:
            covered = (idx["volume_nl"],)
            v = f["volume_nl"]
            if v < S.MIN_VOLUME_NL:
                want = (S.NACK_LIMIT, idx["volume_nl"], v, S.MIN_VOLUME_NL)
            elif v > S.MAX_PRIME_NL:
                want = (S.NACK_LIMIT, idx["volume_nl"], v, S.MAX_PRIME_NL)
            elif v < S.HEADS[self.cfg_head][4]:
                # a dry head's prime must fill its dead volume (section 7); the model does not follow
                # whether an earlier prime of this head completed, so either answer is right
                want = ("one of", None, (S.NACK_LIMIT, idx["volume_nl"], v, S.HEADS[self.cfg_head][4]),
                        (S.NACK_CHANNEL, idx["volume_nl"], v, S.FLUSH_VOLUMES * S.HEADS[self.cfg_head][4]))
            elif v < S.FLUSH_VOLUMES * S.HEADS[self.cfg_head][4]:
                # the other channel's drug in the head's path must be flushed out (section 9c); nor is
                # that followed here
                want = ("one of", None, (S.NACK_CHANNEL, idx["volume_nl"], v, S.FLUSH_VOLUMES * S.HEADS[self.cfg_head][4]))
        elif name == "CONFIGURE":
            want, covered = self.configure_expect(f, idx)
        elif name == "OPEN":
            # section 11: refused while the session is live: its host heard within link_timeout_ms,
            # or a watched state (there its silence ends in LINK_LOST first); value = ms since heard
            timeout = self.settings[S.SET_LINK_TIMEOUT]
            silent = max(0, v_ticks_diff(v_ms(), self.heard_ms if watchdog0 is None else watchdog0))
            if self.session and (silent <= timeout or state in WATCHED):
                want = (NACK_OTHER_HOST, 0, silent, timeout)
            elif rtype != S.ACK:
                self.fail("OPEN check", "NACK %r in %s: no session is live (%s, heard %d ms ago, timeout %d ms)" % (
                    tuple(rv[1:]), S.STATE_NAMES[state], "open" if self.session else "none", silent, timeout))
        elif name == "CLOSE":
            if rtype != S.ACK:
                self.fail("CLOSE", "NACK %r in %s, CLOSE is always accepted" % (tuple(rv[1:]), S.STATE_NAMES[state]))
        elif name == "ABORT":
            # section 8: after LINK_LOST only a HELLO re-opens ABORT; otherwise always ACKed
            if state == S.STATE_FAULT and self.hello_needed:
                want = (S.NACK_HELLO_FIRST, 0, S.ALARM_LINK_LOST, 0)
            elif rtype != S.ACK:
                self.fail("ABORT", "NACK %r in %s, ABORT is always accepted" % (tuple(rv[1:]), S.STATE_NAMES[state]))
        else:
            return
        if want == "skip":
            return
        got = None if rtype == S.ACK else (rv[1], rv[2], rv[4], rv[5])
        if want is not None and want[0] == "one of":
            if got not in want[1:]:
                self.fail(name + " check", "%r in %s: got %s, spec gives NACK %r" % (
                    values, S.STATE_NAMES[state], "ACK" if got is None else "NACK %r" % (got,), want[1:]))
        elif want is not None:
            if got != want:
                self.fail(name + " check", "%r in %s: got %s, spec gives NACK %r" % (
                    values, S.STATE_NAMES[state], "ACK" if got is None else "NACK %r" % (got,), want))
        elif got is not None and got[0] in FIELD_REASONS and got[1] in covered:
            self.fail(name + " check", "%r in %s: NACK %r, the spec's checks all pass" % (
                values, S.STATE_NAMES[state], got))
        if rtype == S.ACK:
            if name == "SETTINGS":
                self.settings = list(values)
                if settings_after != self.settings:
                    self.fail("SETTINGS", "ACKed %r, device holds %r" % (values, settings_after))
            elif name == "CALIBRATE":
                self.calibration[f["syringe"]] = f["area_ppm"]
            elif name == "CONFIGURE":
                self.cfg_head = f["head"]
            elif name == "OPEN" and opening is not None:
                # the session is OPEN's counter; its commands count from 1 (section 11)
                self.session = self.host_session = opening
                self.session_counter = self.host_counter = 0
            elif name == "CLOSE":
                self.session = 0

    cfg_head = 1  # the head of the last CONFIGURE ACKed (its dead volume bounds a prime from below)
    CONFIGURE_FIELDS = ("technique", "syringe", "head", "needle_length_um", "depth_um", "volume_nl", "count",
                        "cadence_mhz", "flow_nl_s", "vacuum_kpa", "channel", "session_cap_nl")

    def configure_checks(self, f):
        # PROTOCOL.md section 7, "CONFIGURE check order", steps 3 on (technique and syringe
        # known): (field, low, high, reason above high), lazily, in order
        st = dict(zip(SETTING_NAMES, self.settings))
        tech = f["technique"]
        nappage = tech == S.TECHNIQUE_NAPPAGE
        if tech == S.TECHNIQUE_POINT:
            vmax, cmax = st["max_point_nl"], S.MAX_POINTS
        elif nappage:
            vmax, cmax = st["max_shot_nl"], S.MAX_SHOTS
        else:
            vmax, cmax = min(st["max_point_nl"], S.MAX_TEST_DOSE_NL), 1
        needles = S.HEADS[f["head"]][1] if f["head"] in S.HEADS else 1
        yield ("needle_length_um", S.MIN_DEPTH_UM + S.NEEDLE_MARGIN_UM, 65535, S.NACK_LIMIT)
        yield ("depth_um", S.MIN_DEPTH_UM, min(st["max_depth_um"], f["needle_length_um"] - S.NEEDLE_MARGIN_UM),
               S.NACK_LIMIT)
        yield ("volume_nl", max(self.least_doses(f["syringe"])[0], needles * S.MIN_VOLUME_NL), needles * vmax,
               S.NACK_LIMIT)
        yield ("count", 1, cmax, S.NACK_LIMIT)
        yield ("flow_nl_s", S.MIN_FLOW_NL_S, st["max_flow_nl_s"], S.NACK_LIMIT)
        cap = f.get("session_cap_nl", 0)
        same = f.get("session") == self.pre_session[0]
        yield ("session_cap_nl", 0, S.MAX_SESSION_NL, S.NACK_LIMIT)
        in_force = self.pre_session[2] if same else 0
        if in_force:  # a continuing session's cap is never raised, nor dropped (0): (LIMIT, field, cap in force)
            yield ("session_cap_nl", in_force if cap == 0 else -1, in_force, S.NACK_LIMIT)
        # volume x count <= min(session limit, capacity): NACK limit = the largest count allowed
        used = self.pre_session[1] if same else 0
        limit = max(0, min(self.session_limit(cap) - used, S.syringe_capacity_nl(f["syringe"])))
        yield ("count", -1, limit // f["volume_nl"], S.NACK_LIMIT)
        if nappage:
            yield ("cadence_mhz", S.MIN_CADENCE_MHZ, st["max_cadence_mhz"], S.NACK_LIMIT)
            shot_ms = (2 * f["depth_um"] * 1000 // FuzzBoard.NEEDLE_SPEED_UM_S + f["volume_nl"] * 1000 // f["flow_nl_s"]
                       + S.SHOT_SETTLE_MS + 2)
            yield ("cadence_mhz", -1, 800000 // shot_ms, S.NACK_INFEASIBLE)
        else:
            yield ("cadence_mhz", -1, 0, S.NACK_BAD_VALUE)

    def session_limit(self, cap_nl):
        # PROTOCOL.md "Sessions": max_session_nl, or the session's cap when lower (0: none)
        setting = self.settings[S.SET_SESSION]
        return cap_nl if 0 < cap_nl < setting else setting

    def configure_oracle(self, f, idx):
        # the NACK PROTOCOL.md section 7 gives (None: ACK), and the fields its checks cover
        for n in self.CONFIGURE_FIELDS:
            if n not in f:
                return "skip", ()
        covered = tuple(idx[n] for n in self.CONFIGURE_FIELDS)
        tech = f["technique"]
        syr = f["syringe"]
        if tech not in (S.TECHNIQUE_POINT, S.TECHNIQUE_NAPPAGE, S.TECHNIQUE_TEST_DOSE):
            return (S.NACK_BAD_VALUE, idx["technique"], tech, 0), covered
        if syr not in S.SYRINGES:
            return (S.NACK_BAD_VALUE, idx["syringe"], syr, 0), covered
        head = f["head"]
        if head not in S.HEADS:
            return (S.NACK_BAD_VALUE, idx["head"], head, 0), covered
        if f["needle_length_um"] != S.HEADS[head][3]:  # the head table's needle, nothing else
            return (S.NACK_INFEASIBLE, idx["needle_length_um"], f["needle_length_um"], S.HEADS[head][3]), covered
        if tech == S.TECHNIQUE_NAPPAGE and S.HEADS[head][1] > 1:
            return (S.NACK_INFEASIBLE, idx["head"], head, 1), covered
        vac = f["vacuum_kpa"]  # a single needle has a contact switch, a multi-needle head vacuum within the setting
        if S.HEADS[head][1] == 1 and vac:
            return (S.NACK_INFEASIBLE, idx["vacuum_kpa"], vac, 0), covered
        if S.HEADS[head][1] > 1 and vac < S.MIN_VACUUM_KPA:
            return (S.NACK_LIMIT, idx["vacuum_kpa"], vac, S.MIN_VACUUM_KPA), covered
        if S.HEADS[head][1] > 1 and vac > self.settings[S.SET_VACUUM]:
            return (S.NACK_LIMIT, idx["vacuum_kpa"], vac, self.settings[S.SET_VACUUM]), covered
        lows = self.least_doses(syr)
        if len(lows) > 1 and min(lows) <= f["volume_nl"] < max(lows):
            return "skip", ()  # the rounding of pi decides this one
        for n, low, high, reason in self.configure_checks(f):
            v = f[n]
            if v < low:
                return (S.NACK_LIMIT, idx[n], v, low), covered
            if v > high:
                return (reason, idx[n], v, 0 if reason == S.NACK_BAD_VALUE else high), covered
        channel = f.get("channel", 1)
        if not 1 <= channel <= S.CHANNELS:
            return (S.NACK_BAD_VALUE, idx["channel"], channel, S.CHANNELS), covered
        if channel > self.board.CHANNELS:  # a channel the board has no plunger axis for
            return (S.NACK_BAD_VALUE, idx["channel"], channel, self.board.CHANNELS), covered
        if not S.syringe_fits(syr, self.board.barrel_um):  # then the syringe in the clamp (section 7)
            return (S.NACK_SYRINGE, idx["syringe"], syr, self.board.barrel_um), covered
        if not S.head_fits(head, self.board.head_mv):  # then the head on the gun (its ID resistor)
            return (S.NACK_HEAD, idx["head"], head, self.board.head_mv), covered
        return None, covered

    def configure_expect(self, f, idx):
        # session 0 must be refused (BAD_VALUE, its field, 0, 0); the check-order table of
        # section 7 does not place it, so either that NACK or the table's is right
        want, covered = self.configure_oracle(f, idx)
        if f.get("session", 1) != 0 or want == "skip":
            return want, covered
        session_nack = (S.NACK_BAD_VALUE, idx["session"], 0, 0)
        return ("one of", session_nack, want or session_nack), covered + (idx["session"],)

    def least_doses(self, syringe):
        # max(500, MIN_DOSE_STEPS steps) with pl_per_step from PROTOCOL.md section 6 (spec.pl_per_step)
        pl = S.pl_per_step(syringe, FuzzBoard.PLUNGER_STEPS_PER_MM, self.calibration.get(syringe, 1000000))
        return [max(S.MIN_VOLUME_NL, S.MIN_DOSE_STEPS * pl // 1000)]

    # -- time passes: the control loop ticks, the operator plays with the trigger

# ---- mutations ------------------------------------------------------------------------------------
def spec_ints():
    vals = set()
    for k in dir(S):
        v = getattr(S, k)
        if isinstance(v, int) and not isinstance(v, bool) and k.isupper():
            vals.add(v)
    for row in S.SETTINGS_TABLE:
        vals.update(row[2:])
    for code in S.SYRINGES:
        vals.add(code)
        vals.add(S.syringe_capacity_nl(code))
    out = set()
    for v in vals:
        out.update((v - 1, v, v + 1))
    for v in (0, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF):
        out.update((v - 1, v, v + 1))
    return sorted(v for v in out if v >= -0x80000000)


INTERESTING = spec_ints()
UMAX = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF, "b": 0x7F, "h": 0x7FFF, "i": 0x7FFFFFFF}
UMIN = {"B": 0, "H": 0, "I": 0, "b": -0x80, "h": -0x8000, "i": -0x80000000}


# commands that reset the board (REPL): common enough to be tested, rare enough for sessions to get far
RARE = ("REPL",)


def default_value(code):
    return b"x" if code.endswith("s") else 1


def templates_from(cases):
    # (type, values) per message type: from a golden vector of that type (fields by name,
    # missing ones default), else defaults; several where several vectors exist
    out = {}
    for case in cases:
        if not case.get("encode"):
            continue
        r = case["results"][0]
        t = TYPE_OF.get(r["frame"])
        if t is None:
            continue
        vals = []
        for name, code in FIELDS[t]:
            v = r["fields"].get(name)
            if v is None:
                v = default_value(code)
            vals.append(v.encode() if isinstance(v, str) else v)
        out.setdefault(t, []).append(vals)
    for t in MSG:
        if t not in out:
            out[t] = [[default_value(code) for _, code in FIELDS[t]]]
    return out


class Mutator:
    def __init__(self, fz, cases):
        self.fz = fz
        self.seeds = [binascii.unhexlify(c["hex"]) for c in cases]
        self.templates = templates_from(cases)
        self.ops = (
            (8, "next command of a session", self.advance),
            (10, "valid command", self.valid_command),
            (3, "valid device frame", self.valid_device_frame),
            (3, "retransmission", self.retransmission),
            (2, "cache key, other payload", self.cache_other_payload),
            (2, "replayed command", self.replay),
            (2, "another host's session", self.other_session),
            (14, "field value", self.field_value),
            (6, "field at a limit", self.field_at_limit),
            (8, "payload bytes, CRC fixed", self.payload_bytes),
            (6, "type swap, CRC fixed", self.type_swap),
            (5, "length lie, CRC fixed", self.length_lie_fixed),
            (3, "version, CRC fixed", self.version),
            (10, "bit flips", self.bit_flips),
            (8, "insert/delete/overwrite", self.edit_bytes),
            (6, "truncation", self.truncation),
            (4, "length lie", self.length_lie),
            (4, "garbage then frame", self.garbage_then_frame),
            (4, "golden vector", self.golden),
            (3, "splice", self.splice),
            (3, "random bytes", self.random_bytes),
        )
        self.total = sum(w for w, _, _ in self.ops)
        # session phases: a host running a program (the next command of a session) through a
        # link that damages frames, but sends no other command: sessions get to DELIVERING and
        # COMPLETE, and whatever is damaged there must change nothing
        harmless = ("bit flips", "insert/delete/overwrite", "truncation", "length lie", "garbage then frame",
                    "random bytes", "version, CRC fixed", "valid device frame", "retransmission")
        self.session_ops = tuple((20 if name == "next command of a session" else w, name, fn)
                                 for w, name, fn in self.ops if name in harmless or name == "next command of a session")
        self.session_total = sum(w for w, _, _ in self.session_ops)

    def pick(self):
        # a host opens its session before its first signed command: after a reset or a CLOSE,
        # mostly that first (the rest of the time session commands meet NO_SESSION)
        if OPEN in AUTH_TYPES and not self.fz.session and rint(3):
            return "open the host session", self.open_session
        # 6000-frame cycles: 4000 frames of every mutation, then a 2000-frame session phase
        if self.fz.case_no % 6000 < 4000:
            ops, r = self.ops, rint(self.total)
        else:
            ops, r = self.session_ops, rint(self.session_total)
        for w, name, fn in ops:
            if r < w:
                return name, fn
            r -= w

    # -- building blocks
    def command_type(self):
        t = COMMANDS[rint(len(COMMANDS))]
        while NAME[t] in RARE and rint(20):
            t = COMMANDS[rint(len(COMMANDS))]
        return t

    def template(self, msg_type=None):
        if msg_type is None:
            msg_type = self.command_type()
        ts = self.templates[msg_type]
        return msg_type, list(ts[rint(len(ts))])

    def build(self, msg_type, values, seq=None, counter=None, sign=True, session=None):
        # an authenticated command is signed with the next counter (or this one), a session
        # command in the fuzzer's host session (or this one; "keep": the one in values), unless sign=False
        payload = bytearray(struct.pack(FMT[msg_type], *values))
        if sign:
            self.sign(msg_type, payload, counter, session)
        return mkframe(msg_type, rnd(8) if seq is None else seq, payload)

    def sign(self, msg_type, payload, counter=None, session=None):
        # OPEN counts with the device's counter, session commands within the host session (section 11)
        fz = self.fz
        if msg_type in AUTH_TYPES and fz.signer is not None and len(payload) == SIZE[msg_type]:
            in_session = msg_type in SESSION_TYPES
            if counter is None:
                if in_session:
                    fz.host_counter += 1
                    counter = fz.host_counter
                else:  # above the device's counter once it said (IDENTITY, or an AUTH NACK's limit)
                    fz.sign_counter = max(fz.sign_counter, fz.auth_counter or 0) + 1
                    counter = fz.sign_counter
            if not in_session or session == "keep":
                session = None
            elif session is None:
                session = fz.host_session
            fz.signer.sign(msg_type, payload, counter, session)

    def any_frame(self):
        if rint(4):
            t, v = self.template()
        else:
            t, v = self.template(DEVICE_TYPES[rint(len(DEVICE_TYPES))])
        return self.build(t, v)

    def value_for(self, code, current):
        if code.endswith("s"):
            return bytes(rnd(8) for _ in range(rint(int(code[:-1]) + 1)))
        k = rint(4)
        if k == 0:
            v = INTERESTING[rint(len(INTERESTING))]
        elif k == 1 and isinstance(current, int):
            v = current + rint(2 * abs(current) + 3) - abs(current) - 1  # near the valid one
        elif k == 2:
            v = rnd(8 * struct.calcsize(code)) if code in UMAX else 0
        else:
            v = (UMIN[code], UMAX[code], 0, 1)[rint(4)]
        if v > UMAX[code]:
            v = UMAX[code]
        if v < UMIN[code]:
            v = UMIN[code]
        return v

    # -- the operators: each returns bytes
    def valid_command(self):
        return self.build(*self.template())

    def open_session(self):
        return self.build(*self.template(OPEN))

    def other_session(self):
        # a session command signed with the key in a session not open: another host's, an old one
        t = SESSION_TYPES[rint(len(SESSION_TYPES))] if SESSION_TYPES else self.command_type()
        while NAME[t] in RARE and rint(20):
            t = SESSION_TYPES[rint(len(SESSION_TYPES))]
        fz = self.fz
        session = (fz.host_session + 1 + rint(3), fz.host_session - 1 - rint(3), 0, rnd(32))[rint(4)]
        return self.build(*self.template(t), session=session & 0xFFFFFFFF)

    def advance(self):
        # the command a host would send next in this state (a guide to reach every state,
        # not an oracle): more of the fuzzing then happens in ARMED, DELIVERING, PAUSED...
        state = self.fz.dev.state
        pick = rint(4)
        if "RECORDS" in TYPE_OF and rint(6 if self.fz.unacked < JOURNAL_CELLS // 2 else 2) == 0:
            # the host stored the oldest record: acknowledge it (the journal would fill up)
            t, v = self.template(TYPE_OF["RECORDS"])
            v[0] = self.fz.oldest_record
            return self.build(t, v)
        if state != S.STATE_IDLE and CLOCK[0] - self.fz.state_since > 1500000 and rint(2):
            name = "ABORT"  # long enough in this state
        elif state == S.STATE_FAULT:
            name = ("ABORT", "HELLO")[pick & 1]
        elif state == S.STATE_IDLE:
            name = ("CONFIGURE", "CONFIGURE", "CALIBRATE", "SETTINGS")[pick]
        elif state == S.STATE_CONFIGURED:
            name = "PRIME"
        elif state == S.STATE_PRIMED or state == S.STATE_COMPLETE:
            name = ("ARM", "ARM", "ARM", "CONFIGURE")[pick]
        elif state == S.STATE_ARMED or state == S.STATE_DELIVERING:
            # the controlling host's heartbeat is POLL (section 8); now and then an anonymous STATUS
            name = ("POLL", "STATUS", "POLL", "PAUSE")[pick] if rint(4) == 0 else "POLL"
        elif state == S.STATE_PAUSED:
            name = ("RESUME", "RESUME", "POLL", "ABORT")[pick]
        else:
            name = "POLL"
        t = TYPE_OF.get(name)
        if t is None:
            return self.valid_command()
        t, v = self.template(t)
        names = [f[0] for f in FIELDS[t]]
        if name == "CONFIGURE" and "count" in names:
            v[names.index("count")] = 1 + rint(3)  # short programs reach COMPLETE
        if name == "PRIME" and "volume_nl" in names:
            v[names.index("volume_nl")] = 1000 + rint(10000)
        return self.build(t, v)

    def valid_device_frame(self):
        return self.build(*self.template(DEVICE_TYPES[rint(len(DEVICE_TYPES))]))

    def retransmission(self):
        return self.fz.prev_case or self.valid_command()

    def cache_other_payload(self):
        last = self.fz.last_cmd
        if last is None:
            return self.valid_command()
        typ, seq, payload = last
        p = bytearray(payload)
        for _ in range(1 + rint(3)):
            if p:
                p[rint(len(p))] = rnd(8)
        return mkframe(typ, seq, p)

    def field_value(self):
        t, v = self.template()
        if not FIELDS[t]:
            t, v = self.template(TYPE_OF["CONFIGURE"]) if "CONFIGURE" in TYPE_OF else (t, v)
        names = [f[0] for f in FIELDS[t]]
        changed = []
        for _ in range(1 + (rint(4) == 0)):
            if v:
                i = rint(len(v))
                v[i] = self.value_for(FIELDS[t][i][1], v[i])
                changed.append(names[i])
        if t in AUTH_TYPES and "mac" in changed:
            return self.build(t, v, sign=False)  # a forged tag
        session = "keep" if "host_session" in changed else None  # signed in that session
        if t in AUTH_TYPES and "counter" in changed:
            # signed with an old counter (a replay) or one further ahead; never near 2^32, where
            # one accepted frame would lock authenticated commands out for the rest of the run
            fz = self.fz
            c = v[names.index("counter")]
            if t in SESSION_TYPES:
                if c > fz.host_counter:
                    c = fz.host_counter + 1 + rint(1 << 16)
                    fz.host_counter = c
            elif c > fz.sign_counter:
                c = fz.sign_counter + 1 + rint(1 << 16)
                fz.sign_counter = c
            return self.build(t, v, counter=c, session=session)
        return self.build(t, v, session=session)

    def field_at_limit(self):
        # a field of CONFIGURE, SETTINGS, CALIBRATE or PRIME just inside or just outside the limit
        # the spec gives it in the device's present settings (PROTOCOL.md sections 4 and 7)
        fz = self.fz
        name = ("CONFIGURE", "CONFIGURE", "SETTINGS", "CALIBRATE", "PRIME")[rint(5)]
        if name not in TYPE_OF:
            return self.field_value()
        t, v = self.template(TYPE_OF[name])
        names = [f[0] for f in FIELDS[t]]
        f = dict(zip(names, v))
        bounds = []
        if name == "CONFIGURE":
            if all(n in f for n in fz.CONFIGURE_FIELDS) and f["syringe"] in S.SYRINGES:
                bounds = [(n, low, high) for n, low, high, _ in fz.configure_checks(f)]
        elif name == "SETTINGS":
            bounds = [(row[0], row[3], row[4]) for row in S.SETTINGS_TABLE]
        elif name == "CALIBRATE":
            bounds = [("syringe", min(S.SYRINGES), max(S.SYRINGES)), ("area_ppm", S.MIN_CAL_PPM, S.MAX_CAL_PPM)]
        else:
            bounds = [("volume_nl", S.MIN_VOLUME_NL, S.MAX_PRIME_NL)]
        bounds = [b for b in bounds if b[0] in f]
        if not bounds:
            return self.field_value()
        n, low, high = bounds[rint(len(bounds))]
        code = FIELDS[t][names.index(n)][1]
        value = (low - 1, low, high, high + 1)[rint(4)]
        v[names.index(n)] = min(UMAX[code], max(UMIN[code], value))
        return self.build(t, v)

    def payload_bytes(self):
        t, v = self.template()
        p = bytearray(struct.pack(FMT[t], *v))
        if t in SESSION_TYPES and len(p) == SIZE[t]:
            struct.pack_into("<I", p, len(p) - S.AUTH_SIZE - S.SESSION_SIZE, self.fz.host_session & 0xFFFFFFFF)
        for _ in range(1 + rint(3)):
            if p:
                i = rint(len(p))
                p[i] = rnd(8) if rint(2) else p[i] ^ (1 << rint(8))
        if rint(4):
            self.sign(t, p, session="keep")  # mostly signed after the damage, so it reaches the dispatcher
        return mkframe(t, rnd(8), p)

    def replay(self):
        # the last command the dispatcher ran, with another SEQ: not a retransmission, a replay
        last = self.fz.last_cmd
        if last is None or last[0] not in AUTH_TYPES:
            return self.valid_command()
        return mkframe(last[0], (last[1] + 1 + rint(255)) & 0xFF, last[2])

    def type_swap(self):
        t, v = self.template()
        k = rint(4)
        if k == 0:
            nt = rnd(8)
        elif k == 1:
            nt = (0, 0x3F, 0x40, 0x7F, 0x80, 0xBF, 0xC0, 0xFF)[rint(8)]
        elif k == 2:
            nt = self.command_type()
        else:
            nt = DEVICE_TYPES[rint(len(DEVICE_TYPES))]
        return mkframe(nt, rnd(8), struct.pack(FMT[t], *v))

    def length_lie_fixed(self):
        t, v = self.template()
        p = struct.pack(FMT[t], *v)
        n = rint(S.MAX_PAYLOAD + 1) if rint(2) else max(0, len(p) + rint(5) - 2)
        p = (p + bytes(rnd(8) for _ in range(n)))[:n]
        return mkframe(t, rnd(8), p)

    def version(self):
        t, v = self.template()
        return mkframe(t, rnd(8), struct.pack(FMT[t], *v), version=(0, 2, 255, rnd(8))[rint(4)])

    def bit_flips(self):
        f = bytearray(self.any_frame())
        for _ in range(1 + rint(3)):
            f[rint(len(f))] ^= 1 << rint(8)
        return bytes(f)

    def edit_bytes(self):
        f = bytearray(self.any_frame())
        for _ in range(1 + rint(3)):
            k = rint(3)
            i = rint(len(f) + 1)
            b = (0x00, 0xFF, S.SYNC0, S.SYNC1, rnd(8))[rint(5)]
            if k == 0:
                f[i:i] = bytes((b,))
            elif k == 1 and len(f) > 1:
                f[i : i + 1] = b""
            elif i < len(f):
                f[i] = b
        return bytes(f) or b"\x00"

    def truncation(self):
        f = self.any_frame()
        cut = f[: 1 + rint(len(f) - 1)]
        return cut + self.any_frame() if rint(2) else cut

    def length_lie(self):
        f = bytearray(self.any_frame())
        f[2] = rnd(8) if rint(2) else min(255, max(0, f[2] + rint(9) - 4))
        return bytes(f)

    def garbage_then_frame(self):
        g = bytes((S.SYNC0, S.SYNC1, rnd(8))[rint(3)] if rint(3) == 0 else rnd(8) for _ in range(1 + rint(24)))
        return g + self.any_frame()

    def golden(self):
        f = bytearray(self.seeds[rint(len(self.seeds))])
        if rint(2) and f:
            f[rint(len(f))] ^= 1 << rint(8)
        return bytes(f)

    def splice(self):
        a = self.bit_flips() if rint(2) else self.any_frame()
        b = self.any_frame()
        i = rint(len(a) + 1)
        return a[:i] + b + a[i:] if rint(2) else a + b

    def random_bytes(self):
        return bytes(((S.SYNC0, S.SYNC1)[rint(2)] if rint(4) == 0 else rnd(8)) for _ in range(1 + rint(80)))


def main():
    doc = json.load(open(VECTORS))
    cases = doc["cases"]
    mount_cwd_as_root()
    notes, wrong = vector_self_check(cases)
    print("mpy_fuzz: seed %d, %d frames, %d golden vectors, %d message types" % (SEED, FRAMES, len(cases), len(MSG)))
    for note in notes:
        print("note:", note)
    fz = Fuzzer(doc)
    for w in wrong:
        fz.fail("vector self-check", w)
    fz.mut = Mutator(fz, cases)
    t0 = time.ticks_ms()
    fz.run()
    seconds = time.ticks_diff(time.ticks_ms(), t0) / 1000
    st = fz.stats
    print("frames tried: %d (%d bytes) in %.1f s: %d frames/s" % (st["frames"], st["bytes"], seconds,
                                                                  st["frames"] / seconds if seconds else 0))
    print("  dropped %d, framing NACKs %d, dispatched %d (ACK %d, NACK %d), cache hits %d, events %d, "
          "timeouts %d, reboots %d (%d by a command)" % (
              st["dropped"], st["framing_nacks"], st["dispatched"], st["acks"], st["nacks"], st["cache_hits"],
              st["events"], st["timeouts"], st["reboots"], st["resets"]))
    print("  NACK reasons:", fz.nack_reasons)
    print("  commands dispatched per state:", fz.states_seen)
    print("  control ticks per state:", dict((S.STATE_NAMES[k], v) for k, v in fz.ticks_in.items()))
    print("failures found: %d" % fz.failures)
    for kind in fz.by_kind:
        print("  %s: %d" % (kind, fz.by_kind[kind]))
    for s in fz.samples:
        print("  #%d %s [%s]: %s\n    frame %s" % (s["case"], s["kind"], s["state"], s["detail"], s["hex"]))
    print(json.dumps({"seed": SEED, "frames": st["frames"], "seconds": seconds,
                      "frames_per_s": int(st["frames"] / seconds) if seconds else 0, "failures": fz.failures,
                      "by_kind": fz.by_kind, "samples": fz.samples, "stats": st, "nack_reasons": fz.nack_reasons,
                      "states": fz.states_seen, "ticks_in": dict((S.STATE_NAMES[k], v) for k, v in fz.ticks_in.items()), "ops": fz.ops, "notes": notes}))


main()
