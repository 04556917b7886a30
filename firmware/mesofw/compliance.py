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
#
# The tail is read densely (Probe.tail: a tight loop of sensor reads, each timestamped) rather than once
# per control pass: a pass of 1-5 ms - or the CPU taken away from the board for longer - saw a line with a
# 3 ms time constant in one or two samples, and the estimate fell back to the stopper-area prior, 10x under
# a soft line's compliance (issue #20: -2.4 % on a 6 nL/kPa 50 uL point). The pressure at the split is the
# mean of the push's last STEADY_US, not one lagging sample extrapolated (its noise, x2 by the
# extrapolation, was the estimate's largest error).
#
# What is left is the sensor's lag, known only nominally (the board's PRESSURE_LAG_US; the sim draws
# 0.3-1.5 ms): J holds tau + lag, so a line of time constant tau is measured within (lag - nominal) / tau
# (+-15 % on a 4 ms line at the range's ends). A two-window fit of the tail's decay, free of the lag, was
# tried: on an 11 kPa prime with the sim's noise it scattered +-20 % (docs/metering.md).
import micropython
from time import ticks_diff, ticks_us

MIN_HALF_SAMPLES = 2  # nor one with fewer samples than this before its tail fell to half (issue #20: a control
# pass of 1-5 ms, or the CPU taken away, saw a 3 ms tail once and integrated a chord: 0.3-2.4x the truth)
MIN_PS_KPA = 8  # a prime whose pressure never rose this far says nothing about the compliance
MIN_TAU_US = 2000  # nor one whose line empties faster than this (1 ms samples): the prior stands
MIN_TAU_DENSE_US = 600  # ... or than this when the tail was read densely (the sensor's lag, +-0.6 ms, dominates below)
STEADY_US = 16000  # the split's pressure: the mean over the push's last 8-16 ms (two blocks of half this)
TAIL_GAP_US = 50  # the dense tail: a read at most every this often...
TAIL_MAX_US = 60000  # ...for at most this long (a BD 10 mL line of 10 nL/kPa through a 2x viscous drug: tau 9 ms)
TAIL_END_16 = 4  # ...until the mean of its last ~8 reads is this low (1/16 kPa above the zero): what is left
# beyond is extrapolated from that mean (one read's noise, +-1 kPa, made the old extrapolation +-9 %)
BUSY_MAX_US = 10000  # the driver's last batch is out within this (it spreads a batch over 1-2 ms)
MIN_PL_PER_KPA_MM2 = 10
MAX_PL_PER_KPA_MM2 = 400  # loose: a softer line than the model draws must still be measured (issue #20: 6 nL/kPa on a 1 mL)
NOMINAL_PL_PER_KPA_MM2 = 35


def prior_pl_per_kpa(area_mm2, pl_per_kpa_mm2=NOMINAL_PL_PER_KPA_MM2):
    return area_mm2 * pl_per_kpa_mm2


class Probe:
    # fed once per control tick from the prime's dispense and settle (integers only: no allocation)
    def __init__(self, lag_us, halt=None):
        self.lag_us = lag_us
        self.halt = halt or _never  # halt() -> True: a stop input (the E-stop) ends a dense read at once
        self.start(0)

    def start(self, now_us):
        self.last_us = now_us
        self.started = False
        self.split = False  # True from the moment the plunger's last step is out
        self.p1 = 0
        self.ps = self.ps16 = 0  # kPa; 1/16 kPa
        self.p_end = self.p_end16 = 0
        self.j16_us = 0  # j_kpa_us in 1/16 kPa x us
        self.i_kpa_us = 0  # while pushed
        self.j_kpa_us = 0  # after
        self.half_samples = 0  # samples from the split on while the line was above half its pressure there
        self.dense = False  # the tail was read by tail(): feed() adds nothing after the split
        self.blk_sum = self.blk_us = 0  # the push's pressure (kPa x us) in the current block of STEADY_US / 2...
        self.prev_sum = self.prev_us = 0  # ...and in the one before it

    @micropython.native  # every pass of a prime
    def feed(self, kpa, now_us, after_push):
        if not self.started:
            self.started = True
            self.p1 = self.p_end = kpa
            self.p_end16 = kpa << 4
            self.last_us = now_us
            return
        dt = ticks_diff(now_us, self.last_us)
        self.last_us = now_us
        area = (self.p_end + kpa) * dt // 2  # trapezoids: a rectangle per sample would add a sample's worth
        if self.dense:
            return
        if self.split:
            self.j_kpa_us += area
        else:
            self.i_kpa_us += area
            self.blk_sum += area
            self.blk_us += dt
            if self.blk_us >= STEADY_US // 2:
                self.prev_sum, self.prev_us = self.blk_sum, self.blk_us
                self.blk_sum = self.blk_us = 0
        if self.split and kpa * 2 > self.ps:
            self.half_samples += 1
        if after_push and not self.split:
            self.split = True
            self.half_samples = 1  # this one
            # the line's pressure at the split, not the sensor's lagging reading of it (falling there:
            # the reading trails it by lag x its slope)
            self.ps = kpa + self.lag_us * (kpa - self.p_end) // dt if dt > 0 else kpa
            self.ps16 = self.ps << 4
        self.p_end = kpa
        self.p_end16 = kpa << 4
        self.j16_us = self.j_kpa_us << 4

    def tail(self, read, zero16, busy, clock=ticks_us):
        # From the moment the plunger's count is out (the driver may still be letting out its last batch:
        # busy()), the line read densely in a tight loop of timestamped reads (kPa from read(); zero16: the
        # sensor's zero in 1/16 kPa): the push to its true end (its integral, its steady pressure), then the
        # discharge. The split is where busy() turns False, within a read of it (once a pass it was up to a
        # pass late, the line already falling: J short by ps x that, -13 % on a 4 ms line at 1 ms passes).
        # Integers only, no allocation; blocks the loop (< BUSY_MAX_US + TAIL_MAX_US): the needle is out.
        if self.dense or not self.started:
            return
        self.dense = True
        start = last = clock()
        p16 = self.p_end << 4  # the last pass's reading (above the zero)
        pushing = True
        j16 = 0
        avg16 = 0
        half16 = 0
        while True:
            now = clock()
            dt = ticks_diff(now, last)
            if dt < TAIL_GAP_US:
                continue
            if self.halt():
                self.split = False  # an estimate from a cut read would be wrong: none (the prior or the last stands)
                return
            q16 = (read() << 4) - zero16
            if q16 < 0:
                q16 = 0
            area = (p16 + q16) * dt  # trapezoids, x2
            last = now
            p16 = q16
            if pushing:
                self.i_kpa_us += area >> 5
                self.blk_sum += area >> 5
                self.blk_us += dt
                if busy() and ticks_diff(now, start) < BUSY_MAX_US:
                    continue
                pushing = False  # the split: the line's pressure now is the push's steady mean
                us = self.prev_us + self.blk_us
                self.ps16 = ((self.prev_sum + self.blk_sum) << 4) // us if us >= STEADY_US // 4 else q16
                self.ps = (self.ps16 + 8) >> 4
                self.split = True
                self.half_samples = 0
                half16 = self.ps16 >> 1
                avg16 = q16 << 3  # the recent reads' mean, x8 (an exponential average over ~8 reads)
                start = now
                continue
            j16 += area
            if q16 > half16:
                self.half_samples += 1
            avg16 += q16 - (avg16 >> 3)
            if avg16 <= TAIL_END_16 << 3 or ticks_diff(now, start) >= TAIL_MAX_US:
                break
        self.j16_us = j16 >> 1
        self.j_kpa_us = j16 >> 5
        self.p_end16 = avg16 >> 3
        self.p_end = (self.p_end16 + 8) >> 4
        self.last_us = last

    def pl_per_kpa(self, pushed_nl, area_mm2):
        # the estimate, clamped to what a stopper of this area can have; None when the prime said nothing.
        # Pressures in 1/16 kPa (a dense tail's are that fine: its mean and integral, not one reading)
        ps, p1, p_end = self.ps16, self.p1 << 4, self.p_end16
        if not self.split or self.half_samples < MIN_HALF_SAMPLES or ps < MIN_PS_KPA << 4 or ps <= p_end or pushed_nl <= 0:
            return None
        i = (self.i_kpa_us << 4) + self.lag_us * (ps - p1)
        j = self.j16_us - self.lag_us * ps
        if j <= 0 or i <= 0 or j < (MIN_TAU_DENSE_US if self.dense else MIN_TAU_US) * ps:
            return None  # the line empties within a sample or two: its time constant is not resolved
        j = j * ps // (ps - p_end)  # the exponential tail below where the settle stopped
        c = 16000 * pushed_nl * j // (j * (ps - p1) + i * ps)
        lo = area_mm2 * MIN_PL_PER_KPA_MM2
        hi = area_mm2 * MAX_PL_PER_KPA_MM2
        return lo if c < lo else hi if c > hi else c


def _never():
    return False
