# Runs on MicroPython: the prime's compliance probe on a soft line (issue #20's rows), its tail read
# per control pass (1 ms; under load 3-5 ms) or densely (compliance.Probe.tail), through a sensor with
# the sim's imperfections: a lag the firmware knows only nominally, noise, a 1 kPa quantum, an offset.
# The line is exact (closed form), time virtual, noise from a fixed LCG; results as JSON.
import json
import micropython
from math import exp

from mesofw import compliance, dosing

OFFSET_KPA = 2  # the sensor's zero (the firmware takes it as 32 reads: here exactly, in 1/16 kPa)


class Rng:
    def __init__(self, seed):
        self.x = seed

    def uniform(self):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x / 0x7FFFFFFF


class Line:
    # steady at ps kPa while pushed (t < 0), then discharging with time constant tau through a sensor of lag
    # `lag` (first order): its reading is the two-pole response, exactly
    def __init__(self, ps, tau_us, lag_us, noise_kpa, seed):
        self.ps, self.tau, self.lag, self.noise = ps, tau_us, lag_us, noise_kpa
        self.rng = Rng(seed)

    def sensed(self, t_us):
        if t_us <= 0:
            s = self.ps
        else:
            tau, lag = self.tau, self.lag
            s = self.ps * (tau * exp(-t_us / tau) - lag * exp(-t_us / lag)) / (tau - lag)
        n = (self.rng.uniform() + self.rng.uniform() - 1) * 2.449 * self.noise  # the sim's triangular noise
        v = s + OFFSET_KPA + n
        return int(v + 0.5) if v > 0 else 0


def prime(c_nl, tau_us, lag_us, pass_us, dense, seed=7, ps=11, lag_known=900, area_mm2=100, estop_at_us=None,
          stall_at_us=None, noise_kpa=0.56):
    # a 200 ms push at steady ps, then the tail; the estimate (pL/kPa) or None
    line = Line(ps, tau_us, lag_us, noise_kpa, seed)
    clock = [-300]
    pr = compliance.Probe(lag_known, None if estop_at_us is None else lambda: clock[0] >= estop_at_us)
    pr.start(-200000)
    t = -200000
    while t < 0:
        pr.feed(line.sensed(t) - OFFSET_KPA, t, False)
        t += 1000
    g = c_nl / tau_us  # nL/kPa/us
    pushed = int(g * ps * 200000)
    if dense:  # from the pass that finds the count out, 300 us before the driver's last batch is
        def now():
            clock[0] += 37  # a tight loop's read, ~37 us on the board
            if stall_at_us is not None and clock[0] >= stall_at_us > clock[0] - 37:
                clock[0] += 8000  # the CPU taken from the loop for 8 ms
            return clock[0]

        pr.tail(lambda: line.sensed(clock[0]), OFFSET_KPA << 4, lambda: clock[0] < 0, now)
    else:  # the pass that sees the driver's last batch out, then one a pass
        t = pass_us // 2
        pr.feed(line.sensed(t) - OFFSET_KPA, t, True)
        while t < 300000:
            t += pass_us
            kpa = line.sensed(t) - OFFSET_KPA
            pr.feed(kpa if kpa > 0 else 0, t, True)
            if kpa <= 2:
                break
    return pr.pl_per_kpa(pushed, area_mm2)


def heap_of_tail():
    # the dense read allocates nothing (its buffers come with the Probe)
    line = Line(11, 3700, 1200, 0.56, 3)
    pr = compliance.Probe(900)
    pr.start(-20000)
    for t in range(-20000, 0, 1000):
        pr.feed(line.sensed(t) - OFFSET_KPA, t, False)
    clock = [-300]

    def now():
        clock[0] += 37
        return clock[0]

    def read():
        return 5 if clock[0] < 9000 else 2  # integers only: the line's own floats are not the probe's
    def busy():
        return clock[0] < 0
    micropython.heap_lock()
    try:
        pr.tail(read, OFFSET_KPA << 4, busy, now)
        allocated = False
    except MemoryError:
        allocated = True
    micropython.heap_unlock()
    return {"allocated": allocated, "j16_us": pr.j16_us}


def prime_from_its_zero(c_nl, tau_us, lag_us, seed, ps=29, area_mm2=165, noise_kpa=0.56):
    # A prime as the device runs it: dosing.Sequence takes the line's zero from noisy reads as the prime starts
    # (the line at rest), the probe reads the tail above that zero. The estimate (pL/kPa) or None.
    line = Line(ps, tau_us, lag_us, noise_kpa, seed)
    clock = [-200000]
    rest = [True]

    def pressure():
        v = (line.rng.uniform() + line.rng.uniform() - 1) * 2.449 * noise_kpa + OFFSET_KPA
        return line.sensed(clock[0]) if not rest[0] else int(v + 0.5)

    axis = dosing.Axis(lambda n: None, 1)
    seq = dosing.Sequence(lambda on: None, pressure, lambda kpa, carry=True: 0, axis, dosing.Axis(lambda n: None, 1),
                          100, 5000)
    pr = compliance.Probe(900)
    seq.probe = pr
    seq.start(0, 100, 100000, 100000, 0, 300, True, clock[0])  # the prime's zero: seq.zero16, seq.zero_kpa
    rest[0] = False
    pr.start(clock[0])
    while clock[0] < 0:
        k = line.sensed(clock[0]) - seq.zero_kpa
        pr.feed(k if k > 0 else 0, clock[0], False)
        clock[0] += 1000
    clock[0] = -300
    pushed = int(c_nl / tau_us * ps * 200000)

    def now():
        clock[0] += 37
        return clock[0]

    pr.tail(lambda: line.sensed(clock[0]), seq.zero16, lambda: clock[0] < 0, now)
    return pr.pl_per_kpa(pushed, area_mm2)


# issue #20's soft lines (C nL/kPa, tau us), sensor lags across the range a board may have (0.3-1.5 ms)
CASES = [(6.0, 3700, 1220), (6.0, 3700, 300), (6.0, 2730, 1500), (9.8, 4460, 1500), (9.8, 8820, 900),
         (6.9, 4260, 600)]
out = {"cases": [], "heap": heap_of_tail(),
       # the E-stop pressed 2 ms into the discharge: the read ends there, and says nothing
       "estop": prime(6.0, 3700, 900, 1000, True, estop_at_us=2000), "no_estop": prime(6.0, 3700, 900, 1000, True),
       # the loop losing the CPU for 8 ms while the line falls (integrated as an exponential across the gap)
       "stalled": [prime(6.0, 3700, 900, 1000, True, seed, stall_at_us=at) for seed in (1, 2) for at in (1000, 2000)],
       "unstalled": [prime(6.0, 3700, 900, 1000, True, seed) for seed in (1, 2)],
       # test_calibration's board (issue #20, seed 1258177349): a BD 1 mL line of 1.03 nL/kPa emptying in 0.5 ms
       # behind a sensor of 1.28 ms (nominal 0.9), its noise at the top of the model's range (1 kPa): what the
       # moments see is the lag and the noise (the old 1.5 ms threshold let 3 of 40 through at 3.1-4x)
       "unresolved": [prime(1.03, 495, 1281, 1000, True, seed, ps=10, area_mm2=17, noise_kpa=1.0)
                      for seed in range(1, 41)]}
# the bench's BD 10 mL line at 0.06 nL/kPa/mm^2 (seed 2071: 9.9 nL/kPa, tau 6.1 ms, lag 1.2 ms) and softer/faster
# ones, each primed 60 times from its own zero (issue #20: one prime's estimate tops up every point of a session)
out["from_zero"] = [{"c_pl": int(c * 1000), "tau_us": tau, "lag_us": lag,
                     "est": [prime_from_its_zero(c, tau, lag, seed * 7919) for seed in range(1, 61)]}
                    for c, tau, lag in ((9.9, 6120, 1225), (6.0, 3700, 1220), (3.0, 2500, 900))]
for c, tau, lag in CASES:
    row = {"c_pl": int(c * 1000), "tau_us": tau, "lag_us": lag, "dense": [], "per_pass": [], "loaded": []}
    for seed in range(1, 9):
        row["dense"].append(prime(c, tau, lag, 1000, True, seed))
        row["per_pass"].append(prime(c, tau, lag, 1000, False, seed))
        row["loaded"].append(prime(c, tau, lag, 4000, False, seed))
    out["cases"].append(row)
print(json.dumps(out))
