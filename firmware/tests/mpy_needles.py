# Runs on MicroPython: the blocked-needle watch (mesofw/needles.py) on synthetic dispenses read as the
# board's gauge sensor reads them (noise, 1 kPa quantum, clamped at zero). Virtual time (1 ms passes).
import json
import micropython

from mesofw import needles
from mesoprotocol import spec as S

SEED = [12345]


def noise(sd):
    # triangular, as the sim's sensor (an LCG: no allocation, the same on every port)
    total = 0
    for _ in range(2):
        SEED[0] = (SEED[0] * 1103515245 + 12345) & 0x3FFFFFFF
        total += SEED[0]
    return (total / 0x3FFFFFFF - 1) * 2.449 * sd


def read(p):
    v = p + noise(0.6)
    return int(v + 0.5) if v > 0 else 0


def dispense(watch, flow_kpa, ramp_kpa, ms, t0):
    # the line at flow_kpa plus the wheals' back-pressure growing to ramp_kpa over ms
    watch.start(0, ms * 10, 10000)  # 10 steps a ms
    for i in range(ms + 1):
        watch.feed(read(flow_kpa + ramp_kpa * i / ms), i * 10, t0 + i * 1000)


def session(needles_n, head, blocked_from, points=6, flow=12.0, tissue=20.0, rises=None):
    # a prime in the air (flow alone), then points; from point `blocked_from` one needle of needles_n is
    # blocked: every pressure the flow makes rises n/(n-1). Returns (point, (which, kPa)) or None.
    w = needles.Watch()
    dispense(w, flow, 0.0, 900, 0)
    w.judge(True, needles_n, S.head_block_permille(head))
    for k in range(points):
        rise = needles_n / (needles_n - 1) if k >= blocked_from else 1.0
        if rises:  # a rise of its own per point (scatter, not a needle)
            rise = rises[k]
        dispense(w, flow * rise, tissue * rise, 1800, 10000000 * (k + 1))
        verdict = w.judge(False, needles_n, S.head_block_permille(head))
        if verdict:
            return [k, verdict, w.risen16 >> 4]
    return None


def no_allocation():
    # the longest dispense judged, at the occlusion pressure: every sum stays a small int
    w = needles.Watch()
    w.start(0, needles.MAX_MS * 20, 20000)
    micropython.heap_lock()
    try:
        t = 0
        while t <= needles.MAX_MS * 1000 + 2000:
            w.feed(S.OCCLUSION_KPA, t * 20 // 1000, t)  # a 1 mL syringe's steps at 100 uL/s
            t += 1000
        w.judge(False, 9, 52)
        judged = w.figures()
    finally:
        micropython.heap_unlock()
    return judged


def figures_of_a_line():
    w = needles.Watch()
    SEED[0] = 7
    dispense(w, 12.0, 20.0, 1800, 0)
    return [w.mean16, w.flow16] if w.figures() else None


result = {
    "figures": figures_of_a_line(),
    "clean5": session(5, 6, 99), "clean9": session(9, 7, 99),
    "first5": session(5, 6, 0), "first9": session(9, 7, 0, flow=16.0),
    # 9 needles (threshold 5.2 %): a point 8 % up alone is a suspicion; two in a row alarm at the second
    "one_off": session(9, 7, 99, rises=[1, 1.08, 1, 1, 1, 1]),
    "two_in_a_row": session(9, 7, 99, rises=[1, 1.08, 1.08, 1, 1, 1]),
    "mid5": session(5, 6, 3), "mid9": session(9, 7, 3),
    "shot": None,
    "no_allocation": no_allocation(),
}
w = needles.Watch()
w.start(0, 2000, 100000)  # a 2 uL nappage shot: 20 ms
for i in range(21):
    w.feed(30, i * 10, i * 1000)
result["shot"] = w.figures()  # False: not judged
print(json.dumps(result))
