# Runs on MicroPython: the line test (mesofw/linetest.py) on a capped line with the sim's imperfections - the
# pusher's play, the stopper's compliance and creep, a sensor with a lag, noise, a 1 kPa quantum and an offset.
# Virtual time: control passes 1 ms apart (or late), each dense read 37 us; noise from a fixed LCG. JSON out.
import json
from math import exp

from mesofw import dosing, linetest
from mesoprotocol import spec as S


class Rng:
    def __init__(self, seed):
        self.x = seed

    def uniform(self):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x / 0x7FFFFFFF


class CappedLine:
    # the pusher meets the stopper after `play` steps; each step past it pushes step_nl into the capped line,
    # whose pressure is (pushed - crept) / C; the creep takes volume toward share x C x p with time creep_us
    def __init__(self, c_nl, step_nl, play, share, creep_us, lag_us, noise, seed, leak_us=0):
        self.c, self.step_nl, self.play, self.share, self.creep_us = c_nl, step_nl, play, share, creep_us
        self.lag, self.noise, self.leak_us = lag_us, noise, leak_us
        self.rng = Rng(seed)
        self.pos = 0
        self.pushed = self.crept = self.sensed = 0.0
        self.out_nl = 0.0  # what left through a leak or an open outlet
        self.t = 0
        self.offset = 2.4
        self.estop_at = None

    def p(self):
        p = (self.pushed - self.crept) / self.c
        return p if p > 0 else 0.0

    def step(self, n):
        for _ in range(abs(n)):
            if n > 0:
                self.pos += 1
                if self.pos > self.play:
                    self.pushed += self.step_nl
            else:
                if self.pos > self.play and self.pushed > 0:
                    self.pushed -= self.step_nl
                self.pos -= 1

    def advance(self, t):
        while self.t < t:
            dt = min(t - self.t, 20)
            p = self.p()
            self.crept += (self.share * self.c * p - self.crept) * dt / self.creep_us
            if self.leak_us:  # a loose cap (or none): the line empties with this time constant
                out = self.c * p * dt / self.leak_us
                self.pushed -= out
                self.out_nl += out
            self.sensed += (self.p() - self.sensed) * (1 - exp(-dt / self.lag))
            self.t += dt

    def read(self):
        n = (self.rng.uniform() + self.rng.uniform() - 1) * 2.449 * self.noise
        v = self.sensed + self.offset + n
        return int(v + 0.5) if v > 0 else 0


class Board:
    def __init__(self, line, clock):
        self.line, self.clock = line, clock

    def pressure_kpa(self):
        self.line.advance(self.clock[0])
        return self.line.read()

    def motors(self, on):
        pass

    def estop(self):
        at = self.line.estop_at
        return at is not None and self.clock[0] >= at


def run(c_nl, lag_us, share=0.15, creep_ms=600, noise=0.6, step_nl=5.66, area_mm2=18, play=300, seed=5,
        pass_us=1000, leak_us=0, estop_at=None, abort_at=None, slack=448):
    clock = [0]

    def read_clock():
        clock[0] += 37  # a tight loop's read, ~37 us on a board
        return clock[0]

    line = CappedLine(c_nl, step_nl, play, share, creep_ms * 1000, lag_us, noise, seed, leak_us)
    line.estop_at = estop_at
    axis = dosing.Axis(line.step, 1)
    lt = linetest.LineTest(Board(line, clock), axis, None, read_clock)
    step_pl = int(step_nl * 1000)
    prior = area_mm2 * 35
    lt.start(step_pl, area_mm2, prior, slack, 17000, clock[0])
    peak = 0.0
    while True:
        clock[0] += pass_us
        if abort_at is not None and clock[0] >= abort_at and lt.phase != linetest.BACK:
            lt.stop(clock[0])
        if lt.tick(clock[0]):
            break
        line.advance(clock[0])
        peak = max(peak, line.p())
        if clock[0] > 10000000:
            break
    line.advance(clock[0] + 5000)
    return {"outcome": lt.outcome, "lag_us": lt.lag_us, "c_pl": lt.compliance_pl, "creep_permille": lt.creep_permille,
            "creep_ms": lt.creep_ms, "step16": lt.step16, "peak_kpa": lt.peak_kpa, "true_peak": peak,
            "end_kpa": line.p(), "pos": axis.pos, "took_ms": clock[0] // 1000, "out_nl": line.out_nl}


def main():
    cases = []
    # (C nL/kPa, step nL, area mm2): BD 1 mL stiff and soft, BD 3 mL, BD 10 mL soft; lags across the sim's range
    for i, (c, step_nl, area) in enumerate(((0.3, 5.66, 18), (1.1, 5.66, 18), (3.0, 5.66, 18), (2.2, 17.4, 57),
                                            (9.8, 52.3, 186))):
        for j, lag in enumerate((300, 900, 1500)):
            r = run(c, lag, share=0.05 + 0.05 * j, creep_ms=200 + 400 * j, noise=0.3 + 0.35 * j, step_nl=step_nl,
                    area_mm2=area, seed=11 + 3 * i + j)
            r.update({"c_true": c * 1000, "lag_true": lag, "share_true": 0.05 + 0.05 * j, "creep_true": 200 + 400 * j})
            cases.append(r)
    late = run(1.1, 900, pass_us=4000, seed=3)  # a loaded board: passes 4 ms apart
    late.update({"c_true": 1100, "lag_true": 900})
    results = {
        "cases": cases,
        "late": late,
        "open": run(1.1, 900, play=5000),  # the pusher never meets the stopper within its reach
        "open_outlet": run(1.1, 900, leak_us=20, slack=300),  # no cap (the pusher its slack off the stopper)
        "leak": run(1.1, 900, leak_us=400000),  # a loose cap: the line empties over 0.4 s
        "estop": run(1.1, 900, estop_at=400000),  # the E-stop pressed during the dense read (if it is then)
        "abort": run(1.1, 900, abort_at=900000),  # stopped mid-hold
        "no_creep": run(1.1, 900, share=0.0),
    }
    print(json.dumps(results))


main()
