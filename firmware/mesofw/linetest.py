# The line test (LINE_TEST, PROTOCOL.md): the syringe's outlet capped, the plunger pushes one pressure step
# into the line and holds it. A capped line does not move after the step, so the reading's approach to it is
# the pressure sensor's own lag; the step's volume over its pressure is the stopper's (and barrel's) compliance;
# the hold's slow fall is the stopper's creep. A prime cannot tell these apart: its line empties through the
# needle in the same few ms as the sensor's lag, two first-order stages in series whose every reading is
# symmetric in them (compliance.py, MIN_TAU_DENSE_US), and creep gives back too little to read with the needle
# open (issue #20).
#
# Phases: take up the pusher's play until the line reads LINE_ONSET_KPA; rest; a small step at the stiffest
# compliance a stopper can have (never past LINE_MAX_KPA) sizes the measured step for ~LINE_STEP_KPA; that
# step, then a dense read (the lag, and the line's level as a line fitted over 10-40 ms: the creep drifts it);
# the hold (three blocks of 400 ms: the creep's share and time from the blocks' means); back off every step
# pushed. Integers only; the dense read blocks the loop for DENSE_US (the needle is not in anyone).
import array
from time import ticks_diff, ticks_us
from mesoprotocol import spec as S
from mesofw.compliance import MAX_PL_PER_KPA_MM2, MIN_PL_PER_KPA_MM2, ln_q12, prior_pl_per_kpa

IDLE = 0
TAKEUP = 1
REST = 2
SIZE = 3
HOLD = 4
BACK = 5

TAKEUP_STEPS_S = 1000  # a step a ms into the play: the onset is read within a few steps of the contact
ZERO_READS = 256  # the sensor's zero before anything moves (+-0.06 kPa at 1 kPa of noise)
LEVEL_READS = 64
REST_US = 30000  # after the onset (or the sizing step): > 6 of the slowest lag a board may have (1.5 ms)
SIZE_KPA = 10  # the sizing step's pressure on the stiffest line a stopper can have
READ_GAP_US = 50  # the dense read: a read at most every this often
FIT_FROM_US = 10000  # the line's level (a straight line: creep drifts it) fitted from here...
DENSE_US = 40000  # ...to here; the lag from the reads before FIT_FROM_US
DENSE_N = 256  # reads kept for the lag (FIT_FROM_US / READ_GAP_US, with room)
BUSY_MAX_US = 10000  # the driver's last batch is out within this (compliance.py)
MAX_LAG_US = 2000  # the slowest sensor lag a board may have (1.5 ms: compliance.MIN_TAU_DENSE_US), and a third
BLOCK_US = S.LINE_HOLD_MS * 1000 // 3
CREEP_MIN16 = 2  # block means closer than 1/8 kPa: no creep seen
LEAK_PERMILLE = 1000  # a fall past half the step: no stopper creeps that much, the cap leaks
LEAK_FALL16 = 8  # a hold falling 1/2 kPa a block without slowing: a leak, not creep


def command(dev, now_us):
    # LINE_TEST, past the device's state checks: the syringe in the clamp must be the configured one, nothing moving
    barrel = dev.board.syringe_barrel_um()
    if not S.syringe_fits(dev.syringe, barrel):
        return dev._nack(S.LINE_TEST, S.NACK_SYRINGE, 0, dev.syringe, barrel)
    if dev.dose.active():  # a stop's moves still running
        return dev._nack(S.LINE_TEST, S.NACK_BAD_STATE, 0, dev.state, 1 << S.STATE_CONFIGURED)
    if dev.line is None:
        dev.line = LineTest(dev.board, dev.plunger, getattr(dev.board, "plunger_busy", None))
    area = dev._area_mm2()
    dev.line_on = True
    dev.line.start(dev.metering.pl_step, area, prior_pl_per_kpa(area), dev.dose.slack, dev._fast_rate(), now_us)
    dev._set_state(S.STATE_PRIMING)
    return (S.ACK, (S.LINE_TEST, dev.state))


class LineTest:
    def __init__(self, board, axis, busy=None, clock=ticks_us):
        self.board = board
        self.axis = axis
        self.busy = busy or _never
        self.clock = clock  # the dense read's clock (a test's virtual one)
        self.reads = array.array("h", bytes(2 * DENSE_N))  # the dense read's first FIT_FROM_US, 1/16 kPa...
        self.times = array.array("H", bytes(2 * DENSE_N))  # ...and when, us after the split
        self.phase = IDLE
        self.clear()

    def clear(self):
        self.outcome = S.LINE_STOPPED
        self.lag_us = self.compliance_pl = self.creep_permille = self.creep_ms = self.step16 = self.peak_kpa = 0

    def _read16(self):
        kpa = self.board.pressure_kpa()
        if kpa - self.zero > self.peak_kpa:
            self.peak_kpa = kpa - self.zero
        return (kpa << 4) - self.zero16

    def _level16(self, reads):
        total = 0
        for _ in range(reads):
            total += self._read16()
        return total // reads

    def start(self, step_pl, area_mm2, prior_pl, slack_steps, fast_rate, now_us):
        # step_pl: the syringe's volume per plunger step; prior_pl: its stopper-area compliance prior;
        # slack_steps: how far the pusher may stand off the stopper
        self.clear()
        self.step_pl, self.area_mm2, self.prior_pl, self.fast_rate = step_pl, area_mm2, prior_pl, fast_rate
        self.board.motors(True)
        self.zero = self.zero16 = 0
        total = 0
        for _ in range(ZERO_READS):
            total += self.board.pressure_kpa()
        self.zero16 = (total << 4) // ZERO_READS
        self.zero = self.zero16 >> 4
        self.origin = self.axis.pos
        # the pusher stands at most slack_steps off the stopper (the device's own suck-back, or a new syringe's
        # play) on a board within its declared play; half as much again for one whose lead screw has worn past it
        # (the sim's 200 um case); then room for the onset on the softest stopper. An open outlet gets what the
        # stopper moves within that reach pushed out before OPEN (and drawn back with the rest)
        reach = slack_steps + slack_steps // 2 + S.LINE_ONSET_KPA * area_mm2 * MAX_PL_PER_KPA_MM2 // step_pl + 1
        self.axis.move_to(self.origin + reach, TAKEUP_STEPS_S, now_us)
        self.phase = TAKEUP

    def report(self, dev):
        # the plunger is back where the test began: the figures to the host, and to the metering if it passed
        dev.line_on = False
        if self.outcome == S.LINE_OK:
            if self.lag_us:  # the sensor's, for every figure read through it
                dev.probe.measured_lag(self.lag_us)
                dev.needles.lag_us = self.lag_us
            dev.compliance_pl = self.compliance_pl
            dev.line_syringe = dev.syringe
            dev.dose.creep.set(self.creep_permille, self.creep_ms, self.compliance_pl)
        dev.emit(S.LINE_RESULT, (self.outcome, dev.syringe, min(self.lag_us, 0xFFFF), self.compliance_pl,
                                 min(self.creep_permille, 0xFFFF), min(self.creep_ms, 0xFFFF), self.step16, self.peak_kpa))
        if dev.state == S.STATE_PRIMING:
            dev._set_state(S.STATE_CONFIGURED)

    def stop(self, now_us):
        # an E-stop, ABORT or alarm: back off every step pushed (the line's pressure released); STOPPED
        if self.phase and self.phase != BACK:
            self.clear()
            self._back(now_us)

    def _back(self, now_us):
        self.axis.move_to(self.origin, self.fast_rate, now_us)
        self.phase = BACK

    def tick(self, now_us):
        # every control pass while a test runs; True once it has ended (the plunger back where it began)
        phase = self.phase
        axis = self.axis
        axis.tick(now_us)
        if phase == BACK:
            if axis.moving() or self.busy():
                return False
            self.board.motors(False)
            self.phase = IDLE
            return True
        r16 = self._read16()
        if r16 > S.LINE_MAX_KPA << 4 and axis.target > axis.pos:
            axis.stop()  # never further: whatever the phase
        if phase == TAKEUP:
            if r16 >= S.LINE_ONSET_KPA << 4:
                axis.stop()
                self.phase, self.t0 = REST, now_us
            elif not axis.moving():
                self.outcome = S.LINE_OPEN  # the whole reach pushed and the line never rose: nothing caps it
                self._back(now_us)
        elif phase == REST or phase == SIZE:
            if axis.moving() or self.busy() or ticks_diff(now_us, self.t0) < REST_US:
                return False
            level = self._level16(LEVEL_READS)
            if phase == REST:
                if level < S.LINE_ONSET_KPA << 3:
                    # the onset was a flow's pressure (a needle on, no cap), gone once the pusher stopped: a capped
                    # line holds what it was given, less a stopper's creep
                    self.outcome = S.LINE_OPEN
                    self._back(now_us)
                    return False
                self.base16 = level
                # a step of SIZE_KPA on the stiffest line a stopper can have: less on any real one
                self.size_steps = max(1, SIZE_KPA * self.area_mm2 * MIN_PL_PER_KPA_MM2 // self.step_pl)
                axis.move_to(axis.pos + self.size_steps, self.fast_rate, now_us)
                self.phase, self.t0 = SIZE, now_us
                return False
            rise = level - self.base16
            c = self.size_steps * self.step_pl * 16 // rise if rise > 8 else self.prior_pl * 4
            room = (S.LINE_MAX_KPA << 4) - 320 - level  # 20 kPa short of the ceiling (its reads are noisy)
            kpa16 = S.LINE_STEP_KPA << 4
            steps = (kpa16 if kpa16 < room else room) * c // (self.step_pl * 16)
            if steps < 1:
                self.outcome = S.LINE_LEAK  # no room under the ceiling: a line this stiff is not a stopper
                self._back(now_us)
                return False
            self.base16 = level
            self.steps = steps
            if not self._dense(now_us):
                self._back(now_us)
                return False
            self.phase, self.t0 = HOLD, now_us
            self.blocks = [0, 0, 0]  # kPa16 x (us / 16) per block, from the dense read's end
            self.block_us = [0, 0, 0]
            self.last_us = now_us
        elif phase == HOLD:
            dt = ticks_diff(now_us, self.last_us)
            self.last_us = now_us
            i = ticks_diff(now_us, self.t0) // BLOCK_US
            if i < 3:
                self.blocks[i] += r16 * (dt >> 4)
                self.block_us[i] += dt >> 4
                return False
            self._creep()
            self._back(now_us)
        return False

    def _dense(self, now_us):
        # The measured step, pushed from here while the line is read densely (reads every READ_GAP_US): from
        # the moment the driver has let out its last step (the split) the capped line stands still but for the
        # creep, and the reading closes on it as exp(-t / lag). The reads of FIT_FROM_US after the split are
        # kept; the rest, to DENSE_US, fitted as a straight line (the line's level, drifting with the creep)
        axis = self.axis
        clock = self.clock
        halt = self.board.estop
        axis.move_to(axis.pos + self.steps, self.fast_rate, now_us)
        start = last = clock()
        pushing = True
        n = 0
        s = st = stt = sr = str_ = 0  # the level's least squares, t in units of 16 us
        while True:
            now = clock()
            if ticks_diff(now, last) < READ_GAP_US:
                continue
            last = now
            if halt():
                return False
            r = self._read16()  # (every read, the push's too: the peak)
            if pushing:
                if r > S.LINE_MAX_KPA << 4:
                    axis.stop()  # the sizing step misjudged the line: no further
                axis.tick(now)
                if axis.moving() or (self.busy() and ticks_diff(now, start) < BUSY_MAX_US):
                    continue
                pushing = False
                start = now
            t = ticks_diff(now, start)
            if t < FIT_FROM_US:
                if n < DENSE_N:
                    self.reads[n] = r
                    self.times[n] = t
                    n += 1
                continue
            if t >= DENSE_US:
                break
            u = t >> 4
            s += 1
            st += u
            stt += u * u
            sr += r
            str_ += u * r
        den = s * stt - st * st
        if not den:
            return False
        self.k16 = ((s * str_ - st * sr) << 16) // den  # the level: b0 + k u (u = t / 16 us), k in 1/65536
        b0 = (sr * stt - st * str_) // den
        self.step16 = b0 - self.base16
        c = self.steps * self.step_pl * 16 // self.step16 if self.step16 > 0 else 0
        if not 0 < c <= self.area_mm2 * MAX_PL_PER_KPA_MM2:
            self.outcome = S.LINE_OPEN  # the step not held: no stopper is that soft, the outlet lets it out
            self.step16 = 0
            return False
        self.compliance_pl = c
        self.level16 = b0
        # the lag: the reading's deficit under the level falls as D e^(-t / lag) + e (e: the level's own error,
        # ~0.05 kPa, which a centroid over 7 lags turns into 30 %). Four blocks of about a lag (from the
        # half-life) have means e + A q^k, q = e^(-block / lag): (m1 - m3) / (m0 - m2) = q whatever e is
        d0 = self._deficit(0, b0) + self._deficit(1, b0)
        if d0 < 4 * 16:
            return True  # the reading kept up with the step (or the noise hid it): no lag figure
        i = 1
        while i < n - 1 and self._deficit(i, b0) + self._deficit(i + 1, b0) > d0 // 2:
            i += 1
        block = self.times[i] * 1477 // 1024  # the half-life / ln 2
        if block < 2 * READ_GAP_US:
            block = 2 * READ_GAP_US
        if block > FIT_FROM_US // 4:
            block = FIT_FROM_US // 4
        m = [0, 0, 0, 0]
        c = [0, 0, 0, 0]
        for i in range(n):
            k = self.times[i] // block
            if k > 3:
                break
            m[k] += self._deficit(i, b0) << 4
            c[k] += 1
        if not c[3]:
            return True
        m = [m[k] // c[k] for k in range(4)]
        near = m[0] - m[2]
        far = m[1] - m[3]
        if not m[0] - m[1] > m[1] - m[2] > m[2] - m[3] > 0:
            return True  # not an exponential's fall (the noise, or a line still moving): no lag figure
        lag = block * 4096 // ln_q12(near, far)
        self.lag_us = lag if lag <= MAX_LAG_US else 0  # past any board's sensor: not a lag (the emulated Pico read 2.7x)
        return True

    def _deficit(self, i, b0):
        # the i-th dense read under the line's level then, 1/16 kPa
        return b0 + ((self.k16 * (self.times[i] >> 4)) >> 16) - self.reads[i]  # small ints: < 10 ms of a slope

    def _creep(self):
        # The hold's three block means (1/256 kPa) fall as P + A q^k: q = e^(-block / t) = (m1 - m2) / (m0 - m1) and
        # the relaxed level P = m0 - (m0 - m1) / (1 - q). Capped, the creep's share s (of the compliance) takes
        # the step's level down to level / (1 + s), and the line relaxes with the creep's own time / (1 + s)
        m = [(self.blocks[i] << 4) // self.block_us[i] for i in range(3)]
        d1, d2 = m[0] - m[1], m[1] - m[2]
        self.outcome = S.LINE_OK
        if d1 < CREEP_MIN16 << 4:
            return  # no creep seen (a stiff stopper, or one slower than the hold)
        if d2 >= d1:  # no exponential's slowing: a steady fall (a leak), or creep too small to show its shape
            if d1 >= LEAK_FALL16 << 4:
                self.outcome = S.LINE_LEAK
            return
        relaxed = m[0] - d1 * d1 // (d1 - d2) if d2 > 0 else m[1]  # (d2 <= 0: relaxed within the first block)
        share = ((self.level16 << 4) - relaxed) * 1000 // relaxed if relaxed > 0 else LEAK_PERMILLE
        if share >= LEAK_PERMILLE:
            self.outcome = S.LINE_LEAK
            return
        self.creep_permille = share
        if d2 > 0:
            self.creep_ms = BLOCK_US * 4096 // ln_q12(d1, d2) * (1000 + share) // 1000000

def _never():
    return False
