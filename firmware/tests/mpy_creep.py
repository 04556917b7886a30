# Runs on MicroPython: the stopper's creep as the firmware follows it (compliance.Creep) against the closed form
# of a first-order creep under the same pressure steps, read per control pass (1 ms, and a loaded board's 4-7 ms),
# and its small ints at the extremes (the heap locked: a long int would be an allocation). Results as JSON.
import json
import micropython
from math import exp
from time import ticks_add

from mesofw import compliance


def exact(gain, tau_us, profile):
    # held (pL) after each (kPa, us) stretch of a piecewise-constant pressure, from 0
    held, out = 0.0, []
    for kpa, us in profile:
        target = gain * kpa
        held = target + (held - target) * exp(-us / tau_us)
        out.append(held)
    return out


def followed(c, profile, pass_us, t0):
    # the firmware's estimate: begin() as the dose's dispense starts (the 2nd stretch), follow() once a pass
    t, out = t0, []
    for i, (kpa, us) in enumerate(profile):
        if i == 1:
            c.begin(t)
        end = t + us
        step = pass_us[i % len(pass_us)]
        while t + step < end:
            t += step
            c.follow(kpa, t)
        t = end
        c.follow(kpa, t)
        out.append(c.taken(t) + c.start)  # taken() flushes the block: held now
    return out


# (permille, creep ms, compliance pL/kPa): the sim's range (5-25 % of 0.5-10 nL/kPa, 200-1000 ms)
LINES = [(50, 200, 500), (200, 600, 9800), (250, 1000, 10000), (120, 350, 3000)]
# rest, a 50 uL point's dispense at flow + wheal pressure, its settle at the wheal's, the retraction, the gap
PROFILE = [(0, 300000), (40, 500000), (190, 60000), (0, 40000), (0, 400000), (60, 300000), (0, 2000000)]
cases = []
for permille, ms, c_pl in LINES:
    for passes in ((1000,), (4000, 7000, 5000)):
        c = compliance.Creep()
        c.set(permille, ms, c_pl)
        got = followed(c, PROFILE, passes, c.t_us)
        want = exact(permille * c_pl // 1000, ms * 1000, PROFILE)
        cases.append({"line": [permille, ms, c_pl], "pass_us": passes[0], "got": got, "want": want})

# no creep measured: nothing followed, nothing taken
none = compliance.Creep()
none.begin(0)
none.follow(100, 5000)
nothing = none.taken(10000)

# the extremes with the heap locked: the softest stopper the probe allows on a BD 10 mL (400 pL/kPa/mm^2 x 165 mm^2)
# nearly all creep, past any pressure, over gaps from a pass to ten minutes (ticks past their wrap)
big = compliance.Creep()
big.set(999, 65535, 400 * 165)
fast = compliance.Creep()
fast.set(999, 1, 400 * 165)


def extremes(creeps, steps, out):
    # each step a dose begun, followed once, its take read; the heap locked throughout: False if anything allocated
    t = i = 0
    micropython.heap_lock()
    try:
        for c in creeps:
            for kpa, dt, more in steps:
                c.begin(t)
                t = ticks_add(ticks_add(t, dt), more)  # (two: a gap past half the ticks' period, 2^29 on 32 bits)
                c.follow(kpa, t)
                out[i] = c.taken(ticks_add(t, 10))
                i += 1
        return True
    except MemoryError:
        return False
    finally:
        micropython.heap_unlock()


takes = [0] * 12
STEPS = ((400, 1000, 0), (400, 9000, 0), (-50, 3000, 0), (255, (1 << 29) - 1, 0), (0, (1 << 29) - 1, 1000),
         (300, 1 << 22, 0))
clean = extremes((big, fast), STEPS, takes)
held = [big.held, fast.held]
print(json.dumps({"cases": cases, "nothing": nothing, "takes": takes, "held": held, "clean": clean,
                  "max_pl": compliance.CREEP_MAX_PL}))
