# Runs on MicroPython: the blocked-needle watch (mesofw/needles.py) on synthetic dispenses read as the
# board's gauge sensor reads them (an offset, noise, 1 kPa quantum, readings below ambient too). Virtual
# time (1 ms passes; a loaded board's held-up passes where asked).
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


def read(p, offset=0.0, sd=0.6):
    # a gauge sensor's reading, rounded to its 1 kPa quantum; its 0.5 V zero leaves room below ambient
    v = p + offset + noise(sd)
    return int(v + 100.5) - 100


def dispense(watch, flow_kpa, ramp_kpa, ms, t0, offset=0.0, held=0, play=0, table16=0, lag_ms=0.0, sd=0.6):
    # the line at flow_kpa plus the wheals' back-pressure growing to ramp_kpa over ms. held: every `held` ms
    # a pass is held up 20 ms (a loaded host): the plunger pauses, the line falls to the wheals' pressure
    # and climbs back behind the sensor's 1.5 ms lag. lag_ms: the sensor reads through a first-order filter
    # of that time constant (its RC), from the line at rest
    watch.start(int(offset * 16), ms * 10, 10000, table16)  # 10 steps a ms; the zero: the sensor at rest
    t = t0
    since = 99
    sensed = 0.0
    k = 1 / (1 + lag_ms)  # the filter's step over a 1 ms pass: on a ramp it trails by lag_ms (the line's first-order lag)
    for i in range(ms + 1):
        wheal = ramp_kpa * i / ms
        if held and i % held == held // 2:
            t += 20000  # this pass came 20 ms late, the plunger still meanwhile
            since = 0
        line = flow_kpa * (1 - 2.718 ** (-since / 1.5)) if since < 20 else flow_kpa
        if i < play:  # the pusher still taking up its play: steps counted, the stopper still
            line = 0.0
        sensed += (wheal + line - sensed) * k
        watch.feed(read(sensed, offset, sd), i * 10, t)
        since += 1
        t += 1000


def session(needles_n, head, blocked_from, points=6, flow=12.0, tissue=20.0, rises=None, offset=0.0, held=0, play=0):
    # a prime in the air (flow alone), then points; from point `blocked_from` one needle of needles_n is
    # blocked: every pressure the flow makes rises n/(n-1). Returns (point, (which, kPa)) or None.
    held = held if isinstance(held, list) else [held] * (points + 1)  # per dispense: the prime's first
    w = needles.Watch()
    dispense(w, flow, 0.0, 900, 0, offset, held[0], play)
    w.judge(True, needles_n, S.head_block_permille(head))
    for k in range(points):
        rise = needles_n / (needles_n - 1) if k >= blocked_from else 1.0
        if rises:  # a rise of its own per point (scatter, not a needle)
            rise = rises[k]
        dispense(w, flow * rise, tissue * rise, 1800, 10000000 * (k + 1), offset, held[k + 1])
        verdict = w.judge(False, needles_n, S.head_block_permille(head))
        if verdict:
            return [k, verdict, w.risen16 >> 4]
    return None


def prime_against(flow_kpa, table16):
    # a prime in the air at flow_kpa, its bound table16 (the head table's clear line): what judge() says, the
    # kPa it names, and whether the prime left a reference
    w = needles.Watch()
    dispense(w, flow_kpa, 0.0, 900, 0, offset=-2.0, table16=table16)
    return [w.judge(True, 9, S.head_block_permille(7)), w.risen16 >> 4, w.ref_flow16 > 0]


def lagged(lag_ms, sessions=4, points=4):
    # A 9-needle head's low flow pressure (4 kPa) under steep wheals (60 kPa over a 0.9 s point), read through
    # the board's sensor lag (the watch told its nominal, as device.py tells it the board's PRESSURE_LAG_US): the
    # clean points' flow figures against their prime's, per mille, averaged over sessions x points (one LCG
    # stream: the same figures on every port). The prime's flat line is not moved by the lag; the points' rising
    # one reads lag_ms x its slope low (0.1 kPa: 2.5 %) unless the figure takes the lag out.
    w = needles.Watch(int(lag_ms * 1000))
    SEED[0] = 99
    total = n = 0
    for s in range(sessions):
        dispense(w, 4.0, 0.0, 900, 0, lag_ms=lag_ms, sd=0.4)
        w.judge(True, 9, S.head_block_permille(7))
        for k in range(points):
            dispense(w, 4.0, 60.0, 900, 10000000 * (k + 1), lag_ms=lag_ms, sd=0.4)
            w.judge(False, 9, S.head_block_permille(7))
            total += (w.flow16 * 1000 // w.ref_flow16 - 1000)
            n += 1
    return total // n


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
    # a 9-needle head's 4 kPa flow pressure behind a -3 kPa sensor offset, blocked from the first point
    "first9_low": session(9, 7, 0, flow=4.0, tissue=10.0, offset=-3.0),
    "clean9_low": session(9, 7, 99, flow=4.0, tissue=10.0, offset=-3.0),
    # a loaded board: a pass held up 20 ms every 12 while the prime and the first points ran, none later
    # a board's first prime: its first 150 ms taking up the pusher's play (the line empty)
    "clean9_play": session(9, 7, 99, play=150), "first9_play": session(9, 7, 0, play=150),
    "clean9_held": session(9, 7, 99, points=8, held=[12, 12, 12, 12, 0, 0, 0, 0, 0]),
    "first9_held": session(9, 7, 0, points=8, held=[12, 12, 12, 12, 0, 0, 0, 0, 0]),
    # 9 needles (threshold 5.2 %): a point 8 % up alone is a suspicion; two in a row alarm at the second
    "one_off": session(9, 7, 99, rises=[1, 1.08, 1, 1, 1, 1]),
    "two_in_a_row": session(9, 7, 99, rises=[1, 1.08, 1.08, 1, 1, 1]),
    "mid5": session(5, 6, 3), "mid9": session(9, 7, 3),
    # blocked from the first point, its first point's flow figure read 4 % up (under the 5.2 % threshold: the
    # figure's scatter), the second's 9 %: their average, 6.5 %, is past it; the mean's baseline took the first
    "first9_split": session(9, 7, 99, rises=[1.04, 1.09, 1.09, 1.09, 1.09, 1.09]),
    # clean, the first point's flow figure 6.5 % up (past the threshold alone), the second's on the prime's
    "clean9_split": session(9, 7, 99, rises=[1.065, 1.0, 1.0, 1.0, 1.0, 1.0]),
    # a prime above the head table's bound (9 kPa) is refused (TABLE, 10 kPa, no reference); one under it is not
    "prime_over": prime_against(10.0, 9 * 16), "prime_under": prime_against(8.0, 9 * 16),
    "shot": None,
    "no_allocation": no_allocation(),
    "lagged": lagged(1.5),
    "unlagged": lagged(0.0),
}
w = needles.Watch()
w.start(0, 2000, 100000)  # a 2 uL nappage shot: 20 ms
for i in range(21):
    w.feed(30, i * 10, i * 1000)
result["shot"] = w.figures()  # False: not judged
print(json.dumps(result))
