# boot.py for the EMULATED Pico only (bench/bench_pico_emu.py and emuboard.py put it in the image; never on a board).
# The firmware's data files (boot_count, settings, key, auth_counter, journal.d/) are on the littlefs
# of the emulated flash, as on a board: rp2040js's flash erases and programs through the boot ROM,
# with their datasheet time charged as a CPU stall (tools/pico-emu/flash.mjs). What is here is a probe:
# per control-loop pass, emulated us from feed_watchdog() (a pass starts) to the end of service(),
# the step drivers' share of it, and the steps handed to the drivers; written every 100 passes, and
# when the motors switch, as a "PROBE ..." text line on the USB CDC between the link's frames (the
# host's frame reader resyncs past it; rp2040js 1.4.1 hangs in machine.UART's constructor, so no UART).
# Passes that wrote the flash (the journal: its checkpoints, closes, acks; the boot counter's lease)
# are kept apart, in a "PROBE write ..." line after the report that covers them.
import sys
import time

import board
from mesofw import appendlog, bootcount, journal

# The emulator's own output pins (emuboard.py reads these two lines): GPIOs the pico board's pin map
# (boards/pico/board.py) leaves free - GP16 is its BARREL_SELECT (firmware/tests/test_pico_emu_pins.py)
LED_CODE_PINS = (20, 21, 22)
TRIGGER_SEEN_PIN = 19

_out = sys.stdout.buffer
BUCKET_US = 50
_hist = [0] * 201  # pass time in 50 us buckets; the last holds >= 10 ms (passes that wrote nothing)
_whist = [0] * 401  # ... passes that wrote the journal or the boot counter, in 1 ms buckets (an erase
_wbucket = 1000  # is 45-400 ms), the last >= 400 ms
_w = [0, 0, 0]  # this pass wrote (journal or boot counter), writing passes in this report, the longest (us)
_st = [0, 0, 0, 0, 0, 0, 0]  # pass start, step-driver us this pass, passes, step-driver us total, steps plunger, steps needle,
# motors switched (a move began or ended: the report is written at that pass's end, so idle and moving passes are not mixed)
_feed = board.Board.feed_watchdog
_service = board.Board.service
_pstep = board.Board.plunger_step
_nstep = board.Board.needle_step
_motors = board.Board.motors


def _probe_motors(self, on):
    _motors(self, on)
    _st[6] = 1


def _probe_feed(self):
    _st[0] = time.ticks_us()
    _st[1] = 0
    _w[0] = 0
    _feed(self)


def _probe_pstep(self, n, span_us=1000):  # span_us: the Pico's paced batches (dosing.Axis)
    t = time.ticks_us()
    _pstep(self, n, span_us)
    _st[1] += time.ticks_diff(time.ticks_us(), t)
    _st[4] += n if n > 0 else -n


def _probe_nstep(self, n, span_us=1000):  # span_us: the Pico's paced batches (dosing.Axis)
    t = time.ticks_us()
    _nstep(self, n, span_us)
    _st[1] += time.ticks_diff(time.ticks_us(), t)
    _st[5] += n if n > 0 else -n


def _probe_service(self, now_us):
    _service(self, now_us)
    d = time.ticks_diff(time.ticks_us(), _st[0])
    if _w[0]:
        _w[0] = 0
        _w[1] += 1
        _whist[min(d // _wbucket, 400)] += 1
        _w[2] = max(_w[2], d)
    else:
        _hist[min(d // BUCKET_US, 200)] += 1
    _st[2] += 1
    _st[3] += _st[1]
    if _st[2] >= 100 or _st[6]:
        _st[6] = 0
        parts = ['%d:%d' % (i, c) for i, c in enumerate(_hist) if c]
        _out.write('\nPROBE %d %d %d %d %s\n' % (_st[2], _st[3], _st[4], _st[5], ' '.join(parts)))
        if _w[1]:
            parts = ['%d:%d' % (i, c) for i, c in enumerate(_whist) if c]
            _out.write('\nPROBE write %d %d %d %s\n' % (_w[1], _wbucket, _w[2], ' '.join(parts)))
            for i in range(len(_whist)):
                _whist[i] = 0
        for i in range(len(_hist)):
            _hist[i] = 0
        _st[2] = _st[3] = _w[1] = _w[2] = 0


_put = journal.Journal._put
_save = bootcount.BootCount._save


def _probe_put(self, f, pos):  # the pass that calls it wrote the flash (fixed arity: no tuple allocated)
    _w[0] = 1
    _put(self, f, pos)


def _probe_save(self, floor):
    _w[0] = 1
    _save(self, floor)


_append = appendlog.AppendLog.append


def _probe_append(self, view):  # an entry programmed into the journal's append area (flasharea.py)
    _w[0] = 1
    return _append(self, view)


journal.Journal._put = _probe_put
bootcount.BootCount._save = _probe_save
appendlog.AppendLog.append = _probe_append

# With NO_AREA = 1 prepended (bench_pico_emu.py --no-journal-area): the board without its journal append
#    area, every record through littlefs as before flasharea.py (the comparison's other half).
if globals().get('NO_AREA'):
    board.Board.journal_log = lambda self: None

# The status LED's code (spec.LED_*) + 1 on LED_CODE_PINS, bit 0 first: the
#    emulated board's host (emuboard.py) reads the code the firmware set, as the sim board reports it,
#    instead of decoding a blink pattern over a second of chip time. Set on led() calls only.
from machine import Pin  # noqa: E402

_led_pins = [Pin(p, Pin.OUT, value=0) for p in LED_CODE_PINS]
_led = board.Board.led


def _code_led(self, code):
    _led(self, code)
    for i in range(3):
        _led_pins[i].value(((code + 1) >> i) & 1)


board.Board.led = _code_led

# The trigger as the firmware's debounced read last returned it, on GP19 (1: pressed): the emulated board's world
#    holds each trigger level until the firmware has taken it (emuboard.py), as the sim board holds one until
#    it is read. Written on a change only.
_seen_pin = Pin(TRIGGER_SEEN_PIN, Pin.OUT, value=0)
_seen = [False]
_trigger = board.Board.trigger


def _seen_trigger(self):
    v = _trigger(self)
    if v != _seen[0]:
        _seen[0] = v
        _seen_pin.value(1 if v else 0)
    return v


board.Board.trigger = _seen_trigger


# A prime's compliance estimate (the firmware hands it to a board that has compliance_measured, as the sim board logs
#    it to its harness) and each dose's end (its counted steps, top-up included; the programmed steps; the line pressure
#    it stopped at; the last settle reading; interrupted; the line's zero in 1/16 kPa), as "PROBE comp ..." and
#    "PROBE dose ..." lines: the board log then says what the firmware measured and metered beside the world's ground
#    truth (emuboard.py logs the probe lines; test_pins prints the estimates). Once a prime or a point: no cost a pass.
def _comp_seen(self, probe, pushed_nl, est, in_force):
    _out.write('\nPROBE comp %d %d %d ps=%d tend=%d dense=%d half=%d\n' % (
        pushed_nl, est, in_force, probe.ps, probe.t_end_us, probe.dense, probe.half_samples))


board.Board.compliance_measured = _comp_seen
from mesofw import dosing  # noqa: E402

_end_dispense = dosing.Sequence._end_dispense


def _probe_end_dispense(self):
    _end_dispense(self)
    _out.write('\nPROBE dose %d %d %d %d %d %d\n' % (self.dispensed_steps, self.steps, self.stop_kpa, self.last_kpa,
                                                     self.interrupted, self.zero16))


dosing.Sequence._end_dispense = _probe_end_dispense
board.Board.feed_watchdog = _probe_feed
board.Board.service = _probe_service
board.Board.plunger_step = _probe_pstep
board.Board.needle_step = _probe_nstep
board.Board.motors = _probe_motors

# With PROFILE = 1 prepended (bench_pico_emu.py --profile): emulated us inside named functions
#    (inclusive: a caller's figure holds its callees'), summed over the same 100 passes, and the
#    heap bytes allocated, as a "PROBE prof name:us ... alloc:B gc:N" line after each PROBE line.
if globals().get('PROFILE'):
    import gc
    from mesofw import app, device, dosing, link
    _names = []
    _sum = []

    def _wrap(cls, name, label):
        i = len(_names)
        _names.append(label)
        _sum.append(0)
        f = getattr(cls, name)

        def w0(self):
            t = time.ticks_us()
            r = f(self)
            _sum[i] += time.ticks_diff(time.ticks_us(), t)
            return r

        def w1(self, a):
            t = time.ticks_us()
            r = f(self, a)
            _sum[i] += time.ticks_diff(time.ticks_us(), t)
            return r

        def w2(self, a, b):
            t = time.ticks_us()
            r = f(self, a, b)
            _sum[i] += time.ticks_diff(time.ticks_us(), t)
            return r

        def wn(self, *a):  # per frame only: its tuple is in the alloc figure
            t = time.ticks_us()
            r = f(self, *a)
            _sum[i] += time.ticks_diff(time.ticks_us(), t)
            return r
        setattr(cls, name, (w0, w1, w2, wn, wn)[ARGS[label] - 1])

    ARGS = {}
    for cls, name, label, nargs in (
            (link.Link, 'poll', 'link.poll', 1), (link.Link, '_result', 'link.frame', 2),
            (link.Link, '_send', 'link.send', 5), (app.App, 'command', 'app.command', 4),
            (device.Device, 'tick', 'dev.tick', 2), (dosing.Sequence, 'tick', 'seq.tick', 2),
            (device.Device, '_checkpoint', 'dev.checkpoint', 1), (device.Device, '_watch_syringe', 'dev.syringe', 2),
            (device.Device, '_record_if_dispensed', 'dev.record', 2), (device.Device, '_pairing_gesture', 'dev.pairing', 2),
            (device.Device, 'busy', 'dev.busy', 1),
            (board.Board, 'trigger', 'b.trigger', 1), (board.Board, 'estop', 'b.estop', 1),
            (board.Board, 'pressure_kpa', 'b.pressure', 1), (board.Board, 'syringe_barrel_um', 'b.barrel', 1),
            (board.Board, 'host_read', 'b.read', 2),
            (link.codec.FrameReader, 'feed', 'codec.feed', 3), (board.Board, 'host_write', 'b.write', 3),
            (board.Board, 'plunger_step', 'b.pstep', 2), (board.Board, 'needle_step', 'b.nstep', 2),
            (board.Board, 'service', 'b.service', 2)):
        ARGS[label] = nargs
        _wrap(cls, name, label)
    _prev = [gc.mem_alloc(), 0, 0, 0]  # last mem_alloc, bytes allocated, collections, bytes read
    _read = board.Board.host_read

    def _count_read(self, buf):
        n = _read(self, buf)
        _prev[3] += n
        return n
    board.Board.host_read = _count_read
    _svc = board.Board.service

    def _prof_service(self, now_us):
        _svc(self, now_us)
        m = gc.mem_alloc()
        if m < _prev[0]:
            _prev[2] += 1
        else:
            _prev[1] += m - _prev[0]
        _prev[0] = m
        if _st[2] == 0:  # the PROBE line was just written: this window's profile
            times = ' '.join('%s:%d' % (n, _sum[i]) for i, n in enumerate(_names))
            _out.write('\nPROBE prof %s alloc:%d gc:%d rxbytes:%d\n' % (times, _prev[1], _prev[2], _prev[3]))
            for i in range(len(_sum)):
                _sum[i] = 0
            _prev[1] = _prev[2] = _prev[3] = 0
            _prev[0] = gc.mem_alloc()

    board.Board.service = _prof_service
