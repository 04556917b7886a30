# The simulated board's clock (a file on the path takes precedence over MicroPython's built-in `time`: the
# firmware, the board and its physical model all import this): the host's clock less the time this process
# waited for a CPU (Linux schedstat), and less the time the host took from it while it held one (below). A
# board's MCU is its own; the simulated one shares the host, and while it waited the model's line went on
# falling with the firmware frozen: a prime's tail (a 2-4 ms line) was read across gaps of 3-11 ms at load 7
# (issue #20's compliance rows moved with the host's load). On this clock the model and the firmware stop
# together. time_ns stays the host's (the harness's pin stamps).
# Taken by the host: a process can lose host time that is neither its run time nor a wait for a CPU - the
# VM's vCPU run elsewhere by the hypervisor (steal), interrupt work on its CPU, a sleep's wake-up held back
# by either, the host's disk under the flash image or a pipe. On this 2-vCPU VM a busy loop that makes no
# system call lost 19-355 ms so under load, and bench_cadence's "mixed" gaps of 11-132 ms between passes
# (ran 0.1-0.4 ms, waited 0-6 ms) made the 6/9/12 Hz nappage outliers. What a span between two schedstat
# reads holds beyond the run time, the wait, the sleeps and waits the firmware and board asked for (sleep_us,
# sleep_ms, excuse()) and the run-time figure's own lag (the kernel adds run time on its tick: TICK_US)
# comes off the clock too; never more, so the firmware's own long passes (a collection, flash) stay on it.
import sys

_path = sys.path[:]
sys.path.clear()
_self = sys.modules.pop("time", None)
import time as _t  # noqa: E402  the built-in (the path cleared: not this file)

if _self is not None:
    sys.modules["time"] = _self
sys.path.extend(_path)
del _path, _self

ticks_diff = _t.ticks_diff  # type: ignore[misc, attr-defined]  # (mypy takes _t for this file)
ticks_add = _t.ticks_add  # type: ignore[misc, attr-defined]  # (mypy takes _t for this file)
time_ns = _t.time_ns  # type: ignore[misc, attr-defined]  # (mypy takes _t for this file)
_MASK = _t.ticks_add(0, -1)  # the ticks period - 1 (a power of two)
CHECK_US = 200  # a call this long after the last one asks the kernel how much of the gap was spent waiting
TICK_US = 4000  # the kernel's tick (CONFIG_HZ 250 here: schedstat's run time moves in ~4.02 ms steps while a
# process runs): how far its run-time figure may lag; a 100 Hz kernel would need 10000

_SCHED_MASK = (1 << 26) - 1  # us, modulo ~67 s: small ints on a 32-bit port too


class Schedstat:
    # this process's CPU time and time waiting for a CPU (Linux /proc/self/schedstat, ns) in us modulo
    # 2^26 (.cpu, .wait), parsed without allocating: a gap between passes is the firmware's own work (a
    # collection, a littlefs traversal) if it ran, the host machine's if it waited for a CPU
    def __init__(self):
        self.buf = bytearray(80)
        self.cpu = self.wait = 0
        self.f = None
        try:  # the host's /proc, beside the flash the harness mounted as / (the board's root)
            import vfs

            vfs.mount(vfs.VfsPosix("/proc/self"), "/.proc")  # type: ignore[abstract]
            self.f = open("/.proc/schedstat", "rb")
        except (OSError, ImportError):
            pass

    def read(self):
        if self.f is None:
            return
        self.f.seek(0)
        n = self.f.readinto(self.buf) or 0
        buf = self.buf
        i = 0
        for k in range(2):  # the first two numbers; ns -> us: the last three digits dropped
            j = i
            while j < n and 48 <= buf[j] <= 57:
                j += 1
            v = 0
            for m in range(i, j - 3):
                v = (v * 10 + buf[m] - 48) & _SCHED_MASK
            if k:
                self.wait = v
            else:
                self.cpu = v
            i = j + 1




_stat = Schedstat()
_stat.read()
_last_wait = _stat.wait  # schedstat as this clock last read it (the board reads it too: its own copies)
_last_cpu = _stat.cpu
_last_raw = _read_raw = _t.ticks_us()  # the host's us at the last call, at the last schedstat read
_wait_us = 0  # waited (or taken) since boot (modulo the ticks period), taken off the host's us clock...
_wait_ms = 0  # ...and in ms, for the ms clock
_carry_us = 0
_excused_us = 0  # since the last read: off the CPU by the firmware's or board's own request (at most)
_balance_us = 0  # host time neither run, waited nor asked for, not yet taken off (with the lag's noise)
_owed_us = 0  # found to take off but not yet taken: more than the time since the last call (the clock never goes back)
taken_us = asked_us = 0  # in all, modulo 2^26 (the board's gap reports)


def excuse(us):
    # the board's own waits (input, the flash's busy time), before it waits: not the host's to take off
    global _excused_us, asked_us
    _excused_us += us
    asked_us = (asked_us + us) & _SCHED_MASK


def sleep_us(us):
    excuse(us)
    _t.sleep_us(us)


def sleep_ms(ms):
    excuse(ms * 1000)
    _t.sleep_ms(ms)


def _catch_up(raw):
    global _last_raw, _read_raw, _last_wait, _last_cpu, _wait_us, _wait_ms, _carry_us, _excused_us, _balance_us
    global taken_us, _owed_us
    if _t.ticks_diff(raw, _last_raw) > CHECK_US and _stat.f is not None:
        _stat.read()
        waited = (_stat.wait - _last_wait) & _SCHED_MASK
        # the span since the last read less its run time, its wait and what was asked for, summed over spans:
        # the run-time figure's lag telescopes (the sum is off by one lag, under TICK_US, however many spans), so
        # a loss in many small pieces (a vCPU sliced on the host) counts as one. What passes TICK_US is taken
        # off (the sum kept at TICK_US: never more than was lost); below -TICK_US it can only be a wait asked
        # for and cut short (input came): dropped, so it does not hide a later loss
        _balance_us += _t.ticks_diff(raw, _read_raw) - ((_stat.cpu - _last_cpu) & _SCHED_MASK) - waited - _excused_us
        if _balance_us > TICK_US:
            waited += _balance_us - TICK_US
            taken_us = (taken_us + _balance_us - TICK_US) & _SCHED_MASK
            _balance_us = TICK_US
        elif _balance_us < -TICK_US:
            _balance_us = -TICK_US
        _excused_us = 0
        _last_wait = _stat.wait
        _last_cpu = _stat.cpu
        _read_raw = raw
        # Never more off than the time since the last call: the clock must not run backwards. A read comes only
        # after a call gap > CHECK_US, but what it finds covers the whole span since the last read - under load
        # many short waits (each in a gap < CHECK_US) summed to more than the gap the read came in, and the clock
        # stepped back (1.2 ms seen): a move's Axis then went the other way for a pass (a suck-back's +35 steps
        # forward), so a point's record counted 18 steps that had gone into the air. The rest is taken later.
        waited += _owed_us
        gap = _t.ticks_diff(raw, _last_raw)
        _owed_us = waited - gap if waited > gap else 0
        waited -= _owed_us
        if waited:
            _wait_us = (_wait_us + waited) & _MASK
            _carry_us += waited
            _wait_ms = (_wait_ms + _carry_us // 1000) & _MASK
            _carry_us %= 1000
    _last_raw = raw


def ticks_us():
    raw = _t.ticks_us()
    _catch_up(raw)
    return (raw - _wait_us) & _MASK


def ticks_ms():
    _catch_up(_t.ticks_us())
    return (_t.ticks_ms() - _wait_ms) & _MASK
