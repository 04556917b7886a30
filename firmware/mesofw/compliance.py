# The line's compliance (volume stored per kPa: stopper, barrel), measured on the device from the
# prime's pressure response instead of assumed: it decides how much a point tops up at the wheal's
# back-pressure and how much of a dose the record counts as still in the syringe.
#
# With the needle in the air the line is a compliance C discharging through the needle's
# conductance G (volume flow = G x pressure). While the plunger pushes V (from the dispense's start
# until the driver has let out its last step) the pressure integrates to I and goes from p1 to ps;
# after it, everything stored (C x ps) flows out, integrating to J:
#     V = C (ps - p1) + G I        C ps = G J      =>   C = V J / (J (ps - p1) + I ps)
# Integrals are sums of samples, so the sensor's noise averages out; its lag (a first-order filter
# of known time constant) shifts I by -lag (ps - p1) and J by +lag ps, which is corrected. The tail
# below the end threshold is extrapolated as an exponential (J x ps / (ps - p_end)).
import micropython
from time import ticks_diff

MIN_HALF_SAMPLES = 2  # nor one with fewer samples than this before its tail fell to half (issue #20: a control
# pass of 1-5 ms, or the CPU taken away, saw a 3 ms tail once and integrated a chord: 0.3-2.4x the truth)
MIN_PS_KPA = 8  # a prime whose pressure never rose this far says nothing about the compliance
MIN_TAU_US = 2000  # nor one whose line empties faster than this (1 ms samples): the prior stands
# the range a stopper's compliance per mm^2 of its face can have (pL/kPa/mm^2; docs/sim-model.md):
# an estimate outside it is clamped, a failed one takes the middle
MIN_PL_PER_KPA_MM2 = 10
MAX_PL_PER_KPA_MM2 = 400  # loose: a softer line than the model draws must still be measured (issue #20: 6 nL/kPa on a 1 mL)
NOMINAL_PL_PER_KPA_MM2 = 35


def prior_pl_per_kpa(area_mm2, pl_per_kpa_mm2=NOMINAL_PL_PER_KPA_MM2):
    return area_mm2 * pl_per_kpa_mm2


class Probe:
    # fed once per control tick from the prime's dispense and settle (integers only: no allocation)
    def __init__(self, lag_us):
        self.lag_us = lag_us
        self.start(0)

    def start(self, now_us):
        self.last_us = now_us
        self.started = False
        self.split = False  # True from the moment the plunger's last step is out
        self.p1 = 0
        self.ps = 0
        self.p_end = 0
        self.i_kpa_us = 0  # while pushed
        self.j_kpa_us = 0  # after
        self.half_samples = 0  # samples from the split on while the line was above half its pressure there

    @micropython.native  # every pass of a prime
    def feed(self, kpa, now_us, after_push):
        if not self.started:
            self.started = True
            self.p1 = self.p_end = kpa
            self.last_us = now_us
            return
        dt = ticks_diff(now_us, self.last_us)
        self.last_us = now_us
        area = (self.p_end + kpa) * dt // 2  # trapezoids: a rectangle per sample would add a sample's worth
        if self.split:
            self.j_kpa_us += area
        else:
            self.i_kpa_us += area
        if self.split and kpa * 2 > self.ps:
            self.half_samples += 1
        if after_push and not self.split:
            self.split = True
            self.half_samples = 1  # this one
            # the line's pressure at the split, not the sensor's lagging reading of it (falling there:
            # the reading trails it by lag x its slope)
            self.ps = kpa + self.lag_us * (kpa - self.p_end) // dt if dt > 0 else kpa
        self.p_end = kpa

    def pl_per_kpa(self, pushed_nl, area_mm2):
        # the estimate, clamped to what a stopper of this area can have; None when the prime said nothing
        ps, p1 = self.ps, self.p1
        if not self.split or self.half_samples < MIN_HALF_SAMPLES or ps < MIN_PS_KPA or ps <= self.p_end or pushed_nl <= 0:
            return None
        i = self.i_kpa_us + self.lag_us * (ps - p1)
        j = self.j_kpa_us - self.lag_us * ps
        if j <= 0 or i <= 0 or j < MIN_TAU_US * ps:
            return None  # the line empties within a sample or two: its time constant is not resolved
        j = j * ps // (ps - self.p_end)  # the exponential tail below where the settle stopped
        c = 1000 * pushed_nl * j // (j * (ps - p1) + i * ps)
        lo = area_mm2 * MIN_PL_PER_KPA_MM2
        hi = area_mm2 * MAX_PL_PER_KPA_MM2
        return lo if c < lo else hi if c > hi else c
