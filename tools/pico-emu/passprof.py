# Runs ON the emulated Pico (bench_pico_emu.py --only-profile reads its output): where a control pass's time
# goes while the real App.run() loop doses. No host on the link: this script drives the device itself, between
# passes (before the pass's timer starts), with the commands a session sends (ABORT, CONFIGURE, PRIME, ARM) and
# the trigger through "MARK press/release" (the runner drives GP10), and gives the link a signed POLL every
# POLL_MS, as the session runner's heartbeat (its HMAC checked, a STATUS_REPLY built), or with SIGNED = 0 a
# STATUS. With WRAP = 1 each named function is wrapped: emulated us inside it (inclusive, and self = less its
# wrapped callees), its calls, with the wrappers' own cost (calibrated here) taken out.
# The pass is link.poll() to the end of service() (emu_boot.py's probe starts at feed_watchdog()).
# Prepended by the host: PROGRAM (CONFIGURE's values), PRIME_NL, POINTS, POLL_MS, STATUS_FRAME (bytes), WRAP (0/1).
import gc
import time
from time import ticks_diff, ticks_us

import board as B
import board_steppio
from mesoprotocol import spec as S
from mesofw import app as A
from mesofw import compliance, device, dosing, journal, link, needles

_G = [0, 0]  # wrapper cost accumulated (us), the current caller's callees' inclusive us
_ph = [0]  # offset of the phase being counted (0 off, else phase * n): 1 priming, 2 delivering
_names = []
_inc = []
_self = []
_calls = []
# the host's (prepended above this file)
PROGRAM, PRIME_NL, POINTS = globals()["PROGRAM"], globals()["PRIME_NL"], globals()["POINTS"]
POLL_MS, STATUS_FRAME, WRAP = globals()["POLL_MS"], globals()["STATUS_FRAME"], globals()["WRAP"]
SIGNED = globals().get("SIGNED", 1)
_polls = []  # signed POLL frames, made before the loop runs (the session's key and counters)
W = [0]  # one wrapper's own cost, emulated us (calibrated below)
BIAS = [0]


def _wrap(cls, name, label, nargs):
    i = len(_names)
    _names.append(label)
    f = getattr(cls, name)

    def done(i, t0, o0, c0):
        el = ticks_diff(ticks_us(), t0)
        inc = el - BIAS[0] - (_G[0] - o0)
        k = _ph[0] + i
        _inc[k] += inc
        _self[k] += inc - (_G[1] - c0)
        _calls[k] += 1
        _G[0] += W[0]
        _G[1] = c0 + inc

    def w0(self):
        o0, c0 = _G[0], _G[1]
        t0 = ticks_us()
        r = f(self)
        done(i, t0, o0, c0)
        return r

    def w1(self, a):
        o0, c0 = _G[0], _G[1]
        t0 = ticks_us()
        r = f(self, a)
        done(i, t0, o0, c0)
        return r

    def w2(self, a, b):
        o0, c0 = _G[0], _G[1]
        t0 = ticks_us()
        r = f(self, a, b)
        done(i, t0, o0, c0)
        return r

    def w3(self, a, b, c):
        o0, c0 = _G[0], _G[1]
        t0 = ticks_us()
        r = f(self, a, b, c)
        done(i, t0, o0, c0)
        return r

    def wn(self, *a):
        o0, c0 = _G[0], _G[1]
        t0 = ticks_us()
        r = f(self, *a)
        done(i, t0, o0, c0)
        return r
    setattr(cls, name, (w0, w1, w2, w3)[nargs] if nargs < 4 else wn)


class _Dummy:
    def nothing(self, a):
        return a


def _calibrate():
    # W: a wrapped call minus a plain one (what a caller's time holds per wrapped callee); BIAS: what a wrapper's
    # own measurement adds to its callee's (the timer's calls around it), from an empty method's figure
    d = _Dummy()
    plain = _Dummy.nothing
    t0 = ticks_us()
    for _ in range(200):
        pass
    t1 = ticks_us()
    for _ in range(200):
        d.nothing(1)
    t2 = ticks_us()
    _wrap(_Dummy, "nothing", "_cal", 1)  # its counters in slot 0, phase 0: dropped below
    _inc.append(0)
    _self.append(0)
    _calls.append(0)
    for _ in range(200):
        d.nothing(1)
    t3 = ticks_us()
    _Dummy.nothing = plain
    call = (ticks_diff(t2, t1) - ticks_diff(t1, t0)) // 200  # a plain call of an empty method
    BIAS[0] = _inc[0] // 200 - call
    W[0] = (ticks_diff(t3, t2) - ticks_diff(t2, t1)) // 200
    for x in (_names, _inc, _self, _calls):
        x.pop()
    return call


WRAPS = (
    (B.Board, "feed_watchdog", "b.feed_watchdog", 0), (B.Board, "host_read", "b.host_read", 1),
    (B.Board, "trigger", "b.trigger", 0), (B.Board, "estop", "b.estop", 0),
    (B.Board, "pressure_kpa", "b.pressure_kpa", 0), (B.Board, "syringe_barrel_um", "b.barrel_um", 0),
    (B.Board, "head_id_mv", "b.head_id_mv", 0), (B.Board, "skin_contact", "b.skin_contact", 0),
    (B.Board, "syringe_end", "b.syringe_end", 0), (B.Board, "plunger_unsent", "b.plunger_unsent", 0),
    (B.Board, "plunger_step", "b.plunger_step", 1), (B.Board, "needle_step", "b.needle_step", 1),
    (B.Board, "service", "b.service", 1), (B.Board, "plunger_stalled", "b.plunger_stalled", 0),
    (B.Board, "wait_steps", "b.wait_steps", 0), (B.Board, "motors", "b.motors", 1), (B.Board, "led", "b.led", 1),
    (board_steppio.PioStepDir, "step", "pio.step", 1), (board_steppio.PioStepDir, "unsent", "pio.unsent", 0),
    (link.Link, "poll", "link.poll", 0), (link.Link, "_result", "link.frame", 1), (link.Link, "_send", "link.send", 4),
    (link.codec.FrameReader, "feed", "codec.feed", 2), (A.App, "command", "app.command", 3),
    (device.Device, "tick", "dev.tick", 1), (device.Device, "busy", "dev.busy", 0),
    (device.Device, "_checkpoint", "dev._checkpoint", 0), (device.Device, "_contact", "dev._contact", 1),
    (device.Device, "_steps_back", "dev._steps_back", 0), (device.Device, "_watch_syringe", "dev._watch_syringe", 1),
    (device.Device, "_watch_head", "dev._watch_head", 1), (device.Device, "_lag_ms", "dev._lag_ms", 0),
    (device.Device, "_record_if_dispensed", "dev._record", 1), (device.Device, "_sequence_finished", "dev._finished", 1),
    (device.Device, "_next_point", "dev._next_point", 1), (device.Device, "status", "dev.status", 5),
    (dosing.Sequence, "tick", "seq.tick", 1), (dosing.Sequence, "active", "seq.active", 0),
    (dosing.Sequence, "line_kpa", "seq.line_kpa", 0), (dosing.Sequence, "_follow_tip", "seq._follow_tip", 0),
    (dosing.Axis, "tick", "axis.tick", 1), (dosing.Axis, "moving", "axis.moving", 0),
    (journal.Journal, "checkpoint", "j.checkpoint", 4), (journal.Journal, "open", "j.open", 7),
    (journal.Journal, "close", "j.close", 5), (needles.Watch, "feed", "needles.feed", 3),
    (compliance.Probe, "feed", "probe.feed", 3),
)

CALL = _calibrate()
for cls, name, label, nargs in WRAPS if WRAP else ():  # WRAP = 0: the pass times alone, nothing wrapped
    _wrap(cls, name, label, nargs)
N = len(WRAPS)  # the counters' stride per phase, wrapped or not
_inc += [0] * (3 * N)
_self += [0] * (3 * N)
_calls += [0] * (3 * N)
HIST = 400  # pass time in 50 us buckets, the last >= 20 ms
_hist = [0] * (3 * HIST)
_pass = [0, 0, 0, 0]  # pass start, passes counted (priming), (delivering), step of the script
_rx = bytearray(64)  # the host's bytes still to be read by the link
_rxn = [0, 0]  # bytes pending, next
_poll = [0, 0]  # next STATUS due (emulated us), STATUS frames given
PHASE_OF = {S.STATE_PRIMING: 1, S.STATE_DELIVERING: 2}

_host_read = B.Board.host_read  # the wrapped one: the counters see it


def _fake_read(self, buf):
    n = _host_read(self, buf)  # the USB CDC's poll as ever (nothing comes: no host)
    if not n and _rxn[0]:
        k = min(len(buf), _rxn[0])
        j = _rxn[1]
        buf[:k] = _rx[j:j + k]
        _rxn[0] -= k
        _rxn[1] += k
        n = k
    return n


B.Board.host_read = _fake_read
B.Board.host_write = lambda self, buf, n: None  # the replies kept off the REPL's output (one a POLL_MS: negligible)
_poll_fn = link.Link.poll
_service = B.Board.service


class Done(Exception):
    pass


def _drive(app):
    # between passes, outside the timer: the session's part
    dev = app.device
    st = dev.state
    step = _pass[3]
    now = ticks_us()
    if ticks_diff(now, _poll[0]) >= 0 and _rxn[0] == 0:
        _poll[0] = time.ticks_add(now, POLL_MS * 1000)
        _poll[1] += 1
        frame = _polls[_poll[1] % len(_polls)] if _polls else STATUS_FRAME
        _rx[:len(frame)] = frame
        _rxn[0], _rxn[1] = len(frame), 0
        dev.link_seen()  # the session's signed traffic (its POLLs) keeps the link watchdog fed
    if step == 0 and st == S.STATE_FAULT:
        app.command(S.ABORT, (), True)
        print(app.command(S.CONFIGURE, PROGRAM, True))
        print(app.command(S.PRIME, (PRIME_NL,), True))
        _pass[3] = 1
    elif step == 1 and st == S.STATE_PRIMED:
        print(app.command(S.ARM, (), True))
        _pass[3] = 2
    elif step >= 2 and st == S.STATE_ARMED and not dev.busy():
        if dev.done >= POINTS:
            raise Done()
        if step % 2 == 0 and not dev.pressed_ms and not dev.need_release:
            print("MARK press")
            _pass[3] += 1
        elif step % 2 == 1 and dev.need_release and dev.pressed_ms:
            print("MARK release")  # the point is over: let go, then press for the next
            _pass[3] += 1
    elif st in (S.STATE_COMPLETE, S.STATE_FAULT) and step >= 2:
        print("ended in state", st, "alarm", dev.alarm)
        raise Done()
    _ph[0] = PHASE_OF.get(dev.state, 0) * N


def _pass_poll(self):  # the pass's first call after feed_watchdog() (the journal feeds the watchdog too)
    _drive(APP)
    _pass[0] = ticks_us()
    _poll_fn(self)


def _pass_service(self, now_us):
    _service(self, now_us)
    d = ticks_diff(ticks_us(), _pass[0])
    ph = _ph[0] // N
    if ph:
        _hist[ph * HIST + min(d // 50, HIST - 1)] += 1


link.Link.poll = _pass_poll
B.Board.service = _pass_service

APP = A.App(B.Board())


def _signed(msg_type, seq, fields):  # as firmware/tests/mpy_heap.py signs a frame with the device's own key
    frame = bytearray(link.codec.encode(msg_type, seq, fields + (bytes(S.MAC_SIZE),)))
    end = len(frame) - S.CRC_SIZE
    tag = APP.auth.mac(bytes((S.PROTOCOL_VERSION, msg_type)) + bytes(frame[S.HEADER_SIZE:end - S.MAC_SIZE]))
    frame[end - S.MAC_SIZE:end] = tag
    link.codec.frame_into(frame, msg_type, seq)
    return bytes(frame)


if SIGNED:
    APP.auth._set_key(bytes(range(S.KEY_SIZE)))
    APP.auth.counter = 5
    APP.auth.open_session()
    _polls += [_signed(S.POLL, 1 + i, (5, 100 + i)) for i in range(60)]  # 6 s of polls
gc.collect()
t0 = ticks_us()
try:
    APP.run()
except Done:
    pass
t1 = ticks_us()
APP.board.motors(False)
del _polls[:]
gc.collect()
print("\nPP wrapper_us", W[0], "bias_us", BIAS[0], "call_us", CALL, "run_us", ticks_diff(t1, t0), "polls", _poll[1],
      "done", APP.device.done,
      "lag_ms", APP.device._lag_ms(), "overruns", APP.overruns)
for ph in (1, 2):
    print("\nPP hist", ph, " ".join("%d:%d" % (i, c) for i, c in enumerate(_hist[ph * HIST:(ph + 1) * HIST]) if c))
    for i in range(N):
        k = ph * N + i
        if _calls[k]:
            print("\nPP fn", ph, _names[i], _calls[k], _inc[k], _self[k])
