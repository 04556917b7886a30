# A virtual clock for the firmware on MicroPython (the fuzzer, the VirtualDevice): ticks_us, ticks_ms,
# ticks_diff, ticks_add, sleep_us and sleep_ms of every mesofw module come from here, so no real time
# passes unless the driver lets it. An MCU's ticks period (2^30 on rp2 and esp32; the unix port's is
# 2^62), starting a minute before ticks_ms and ticks_us both wrap: the firmware must compare ticks
# with ticks_diff only.
import os
import sys

PERIOD = 1 << 30
_MASK = PERIOD - 1
_HALF = PERIOD >> 1
CLOCK = [PERIOD * 1000 - 60 * 1000000]  # us since power-on


def v_us():
    return CLOCK[0] & _MASK


def v_ms():
    return (CLOCK[0] // 1000) & _MASK


def v_ticks_diff(a, b):
    return ((a - b + _HALF) & _MASK) - _HALF


def v_ticks_add(a, delta):
    return (a + delta) & _MASK


def v_sleep_us(us):  # the control loop waits for its next tick: time passes, nothing else
    if us > 0:
        CLOCK[0] += us


def v_sleep_ms(ms):
    v_sleep_us(ms * 1000)


def install(sleep_us=v_sleep_us):
    # every firmware module first (a lazy import later would get the real clock, and fail once the
    # flash is mounted as /); sleep_us: how the driver lets time pass (default: at once)
    from mesofw import app

    fw_dir = app.__file__.rsplit("/", 1)[0]
    for fn in sorted(os.listdir(fw_dir)):
        if fn.endswith(".py"):
            __import__("mesofw." + fn[:-3])
    fns = (("ticks_us", v_us), ("ticks_ms", v_ms), ("ticks_diff", v_ticks_diff), ("ticks_add", v_ticks_add),
           ("sleep_us", sleep_us), ("sleep_ms", lambda ms: sleep_us(ms * 1000)))
    for name in list(sys.modules):
        if name.startswith("mesofw"):
            mod = sys.modules[name]
            for attr, fn in fns:
                if hasattr(mod, attr):
                    setattr(mod, attr, fn)
