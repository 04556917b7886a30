# A blocked needle of a multi-needle head, judged from the one line pressure sensor.
#
# The head's n needles share one line: their conductances add, so one needle fully blocked lowers the
# line's conductance to (n-1)/n of its own and raises every pressure the flow makes by n/(n-1): 25 % on
# a 5-needle head, 12.5 % on a 9-needle one (less when the blocked needle is the lot's narrowest:
# S.head_block_rise_permille). While a point dispenses at constant flow q the line reads
#     p(t) = q / G  +  B(t)          (G: the head's conductance; B: the wheals' back-pressure, growing
#                                     with the volume each needle has put in, so ~linear in t)
# Two figures per dispense, from time-weighted sums (no allocation, small ints):
#   flow   the line at t = 0, where the wheals are still empty: q / G alone, whatever the tissue.
#          Extrapolated through the centroids of the dispense's two halves (Wald's line: no products
#          of sums, which would outgrow a small int). The prime, in the air, at the program's flow,
#          measures the head clear: a point whose flow pressure rises past the threshold above the
#          prime's has a needle blocked since - from the first point on.
#   mean   the whole dispense's mean (flow + back-pressure): averaged over every sample it is the
#          quieter figure, but the tissue sets it, so it is judged only against this head's first
#          full cycle (a needle blocking mid-session).
# Threshold: half the least rise one blocked needle makes (S.head_block_permille), so a miss and a false
# alarm are equally far from it; what decides both is the figures' noise against that margin (the
# sensor's noise over the samples, the zero's, the ADC quantum): PROTOCOL.md "Blocked needles".
# A needle blocked before the prime is not seen: the prime then measures the blocked head as its
# reference, and against the head table alone it reads as a drug 1/(n-1) more viscous (drugs span 2x).
from time import ticks_diff

SKIP_US = 4000  # the sensor's lag and the line's compliance rising: not yet the dose's flow pressure
MIN_MS = 40  # a dispense shorter than this (a nappage shot) is not judged: too few samples
MAX_MS = 8000  # nor a longer one: its sums would outgrow a small int (heap allocation in the loop)
FLOW_RESOLVED16 = 12  # the flow figure is judged only where the threshold is this far above the prime's
# (1/16 kPa: 0.75 kPa): the figure varies +-5 % between clean points and reads up to 10 % under the prime
# (journal writes pausing the plunger, the stopper's creep), a whole sensor quantum (1 kPa) at 9 needles
MAX_DT_US = 4000  # a pass longer than this (a journal checkpoint's flash write) weighs no more than this
FLOW = 1  # judge(): the flow figure rose past the prime's (a needle blocked since the prime)
MEAN = 2  # judge(): the mean rose past the head's first point's (a needle blocked mid-session)


class Watch:
    def __init__(self):
        self.ref_flow16 = 0  # the prime's flow pressure, 1/16 kPa (0: none: nothing to judge against)...
        self.ref_ul_s = 1  # ...at its flow (uL/s); a point at another flow expects it in proportion (Poiseuille)
        self.base_mean16 = 0  # this head's first full cycle's mean pressure, 1/16 kPa (0: none yet)
        self.mean16 = self.flow16 = self.risen16 = 0  # the last dispense's figures; what rose (judge)
        self.start(0, 0, 0)
        self.t0 = self.last = 0

    def forget(self):
        # another head, or a new prime: its clear reference is measured again
        self.ref_flow16 = 0
        self.base_mean16 = 0

    def start(self, zero16, volume_nl, flow_nl_s):
        # a dose begins; zero16: the sensor's reading at rest, 1/16 kPa. Its dispense's first read starts the clock.
        expected_ms = volume_nl * 1000 // flow_nl_s if flow_nl_s else 0
        self.half_ms = expected_ms // 2 if MIN_MS <= expected_ms <= MAX_MS else 0
        self.ul_s = flow_nl_s // 1000 if flow_nl_s >= 1000 else 1
        self.zero16 = zero16
        self.started = False
        self.w1 = self.s1 = self.k1 = 0  # first half: weight (64 us units), kPa x weight, ms x weight
        self.w2 = self.s2 = self.k2 = 0

    def feed(self, kpa, now_us):
        # one sensor read (raw kPa) while dispensing
        if not self.half_ms:
            return
        if not self.started:
            self.started = True
            self.t0 = self.last = now_us
            return
        dt = ticks_diff(now_us, self.last)
        self.last = now_us
        t = ticks_diff(now_us, self.t0)
        if t < SKIP_US or dt <= 0:
            return
        w = (dt if dt < MAX_DT_US else MAX_DT_US) >> 6
        t //= 1000
        if t < self.half_ms:
            self.w1 += w
            self.s1 += kpa * w
            self.k1 += t * w
        elif t <= MAX_MS:
            self.w2 += w
            self.s2 += kpa * w
            self.k2 += t * w

    def figures(self):
        # the dispense's mean16 and flow16 (1/16 kPa above the zero, kept on self: no allocation);
        # False when it was not judged (too short, too long, a half without samples)
        w1, w2 = self.w1, self.w2
        if not self.half_ms or w1 < 64 or w2 < 64:  # under ~4 ms a half: not a dispense to judge
            return False
        c1 = self.k1 // w1
        c2 = self.k2 // w2
        if c2 <= c1:
            return False
        m1 = _mean16(self.s1, w1) - self.zero16
        m2 = _mean16(self.s2, w2) - self.zero16
        self.mean16 = _mean16(self.s1 + self.s2, w1 + w2) - self.zero16
        self.flow16 = m1 - (m2 - m1) * c1 // (c2 - c1)
        return True

    def judge(self, prime, needles, permille):
        # after a full dispense: the prime keeps its flow figure as the head's clear reference; a point
        # returns what rose past the threshold (FLOW or MEAN; self.risen16 its 1/16 kPa) or 0
        if needles < 2 or not self.figures():
            return 0
        mean, flow = self.mean16, self.flow16
        if prime:
            self.ref_flow16 = flow if flow > 0 else 0
            self.ref_ul_s = self.ul_s
            self.base_mean16 = 0
            return 0
        expected = self.ref_flow16 * self.ul_s // self.ref_ul_s
        if expected * permille >= FLOW_RESOLVED16 * 1000 and flow * 1000 > expected * (1000 + permille):
            self.risen16 = flow
            return FLOW
        if not self.base_mean16:
            self.base_mean16 = mean if mean > 0 else 1
        elif mean * 1000 > self.base_mean16 * (1000 + permille):
            self.risen16 = mean
            return MEAN
        return 0


def _mean16(s, w):
    # s / w in 1/16, without s << 4 outgrowing a small int
    q = s // w
    return (q << 4) + ((s - q * w) << 4) // w
