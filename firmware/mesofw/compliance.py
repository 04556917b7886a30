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
# A prime's line is read densely (Probe.tail: a tight loop of timestamped sensor reads) from the moment the
# plunger's count is out, not once per control pass: a pass of 1-5 ms - or the CPU taken from the board -
# saw a line of a 3 ms time constant in one or two samples and the estimate fell back to the stopper-area
# prior, 10x under a soft line (issue #20: -2.4 % on a 6 nL/kPa 50 uL point). From that read the time
# constant comes from the reading's area and first moment after the split (Probe._moments): no need of the
# line's true pressure at the split (which a push jittered by irregular passes leaves unknown) and the
# lag's error second order. The J formula above stays for a prime fed only per pass (feed()).
import micropython
from time import ticks_diff, ticks_us

MIN_HALF_SAMPLES = 2  # nor one with fewer samples than this before its tail fell to half (issue #20: a control
# pass of 1-5 ms, or the CPU taken away, saw a 3 ms tail once and integrated a chord: 0.3-2.4x the truth)
MIN_PS_KPA = 8  # a prime whose pressure never rose this far says nothing about the compliance
MIN_TAU_US = 2000  # nor one whose line empties faster than this (1 ms samples): the prior stands
MIN_TAU_DENSE_US = 2200  # ... or, read densely, faster than the slowest sensor lag a board may have (1.5 ms) plus
# the noise's reach. A reading is the line and the sensor's lag in series, the same for either way round (a 0.3 ms
# line behind a 1.5 ms lag reads as a 1.5 ms line behind 0.3 ms): below the slowest lag the moments cannot tell the
# line from the lag (a BD 3 mL default line of 0.9 ms behind a 1.2 ms lag read +50 %, its shots topped up +0.5 %).
# Such a line's tau scatters with the sensor's noise (0.5-1 kPa): +-0.2-0.35 ms about ~1-1.4 ms, and a threshold on
# it at 1.5 ms kept exactly its reads that were furthest off (issue #20, test_calibration: a BD 1 mL line of
# 0.5 ms behind a 1.28 ms lag read 0.84-1.53 ms, the one past 1.5 ms set the compliance 3x its truth and the
# session's points +0.3-0.7 %). At 1 kPa of noise 0-2 of 60 primes of such a line read past 2.2 ms, 4-22 past 1.5.
MIN_TAU_MEASURED_US = 1200  # ... and with the lag measured (a line test, linetest.py), faster than this: the
# moments are then exact but the sensor's noise at a prime's ~10 kPa scatters a fast line's tau by +-0.3 ms
# (issue #20: 385 sim primes, the true lag taken off: no 0.2-0.6 ms line read past 1.12 ms; past 1.2 ms 4 of 306
# were off by more than 30 %, none by more than 54 %)
STEADY_US = 16000  # the split's pressure: the mean over the push's last 8-16 ms (two blocks of half this)
TAIL_GAP_US = 50  # the dense tail: a read at most every this often...
TAIL_MAX_US = 60000  # ...for at most this long (a BD 10 mL line of 10 nL/kPa through a 2x viscous drug: tau 9 ms)
GAP_MAX_US = 400  # two reads further apart than this while the line fell by > 1 kPa: the CPU was taken from the loop
# (a loaded simulator's host; on a board an interrupt storm): that stretch is integrated as an exponential
END_READS = 16  # ...then this many more reads, whose mean is the level the rest is extrapolated from
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
        self.lag_us = lag_us  # the board's nominal, until a line test measures it (measured_lag)
        self.lag_measured = False
        self.halt = halt or _never  # halt() -> True: a stop input (the E-stop) ends a dense read at once
        self.start(0)

    def measured_lag(self, lag_us):
        # the sensor's lag as a line test measured it: the moments' lag is no longer a guess
        self.lag_us = lag_us
        self.lag_measured = True

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
        self.s_split16 = 0  # dense: the reading at the split (1/16 kPa)
        self.m1 = 0  # dense: the tail's first moment about the split, 1/16 kPa x us^2 / 2048
        self.t_end_us = 0  # dense: the tail read until this long after the split
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
        j16 = m1 = 0
        after = end_sum = 0
        avg16 = p16 << 2
        half16 = 0
        while True:
            now = clock()
            dt = ticks_diff(now, last)
            if dt < TAIL_GAP_US:
                continue
            if self.halt():
                self.split = False  # an estimate from a cut read would be wrong: none (the prior or the last stands)
                return
            q16 = (read() << 4) - zero16  # signed: the noise about an emptied line's zero averages out
            area = (p16 + q16) * dt  # trapezoids, x2
            last = now
            p16_was = p16
            p16 = q16
            avg16 += q16 - (avg16 >> 2)  # the recent reads' mean, x4 (an exponential average over ~4 reads)
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
                self.s_split16 = avg16 >> 2  # the sensor's (lagging) reading at the split: its recent mean
                self.half_samples = 0
                half16 = self.ps16 >> 1
                start = now
                continue
            u = ticks_diff(now, start) - (dt >> 1)  # the trapezoid's middle, from the split
            if dt > GAP_MAX_US and 0 < q16 < p16_was - 16:
                # the CPU was taken from the loop while the line fell: across the gap the line decays as an
                # exponential, not along the chord (a chord over 2 ms of a 2 ms tail doubles its area)
                ln = ln_q12(p16_was, q16)
                tau = dt * 4096 // ln
                area = (dt * (p16_was - q16) // ln) * 8192
                u = ticks_diff(now, start) - dt + tau - dt * q16 // (p16_was - q16)  # the segment's centroid
            j16 += area
            m1 += ((area + 32) >> 6) * ((u + 32) >> 6)  # first moment, / 4096 (small ints)
            if q16 > half16:
                self.half_samples += 1
            if after:  # the rest's level: the mean of reads after the end was seen (not the reads that saw it)
                end_sum += q16
                after -= 1
                if not after:
                    break
            elif avg16 <= TAIL_END_16 << 2 or ticks_diff(now, start) >= TAIL_MAX_US:
                after = END_READS
        self.j16_us = j16 >> 1
        self.j_kpa_us = j16 >> 5
        self.m1 = m1
        self.t_end_us = ticks_diff(last, start)
        self.p_end16 = end_sum // END_READS
        self.p_end = (self.p_end16 + 8) >> 4
        self.last_us = last

    def _moments(self, pushed_nl):
        # The dense tail's estimate, from the reading's area M0 and first moment M1 after the split ts, and
        # the reading there s_ts (not the line's true pressure, which a push jittered by irregular passes
        # leaves unknown): for any t after the push C p(t) = G (area of p after t); integrated over t,
        # C x area(p) = G x moment(p). A first-order lag L turns the reading's into the line's:
        #     area(p) = M0 - L s_ts      moment(p) = M1 - L M0      tau = C / G = moment(p) / area(p)
        # exact for any line and split time; a lag L' off the nominal biases tau by ~(L' - L) L' / tau
        # (second order: 11 % on a 1.85 ms line at 1.22 vs 0.9 ms, where J / ps - L was 17 %). Then
        # V = G (I + area(p)) - C p1 gives G: G = V / (I + M0 - L p1 - tau p1)   (1/16 kPa, us)
        lag, s_ts = self.lag_us, self.s_split16
        m0 = self.j16_us
        m1 = self.m1 * 2048
        p_end, t_end = self.p_end16, self.t_end_us
        if s_ts <= 0 or m0 <= 0 or self.ps16 < MIN_PS_KPA << 4:
            return None  # nothing read after the split, or a push whose pressure never rose: says nothing
        tau0 = m0 // s_ts - lag  # a first tau for the tail's rest beyond the read (an exponential from p_end)
        if tau0 > 0 and p_end > 0:
            m0 += p_end * tau0
            m1 += p_end * tau0 * (t_end + tau0)
        area = m0 - lag * s_ts
        if area <= 0:
            return None
        tau = (m1 - lag * m0) // area
        if tau < (MIN_TAU_MEASURED_US if self.lag_measured else MIN_TAU_DENSE_US):
            return None  # the line empties within a few of the sensor's lags: not resolved
        p1 = self.p1 << 4
        push = (self.i_kpa_us << 4) + m0 - (lag + tau) * p1
        if push <= 0:
            return None
        return 16000 * pushed_nl * tau // push

    def pl_per_kpa(self, pushed_nl, area_mm2):
        # the estimate, at least what a stopper of this area can have; None when the prime said nothing (or nonsense).
        # Pressures in 1/16 kPa (a dense tail's are that fine: its mean and integral, not one reading)
        if self.dense:  # the dense read's own estimate (its checks there)
            c = self._moments(pushed_nl) if self.split and pushed_nl > 0 else None
            if c is None:
                return None
            return self._clamp(c, area_mm2)
        ps, p1, p_end = self.ps16, self.p1 << 4, self.p_end16
        if not self.split or self.half_samples < MIN_HALF_SAMPLES or ps < MIN_PS_KPA << 4 or ps <= p_end or pushed_nl <= 0:
            return None
        i = (self.i_kpa_us << 4) + self.lag_us * (ps - p1)
        j = self.j16_us - self.lag_us * ps
        if j <= 0 or i <= 0 or j < MIN_TAU_US * ps:
            return None  # the line empties within a sample or two: its time constant is not resolved
        j = j * ps // (ps - p_end)  # the exponential tail below where the settle stopped
        c = 16000 * pushed_nl * j // (j * (ps - p1) + i * ps)
        return self._clamp(c, area_mm2)

    def _clamp(self, c, area_mm2):
        # above the ceiling (~7x the softest line the model draws) it is no reading of a line: a zero off by a
        # noise draw kept the tail "above zero" too long (the emulated Pico's ADC held a draw a whole ms: 7200 pL/kPa
        # read for a 475 line, every point after it topped up 10-19 steps too far); the prior or the last stands
        if c > area_mm2 * MAX_PL_PER_KPA_MM2:
            return None
        lo = area_mm2 * MIN_PL_PER_KPA_MM2
        return lo if c < lo else c


CREEP_BLOCK_US = 8000  # the creep follows the pressure's mean over blocks this long (a pass is too fine a step; a
# pass costs ~70 us of an emulated RP2040's while it is followed: only after a line test measured a creep)
CREEP_MAX_PL = 1 << 19  # a creep past 0.5 uL is no stopper's (BD 10 mL, 25 % of 10 nL/kPa at 150 kPa: 0.38 uL)


class Creep:
    # The stopper's slow share of its compliance, as a line test measured it (linetest.py: the share s of the
    # compliance C, its own time T): it takes up to s C p from the line over T while the pressure p holds and
    # gives it back as p falls. Followed from the pressure reads a dose makes (above the line's zero, a block's
    # mean at a time); what it took over a dose (held as its top-up is judged less held as it began) never left
    # the needle: a point's top-up pushes it, a point's record does not count it, a shot's top-up nets it (a
    # session's first shots get back what the prime left in it). No creep measured: gain 0, nothing followed.
    def __init__(self):
        self.set(0, 0, 0)

    def set(self, permille, ms, compliance_pl):
        self.gain = permille * compliance_pl // 1000  # pL held per kPa, relaxed
        self.tau64 = (ms if ms > 0 else 1) * 1000 >> 6  # its time, 64 us units
        self.held = self.start = self.sum = self.span = 0  # pL; pL at the dose's start; kPa x us, us of this block
        self.t_us = ticks_us()

    @micropython.native  # every pass of a dose, while a creep is measured
    def follow(self, kpa, now_us):
        # the line was at kpa (above its zero) since the last call
        dt = ticks_diff(now_us, self.t_us)
        self.t_us = now_us
        if dt == 0:
            return
        if dt < 0:  # ticks wrapped: over 2^29 us ago (9 min on a chip), as good as relaxed
            dt = 1 << 23
        if kpa > 0:
            self.sum += (kpa if kpa < 255 else 255) * (dt if dt < 1 << 21 else 1 << 21)  # < 2^29: a small int
        self.span += dt
        if self.span >= CREEP_BLOCK_US:
            self._block()

    def _block(self):
        span = self.span
        target = self.gain * (self.sum // span)
        if target > CREEP_MAX_PL:
            target = CREEP_MAX_PL
        u = (span << 10) // self.tau64 if span < 1 << 19 else 1 << 30  # span / T, 1/65536
        if u < 16384:  # a dose's block: 1 - e^-u = u - u^2/2 + u^3/6 (a q10 exponential's quantum was 2-7 % of it)
            k = u - (u * u >> 17) + ((u * u >> 16) * u >> 16) // 6
            self.held += (target - self.held) // 16 * k >> 12
        else:
            x = u >> 4 if span < 1 << 19 else (span << 6) // self.tau64 if span < 1 << 23 else 1 << 16  # 1/4096
            self.held = target + ((self.held - target) * exp_q10(x) >> 10)
        self.sum = self.span = 0

    def begin(self, now_us):
        # a dose starts: the creep's hold from here is its own
        if self.gain:
            self.follow(0, now_us)  # the line at rest since the last dose's reads
            if self.span:
                self._block()
        self.start = self.held

    def taken(self, now_us):
        # pL the creep took from the line since the dose began (given back: negative)
        if not self.gain:
            return 0
        self.follow(0 if self.span == 0 else self.sum // self.span, now_us)
        if self.span:
            self._block()
        return self.held - self.start


def exp_q10(x):
    # e^(-x / 4096) x 1024, small ints only: 2^-(x / ln 2), the fraction's power a quadratic (within 0.5 %)
    y = (x if x < 1 << 16 else 1 << 16) * 1477 >> 10  # x / ln 2, 1/4096
    whole = y >> 12
    if whole > 10:
        return 0
    f = (y & 4095) >> 2  # 1/1024
    return 1024 - (f * 703 >> 10) + (f * f * 191 >> 20) >> whole


def ln_q12(a, b):
    # ln(a / b) x 4096 for a > b > 0, small ints only: halvings, then 2 atanh((r - 1) / (r + 1)) for r in [1, 2)
    n = 0
    while b << 1 <= a:
        b <<= 1
        n += 1
    y = ((a - b) << 14) // (a + b)
    y2 = y * y >> 14
    term = acc = y
    k = 3
    while term:
        term = term * y2 >> 14
        acc += term // k
        k += 2
    return n * 2839 + (acc >> 1) + 1  # ln 2 = 2839 / 4096; (never 0)


def _never():
    return False
