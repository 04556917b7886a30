# A blocked needle of a multi-needle head, judged from the one line pressure sensor.
#
# The head's n needles share one line: their conductances add, so one needle fully blocked lowers the
# line's conductance to (n-1)/n of its own and raises every pressure the flow makes by n/(n-1): 25 % on
# a 5-needle head, 12.5 % on a 9-needle one (less when the blocked needle is the lot's narrowest:
# S.head_block_rise_permille). While a point dispenses at constant flow q the line reads
#     p(t) = q / G  +  B(t)          (G: the head's conductance; B: the wheals' back-pressure, growing
#                                     with the volume each needle has put in, so ~linear in t)
# The plunger's flow is not always the programmed one: a late control pass (a journal write; on the
# simulated board a host that did not schedule its process) holds the axis back (dosing.Axis lags, never
# bursts) and the line falls towards the wheals' back-pressure meanwhile. So the watch judges on samples
# and the board's clock, not on how long passes took: a read counts, one sample each, only from a steady
# pass (on time) at least CALM_US of board time after the last late one (weighting reads by their pass's
# length put the host's load into the figures: the false alarms under load). The wheals' growth is taken
# against the volume pushed (V), not the clock:
#     p = F + k V          (F = q / G: the line's own flow pressure; k: the wheals' stiffness / G)
# F and k from Wald's line through the means of the dispense's two halves in V (sums of small ints
# per pass, no allocation). Two figures, 1/16 kPa above the zero (the sensor's reading at rest, taken as
# the dose starts: dosing._zero; the sensor reads below ambient too, so a negative offset hides nothing):
#   flow   F, the line's own pressure at the program's flow, the tissue's taken out. The prime, in the
#          air at the program's flow with no tissue on any needle, measures the clear head's (no clean
#          first point needed); a point whose flow figure is past the threshold above it has a needle
#          blocked since - from the first point on, on 5- and 9-needle heads. Judged on the average of
#          the first FLOW_POINTS points after a prime (the noisier figure; later blocks are the mean's).
#   mean   the line at the dose's middle volume (F + k V/2, from the same line), judged against the
#          average of this head's first clean points (a needle blocking mid-session): the tissue's figure
#          as much as the line's, but without the extrapolation, the quieter one.
# Both scatter between clean points (the simulated board under load, 9 needles: flow +-1.6 % a point against
# the prime, mean less: bench_heads; +-2.5 % before the model's sensor took each interval's mean and the flow
# figure the sensor's lag, +-5-10 % a board before the model stopped running spans of its clock twice): now
# mostly the reads' own noise - an extrapolation over ~900 reads against the prime's 425, the 1 kPa quantum at
# a low-noise board's flat prime, the zero. So the mean past the threshold is a suspicion, confirmed by the next point past it too (the
# needle stays blocked; a clean point clears it), past 1.5 x the threshold and 15 % it alarms at once; the
# flow figure alarms on the first points' average (a block since the prime is in each of them).
# Threshold: half the least rise one blocked needle makes (S.head_block_permille), so a miss and a false
# alarm are equally far from it; what decides both is the figures' noise against that margin (the
# sensor's noise over the samples, the zero's, the ADC quantum, the stopper's creep): PROTOCOL.md
# "Blocked needles".
# A needle blocked before the prime: the prime then measures the blocked head as its reference. Against
# the head table alone (S.head_prime_max16: Poiseuille over the needles' gauge and length, the most
# viscous drug, the narrowest needles of the lot) it reads as a drug 1/(n-1) more viscous, and the drugs'
# viscosities move the line 1.56x: one blocked needle of 9 is never past the table, one of 5 only with a
# drug over ~1.8 mPa s; two or more are. A prime past the table is refused (TABLE: no reference).
import micropython
from time import ticks_add, ticks_diff

SKIP_US = 4000  # the sensor's lag and the line's compliance rising: not yet the dose's flow pressure
MIN_MS = 40  # a dispense shorter than this (a nappage shot) is not judged: too few samples
MAX_MS = 8000  # nor a longer one: its sums would outgrow a small int (heap allocation in the loop)
LATE_US = 2000  # a control pass this long after the last (1 ms) paused the plunger (dosing.Axis.MAX_GAP_US: a
# shorter one's steps all go out, the flow holds): its read left out...
CALM_US = 3000  # ...and every read this long after it (board time, not passes: catch-up passes come back to
# back). The plunger paused while the pass was held (the axis lags, never bursts): the line fell towards
# the wheals' back-pressure and climbs back within its time constant (< 1 ms) behind the sensor's filter
# (lag 0.3-1.5 ms, 0.9 typical: 3 lags, 5 % of the fall left). Longer left too few reads on a loaded
# simulator (a late pass every few ms): the figures' noise grew more than the fall's remainder.
IMMEDIATE_PERMILLE = 150  # a mean this far up (and past 1.5 x the threshold) needs no second point
ZERO_AVG = 8  # the zero: an exponential average over about this many doses' zeros
FLOW_POINTS = 2  # the flow figure is judged on the first points after a prime only (below)
BASE_POINTS = 8  # the mean's baseline: the head's first clean points, averaged (one point's scatter halved by 4)
MIN_READS = 16  # steady reads each half needs for the flow figure (and the mean at the middle volume)
MIN_W = 32  # a dispense with fewer steady reads is not judged
FLOW = 1  # judge(): the flow figure rose past the prime's (a needle blocked since the prime)
MEAN = 2  # judge(): the mean rose past the head's first point's (a needle blocked mid-session)
TABLE = 3  # judge(): the prime's flow pressure above the head table's for a clear head (blocked before the prime)


class Watch:
    def __init__(self, lag_us=0):
        # lag_us: the pressure sensor's filter time constant (the board's PRESSURE_LAG_US, nominal): its reading
        # trails the line by that much, so on a point's rising line it reads the wheals of lag_us ago (figures)
        self.lag_us = lag_us
        # The figures are kept in 1/256 kPa (x256 below) and judged so: a 9-needle head's 5-8 kPa flow pressure in
        # 1/16 kPa steps was 0.8-1.2 % a step, the point's and the prime's each floored by one (the *16 names: the
        # same figures in 1/16 kPa, for the alarm's detail and the board's report)
        self.ref256 = self.ref_flow16 = 0  # the prime's flow pressure (0: none: nothing to judge against)
        self.base_mean256 = 0  # the mean figure of this head's clean points (the first BASE_POINTS)
        self.base_sum = self.base_n = 0
        self.base_new = False
        self.mean256 = self.flow256 = 0  # the last dispense's figures
        self.mean16 = self.flow16 = self.risen16 = 0  # the same in 1/16 kPa; what rose (judge), 1/16 kPa
        self.lag16 = 0  # the sensor's lag as volume pushed at this dose's rate, 1/16 V unit (start)
        self.suspect = 0  # points in a row past the threshold
        self.flow_left = 0  # points after the prime whose flow figure is still to be judged
        self.flow_sum = self.flow_n = 0  # their flow figures' rises over the prime's (per mille), and how many
        self.zero_acc = None  # ZERO_AVG x the running average of the doses' zeros, 1/16 kPa (None: no dose yet)
        self.zero16 = 0
        self.table16 = 0  # the head table's highest clear flow pressure for this dose (a prime), 1/16 kPa; 0: none
        self.start(0, 0, 0)
        self.t0 = self.last = self.pos0 = 0

    def forget(self):
        # another head, or a new prime: its clear reference is measured again
        self.ref256 = self.ref_flow16 = 0
        self.base_mean256 = self.base_sum = self.base_n = 0
        self.suspect = self.flow_left = self.flow_sum = self.flow_n = 0

    def start(self, zero16, steps, rate, table16=0):
        # a dose of `steps` at `rate` steps/s begins; zero16: the sensor's reading at rest, 1/16 kPa; table16: a
        # prime's bound (S.head_prime_max16), 0 for a point. Its dispense's first read starts the clock.
        self.table16 = table16
        expected_ms = steps * 1000 // rate if rate else 0
        # rate (steps/s) x lag (us) in 1/16 of a V unit (8 steps): 16 x rate x lag / 8e6 (under 2^30 for any rate
        # below 10^5 steps/s and lag below 5 ms)
        self.lag16 = rate * self.lag_us // 500000 if rate < 100000 and self.lag_us < 5000 else 0
        self.half_v = steps >> 4 if MIN_MS <= expected_ms <= MAX_MS else 0  # half the dose, in V units
        if self.half_v:
            # the figures' zero: the sensor's offset averaged over the doses' zeros (ZERO_AVG: a 32-read zero
            # scatters sigma/5.7, 3-5 % of a 9-needle head's 3 kPa line at 50 uL/s - more than the line's own
            # reads over a dispense; the offset drifts over minutes, not points)
            self.zero_acc = zero16 * ZERO_AVG if self.zero_acc is None else self.zero_acc - self.zero_acc // ZERO_AVG + zero16
            self.zero16 = self.zero_acc // ZERO_AVG
        self.started = False
        self.calm_at = 0  # board time (us) from which reads are steady again (set by the first read)
        self.n1 = self.p1 = self.v1 = 0  # first half: steady reads, their kPa sum, their V sum (V: 8 steps a unit)
        self.n2 = self.p2 = self.v2 = 0

    @micropython.native  # every pass of a dispense
    def feed(self, kpa, pos, now_us):
        # one sensor read (raw kPa) and the plunger's position (steps) while dispensing
        if not self.half_v:
            return
        if not self.started:
            self.started = True
            self.t0 = self.last = self.calm_at = now_us
            self.pos0 = pos
            return
        dt = ticks_diff(now_us, self.last)
        self.last = now_us
        if dt <= 0 or ticks_diff(now_us, self.t0) < SKIP_US:
            return
        # Judged on samples, not on time: only a read of a steady pass counts, one sample each. A pass held
        # up (a journal write; on the simulated board a host that did not schedule its process) holds the
        # plunger back and its catch-up pushes a burst: those reads are left out, not weighed by how long
        # the pass took (which put the host's load into the figures: the false alarms under load).
        if dt > LATE_US:
            self.calm_at = ticks_add(now_us, CALM_US)
            return
        if ticks_diff(now_us, self.calm_at) < 0:
            return
        v = (pos - self.pos0 + 4) >> 3  # 8 steps a unit, rounded: the sums stay small ints (8 s of a 1 mL syringe
        # at 100 uL/s); truncated, every read's V was 3.5 steps short - the wheals' slope x that on every point's flow
        if v < self.half_v:
            self.n1 += 1
            self.p1 += kpa
            self.v1 += v
        else:
            self.n2 += 1
            self.p2 += kpa
            self.v2 += v

    def figures(self):
        # the dispense's mean256 and flow256 (1/256 kPa above the zero, on self: no allocation; flow 0 when too
        # few steady reads - a loaded CPU - gave it); False when not judged at all (too short, too long)
        n1, n2 = self.n1, self.n2
        if not self.half_v or n1 + n2 < MIN_W:
            return False
        zero = self.zero16 << 4
        self.mean256 = _mean(self.p1 + self.p2, n1 + n2, 8) - zero
        self.flow256 = 0
        if n1 >= MIN_READS and n2 >= MIN_READS:
            # the halves' mean volumes in 1/16 unit (whole units floored each by up to one: the wheals' slope x
            # that, up to 1 % of a 9-needle head's flow figure)
            c1 = _mean(self.v1, n1, 4)
            c2 = _mean(self.v2, n2, 4)
            if (c2 - c1) * 2 >= self.half_v << 4:  # halves apart as a steady dispense's are (no overflow below)
                m1 = _mean(self.p1, n1, 8) - zero
                m2 = _mean(self.p2, n2, 8) - zero
                # the line through the halves' means, at V = +lag x rate: the sensor's reading at V is the line of
                # lag_us before, its wheals smaller by rate x lag, so its line meets the flow pressure there, not at
                # V = 0 (on a 9-needle head's steep point, 1-2 % of the flow figure, low against the prime's flat
                # line, which the lag does not move)
                self.flow256 = m1 - ((m2 - m1) * (((c1 - self.lag16) << 10) // (c2 - c1)) >> 10)
                # the mean figure: the line at the dose's middle volume, not the mean of the reads that stayed
                # steady (where those fell - a loaded CPU leaves out more of one half - moved the plain mean)
                self.mean256 = m1 + ((m2 - m1) * ((((self.half_v << 4) - c1) << 10) // (c2 - c1)) >> 10)
        self.flow16 = self.flow256 >> 4
        self.mean16 = self.mean256 >> 4
        return True

    def judge(self, prime, needles, permille):
        # after a full dispense: the prime keeps its mean as the head's clear flow reference; a point
        # returns what rose (FLOW or MEAN; self.risen16 its 1/16 kPa) once confirmed, or 0
        if needles < 2 or not self.figures():
            return 0
        if prime:  # in the air: no wheal, every read is the line's flow pressure
            # its second half's (in the volume pushed): the first may still be taking up the pusher's play,
            # the line empty - unknown after boot or a fault's back-off (the stopper still while the plunger
            # counts steps: a board's first prime read up to 15 % low, its clean points' flow figures as
            # high, a false alarm)
            ref = _mean(self.p2, self.n2, 8) - (self.zero16 << 4) if self.n2 >= MIN_READS else self.mean256
            if self.table16 and ref > self.table16 << 4:
                # above what a clear head makes with the most viscous drug: a needle (or more) blocked already,
                # or a drug the table is not for - no reference to judge the points against
                self.forget()
                self.risen16 = ref >> 4
                return TABLE
            self.ref256 = ref if ref > 0 else 0
            self.ref_flow16 = self.ref256 >> 4
            self.base_mean256 = self.base_sum = self.base_n = 0
            self.suspect = self.flow_sum = self.flow_n = 0
            self.flow_left = FLOW_POINTS
            return 0
        if not self.base_n:  # the head's first full point starts the baseline
            self.base_sum = self.mean256 if self.mean256 > 0 else 1
            self.base_n = 1
            self.base_new = True  # in it already
        self.base_mean256 = self.base_sum // self.base_n
        mean = _rise(self.mean256, self.base_mean256)
        if self.flow_left:
            # the flow figure scatters more than the mean (an extrapolation: +-1.6-1.8 % a point against the prime on
            # the loaded simulated board, against a 9-needle head's 5.2-5.7 % threshold): judged on the first
            # FLOW_POINTS after the prime only, where no clean point exists for the mean to compare with, and
            # on their average (a needle blocked from the first point is in every one of them: the average's
            # scatter is 1/sqrt(2) of a point's; requiring each past the threshold missed 1 board in 3)
            self.flow_left -= 1
            if self.ref256 and self.flow256:
                self.flow_sum += _rise(self.flow256, self.ref256)
                self.flow_n += 1
            if not self.flow_left and self.flow_n >= FLOW_POINTS:
                flow = self.flow_sum // self.flow_n
                if flow > permille:
                    self.risen16 = self.ref_flow16 * (1000 + flow) // 1000  # the points' flow pressure
                    return FLOW
        if mean <= permille:
            self.suspect = 0
            if self.base_n < BASE_POINTS and not self.base_new:  # a clean point: into the baseline
                self.base_sum += self.mean256
                self.base_n += 1
            self.base_new = False
            return 0
        self.base_new = False
        self.suspect += 1
        # the mean past 1.5 x the threshold and IMMEDIATE_PERMILLE alarms at once (a 5-needle head's blocked
        # needle, +20..25 %); anything less once the next point confirms it. (The flow figure never on one
        # point: an extrapolation; on the average of the first FLOW_POINTS, above.)
        if self.suspect < 2 and (mean * 2 <= 3 * permille or mean <= IMMEDIATE_PERMILLE):
            return 0
        self.risen16 = self.mean16
        return MEAN


def _rise(figure, ref):
    # per mille above ref (both 1/256 kPa: under 2^30 / 1000 up to the occlusion pressure)
    return figure * 1000 // ref - 1000


def _mean(s, n, shift):
    # s / n in 1/2^shift, without s << shift outgrowing a small int
    q = s // n
    return (q << shift) + ((s - q * n) << shift) // n
