# Runs on MicroPython: the settle waits for the driver's last batch, and the prime's compliance probe
# recovers a known line's compliance. Virtual time (each tick 1 ms); results as JSON.
import json
from math import exp

from mesofw import compliance, dosing


class Line:
    # a first-order line: compliance c (nL/kPa) discharging through conductance g (nL/kPa/ms) to p_rest
    def __init__(self, c, g, p_rest=0.0, lag_ms=0.0):
        self.c, self.g, self.p_rest, self.lag_ms = c, g, p_rest, lag_ms
        self.p = p_rest
        self.y = p_rest  # the sensor's lagged reading

    def step(self, q_nl):  # one millisecond with q_nl pushed in
        p_ss = self.p_rest + q_nl / self.g  # exact for a constant push over the millisecond
        p0 = self.p
        self.p = p_ss + (self.p - p_ss) * exp(-self.g / self.c)
        if self.lag_ms:  # as the sim's sensor: the interval's mean pressure drives the filter
            self.y += ((p0 + self.p) / 2 - self.y) * (1 - exp(-1 / self.lag_ms))
        else:
            self.y = self.p


def settle_waits_for_the_batch():
    # the line reads a flat 50 kPa (what a still-moving batch looks like: pressure holding), and the
    # driver reports its last batch out only 12 ms after the plunger's count is done
    t = [0]
    busy_until = []
    topups = []
    axis_p = dosing.Axis(lambda n: None, 1)
    axis_n = dosing.Axis(lambda n: None, 1)
    seq = dosing.Sequence(lambda on: None, lambda: 50, lambda kpa: topups.append((kpa, t[0])) or 0, axis_p, axis_n,
                          100, 5000, lambda: t[0] < busy_until[0])
    seq.start(0, 100, 100000, 100000, 0, 100, True, 0)
    left_settle = None
    for _ in range(400):
        t[0] += 1000
        if seq.phase == dosing.SETTLE and not busy_until:
            busy_until.append(t[0] + 12000)
        was = seq.phase
        seq.tick(t[0])
        if was == dosing.SETTLE and seq.phase != dosing.SETTLE and left_settle is None:
            left_settle = t[0]
    return {"busy_until": busy_until[0] if busy_until else None, "left_settle": left_settle}


def probe(c, g, lag_ms, lag_us_known, area_mm2, q_nl=50.0, push_ms=200):
    line = Line(c, g, 0.0, lag_ms)
    pr = compliance.Probe(lag_us_known)
    pr.start(0)
    t = 0
    for _ in range(push_ms):
        t += 1000
        line.step(q_nl)
        pr.feed(int(line.y + 0.5), t, False)
    while True:
        t += 1000
        line.step(0)
        kpa = int(line.y + 0.5)
        pr.feed(kpa, t, True)
        if kpa <= dosing.PROBE_DONE_KPA or t > 2000000:
            break
    return pr.pl_per_kpa(int(q_nl * push_ms), area_mm2)


def shot_on_its_way_out(wheal_kpa, stop_at_ms=0):
    # A nappage shot (1.5 mm, 100 steps, settle 10 ms) into a wheal whose pressure the line settles at:
    # the sensor reads 3 kPa of offset (the zero a point took) plus 60 kPa while the plunger pushes,
    # then the wheal's. Virtual time, 1 ms ticks. Where the needle tip was when the plunger moved again.
    t = [0]
    seq_ = []
    asked = []  # the pressures the top-up was asked for
    moves = []  # (tip, steps) of every plunger batch after the dispense

    def pressure():
        return 3 + (60 if seq_[0].phase == dosing.DISPENSE else wheal_kpa)

    def step(n):
        if seq_ and seq_[0].phase == dosing.RETRACT:
            moves.append([seq_[0].tip, n])

    axis_p = dosing.Axis(step, 1)
    axis_n = dosing.Axis(lambda n: None, 1)
    seq = dosing.Sequence(lambda on: None, pressure, lambda kpa, carry=True: asked.append(kpa) or 2 * kpa, axis_p, axis_n,
                          100, 5000)
    seq_.append(seq)
    seq.zero_kpa = 3
    seq.start(1500, 100, 100000, 100000, 0, 10, False, 0)
    for _ in range(400):
        t[0] += 1000
        if stop_at_ms and t[0] == stop_at_ms * 1000:
            seq.interrupt(t[0])
        if seq.tick(t[0]):
            break
    return {"moves": moves, "asked": asked, "pos": axis_p.pos, "dispensed": seq.dispensed_steps,
            "depth_steps": seq.depth_steps, "idle": seq.phase == dosing.IDLE,
            "interrupted": seq.interrupted, "topup_steps": getattr(seq, "shot_topup_steps", None)}


out = {"shots": {"wheal": shot_on_its_way_out(8), "no_wheal": shot_on_its_way_out(0),
                 "released": shot_on_its_way_out(8, stop_at_ms=33)},
       "settle": settle_waits_for_the_batch(),
       # (true pL/kPa, estimate): BD 1 mL-like, BD 10 mL-like, a slow line (32 G 13 mm), sensor lag known
       "probe": [[1000, probe(1.0, 2.0, 0.9, 900, 18)], [8000, probe(8.0, 2.0, 0.9, 900, 165)],
                 [8000, probe(8.0, 0.125, 1.2, 900, 165)], [3000, probe(3.0, 1.0, 0.0, 0, 59)]],
       # a response that says nothing (pressure never rose) keeps the prior
       "flat": probe(1.0, 1000.0, 0.0, 0, 18),
       # an estimate beyond what the stopper's area allows is none
       "clamped": probe(20.0, 2.0, 0.0, 0, 18)}
print(json.dumps(out))
