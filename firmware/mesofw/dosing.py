# Dosing maths and motion: volume <-> plunger microsteps in integer maths, and the dose
# sequence (take-up, needle in, dispense, settle, top-up, needle out, suck-back) stepped
# from absolute deadlines.
import micropython
from time import ticks_diff, ticks_us
from mesoprotocol import spec
from mesofw.compliance import Creep

# Sequence phases
IDLE = 0
TAKEUP = 1  # plunger forward through the slack left by the last suck-back / back-off (not counted)
INSERT = 2
DISPENSE = 3  # the counted steps
SETTLE = 4  # plunger still, needle in: the compliant stopper's stored volume flows out at depth
TOPUP = 5  # once: push what the line still holds at the wheal's back-pressure (it leaks away on withdrawal)
# (a nappage shot's settle is too short to see its wheal's pressure: it tops up halfway out, RETRACT)
RELIEVE = 6  # plunger backing off to release line pressure (occlusion)
RETRACT = 7
SUCKBACK = 8  # anti-drip: plunger back by the slack allowance, needle out (not counted)

SETTLE_BLOCK_US = 4000  # the settle judges the mean pressure over blocks of this long (the sensor is noisy)...
SETTLE_DROP_KPA = 1  # ...settled when the mean falls by less than this from one block to the next...
SETTLE_DONE_KPA = 5  # ...or is down to this (above the line's zero, taken as each point starts)
DOSE_TOL_PL_PER_NL = 4  # a dose's own rounding within 0.4 % of it where the step allows (Metering.steps_for_dose)
SHOT_TOPUP_KPA = 1  # a shot's wheal pressure worth a top-up (1 kPa holds ~1.5 nL in a 3 mL syringe)
PROBE_DONE_KPA = 2  # a prime measuring the compliance follows the line further down (less tail to extrapolate)
ZERO_READS = 32  # pressure reads averaged for the line's zero (its noise: 1/sqrt(32) of the sensor's; needles.py)
PRIME_ZERO_READS = 256  # ...and a prime's, the base its compliance probe reads the tail from: 32 reads' mean (+-0.1 kPa
# at 0.56 kPa of noise) under a 6 ms tail read for 30 ms moved its first moment, and the compliance, by up to
# +-20 % (issue #20: a BD 10 mL line's estimates +2..+18 %; its points topped up by that). Once a prime, ~5 ms.
WHEAL_READS = 8  # ... and for a shot's wheal pressure (read in one pass, mid-retraction)


class Metering:
    # nL -> steps with a carried remainder, so rounding never accumulates over points.

    def __init__(self, pl_step):
        self.pl_step = pl_step
        self.rem_pl = 0
        self.dose_err_pl = 0  # the last dose's steps less its volume (steps_for_dose), for its shot's top-up

    def steps_for(self, volume_nl):
        want = volume_nl * 1000 + self.rem_pl
        steps = (want + self.pl_step // 2) // self.pl_step
        self.rem_pl = want - steps * self.pl_step
        return steps

    def steps_for_dose(self, volume_nl):
        # A dose's steps: the carried remainder spent as steps_for() does, unless that puts this dose further
        # from its own volume than DOSE_TOL_PL_PER_NL (0.4 %) - or half a step, when a step is coarser - and
        # the other rounding keeps it within: each dose within its tolerance first, the session total exact
        # only while that allows. (2 uL shots on a BD 3 mL are 108.7 steps of 18.4 nL: spending the remainder
        # made every third shot 108 steps, -0.64 %; now each is 109, +0.28 %, the session +0.28 % - what the
        # records say, as they count steps.) A remainder that cannot be spent is dropped past half a step.
        step = self.pl_step
        half = step // 2
        vol_pl = volume_nl * 1000
        tol = volume_nl * DOSE_TOL_PL_PER_NL
        if tol < half:
            tol = half
        want = vol_pl + self.rem_pl
        steps = (want + half) // step
        err = steps * step - vol_pl
        if err > tol and (steps - 1) * step >= vol_pl - tol:
            steps -= 1
        elif err < -tol and (steps + 1) * step <= vol_pl + tol:
            steps += 1
        rem = want - steps * step
        self.rem_pl = rem if -half <= rem <= half else (half if rem > 0 else -half)
        self.dose_err_pl = steps * step - vol_pl
        return steps

    def steps_topup(self, volume_nl):
        # A nappage shot's top-up (the wheal's stored volume, pushed on the way out) rounded together with the
        # shot's dose: the nearest whole steps to that volume less what the dose's rounding already put over
        # (or under) it, never negative; the session's carried remainder left alone (spent here, it took or
        # gave a whole step - 0.87 % of a 2 uL shot on a BD 3 mL - every ~26 shots). Rounded apart, dose and
        # top-up each erred up to half a step the same way: a shot was off by up to a whole step; together,
        # by half a step (or the dose's own tolerance, where the top-up cannot take back its excess)
        want = volume_nl * 1000 - self.dose_err_pl
        if want <= 0:
            return 0
        return (want + self.pl_step // 2) // self.pl_step

    def steps_for_relief(self, volume_nl):
        # steps for a back-off volume; leaves the carried remainder alone
        return volume_nl * 1000 // self.pl_step

    def nl(self, steps):
        return (steps * self.pl_step + 500) // 1000


MAX_GAP_US = 2000  # Axis.MAX_GAP_US, also a module global: Axis.tick reads it every pass (one lookup, not two)


class Axis:
    # One stepper axis: moves to a target at a rate, issuing the steps due by now.
    # The move's clock advances by at most MAX_GAP_US per tick: after the loop
    # stalls, the move lags instead of catching up in a burst, so the plunger is
    # never driven faster than commanded (a burst would stall a real motor and
    # spike line pressure).

    MAX_GAP_US = MAX_GAP_US

    def __init__(self, step_fn, rate_steps_s, paced_gap_us=0):
        self.step_fn = step_fn
        self.rate = rate_steps_s
        # paced_gap_us: a driver that paces each batch over the time it stands for (the Pico's PIO, step_fn(n,
        # span_us)) takes a late pass's steps at the commanded rate, not as a burst, so the move's clock may
        # follow gaps up to this long (a loop at 2-6 ms passes no longer slows the flow); 0: MAX_GAP_US, step_fn(n)
        self.paced = paced_gap_us > 0
        self.max_gap_us = paced_gap_us if paced_gap_us > 0 else MAX_GAP_US
        self.span_us = 0  # the move's clock since the last batch: what the next batch stands for (paced)
        # how far this axis's moves ran behind their own clock since boot, ms: the time the loop's late passes
        # took from them (each gap past MAX_GAP_US). A point lasts that much longer than its point time
        # (Device's TRIGGER_STUCK hold counts it; STATUS_REPLY lag_ms says it)
        self.lag_ms = 0
        self.lag_us = 0  # the part under a millisecond
        self.pos = 0
        self.start_pos = 0
        self.target = 0
        self.elapsed_us = 0
        self.last_us = 0

    def move_to(self, target, rate, now_us):
        self.start_pos = self.pos
        self.target = target
        self.rate = rate
        self.elapsed_us = 1000  # the first tick already issues a millisecond's steps
        self.span_us = 1000
        self.last_us = now_us

    def stop(self):
        self.target = self.pos

    @micropython.native  # every pass
    def moving(self):
        return self.pos != self.target

    @micropython.native  # every pass an axis moves (machine code: a pass on an RP2040 is mostly dispatch)
    def tick(self, now_us):
        if self.pos == self.target:
            return
        gap = ticks_diff(now_us, self.last_us)
        self.last_us = now_us
        if gap < 0:  # a clock that stepped back (the simulated board's did, under load): the move waits, never reverses
            gap = 0
        most = self.max_gap_us
        if gap > most:
            lag = self.lag_us + gap - most
            self.lag_ms += lag // 1000
            self.lag_us = lag % 1000
            gap = most
        self.elapsed_us += gap
        self.span_us += gap
        due = (self.elapsed_us // 1000) * self.rate // 1000  # small ints on a 32-bit MCU
        dist = self.target - self.start_pos
        if dist > 0:
            n = self.start_pos + min(due, dist) - self.pos
        else:
            n = self.start_pos - min(due, -dist) - self.pos
        if n:
            if self.paced:
                span = self.span_us
                self.step_fn(n, span if span < 0x8000 else 0x7FFF)
            else:
                self.step_fn(n)
            self.span_us = 0
            self.pos += n


class Sequence:
    # One point, shot or prime: take up slack, needle to depth, dispense, settle,
    # needle home, suck back. interrupt() stops the plunger at once and sends the
    # needle home; relieve() stops it and backs it off first, until end_relief().
    # `slack` is how far the pusher was drawn back since it last pushed: returning
    # exactly that far before counting makes backlash and stopper breakaway cancel
    # out, whatever their true size (a play of any width up to the suck-back).

    def __init__(self, motors, pressure, topup_steps, plunger, needle, needle_steps_per_mm, needle_rate,
                 plunger_busy=None):
        self.motors = motors  # motors(on): drivers are powered only while a sequence runs
        self.pressure = pressure  # pressure() -> kPa
        # plunger_busy() -> True while the driver still lets out the last batch of steps: a line judged
        # before then is still being pushed (a board without the query lets steps out within the call)
        self.plunger_busy = plunger_busy or _never
        self.zero_kpa = 0  # the sensor's reading at rest (its offset), taken as a point or prime starts...
        self.zero16 = 0  # ...and in 1/16 kPa (the blocked-needle watch's zero: a whole kPa is 1/3 of a flow pressure)
        self.probe = None  # a compliance.Probe fed while one runs (the prime)
        self.creep = Creep()  # the stopper's creep, once a line test measured it (followed from the reads of every dose)
        self.needle_play = 0  # the depth axis's lost motion, steps (measured at boot: home_needle)
        self.tip = 0  # where the needle tip is, steps: within needle_play behind the carriage (needle.pos)
        self.block_sum = 0  # the settle's pressure samples in this block (kPa x us)
        self.block_us = 0
        self.last_block = -1  # the previous block's mean (kPa; -1: none yet)
        self.pushed = False  # the settle has seen the plunger's last batch out
        self.topup_steps = topup_steps  # topup_steps(kPa, carry=True) -> steps that replace the volume stored at kPa
        self.plunger = plunger
        self.needle = needle
        self.needle_steps_per_mm = needle_steps_per_mm
        self.needle_rate = needle_rate
        self.phase = IDLE
        self.depth_steps = 0
        self.steps = 0
        self.rate = 0
        self.fast_rate = 1  # take-up and suck-back
        self.suckback = 0  # steps drawn back after this sequence (0: none, e.g. mid-nappage)
        self.settle_ms = 0
        self.slack = 0
        self.plunger_start = 0
        self.phase_start_us = 0
        self.sample_us = 0
        self.last_kpa = 0
        self.stop_kpa = 0  # pressure held in the line when the dose ended (plateau or occlusion)
        self.interrupted = False
        self.takeup_only = False
        self.topped = False
        self.point = True
        self.dispensed_steps = 0  # valid once dispense_done
        self.depth_reached_um = 0  # needle depth while dispensing (or when interrupted)
        self.dispense_done = False  # set once when the plunger stops; cleared by the reader
        self.shot_topup_steps = 0  # a shot's top-up on its way out (after its record: _shot_topup)

    def start(self, depth_um, steps, rate, fast_rate, suckback, settle_ms, topup, now_us):
        self.depth_steps = depth_um * self.needle_steps_per_mm // 1000
        self.steps = steps
        self.rate = rate
        self.fast_rate = fast_rate
        self.suckback = suckback
        self.settle_ms = settle_ms
        self.interrupted = False
        self.dispense_done = False
        self.dispensed_steps = 0
        self.shot_topup_steps = 0
        self.stop_kpa = 0
        self.takeup_only = False
        self.point = topup  # a point (test dose, prime), not a nappage shot
        self.topped = self.probe is not None  # a prime makes no wheal
        if topup:  # a point starts from a relieved line (suck-back): what the sensor reads now is its zero
            self.zero_kpa = self._zero(ZERO_READS if self.probe is None else PRIME_ZERO_READS)
        self.motors(True)
        self.phase = TAKEUP
        self.plunger_start = self.plunger.pos
        self.plunger.move_to(self.plunger.pos + self.slack, fast_rate, now_us)

    def take_up(self, fast_rate, now_us):
        # a lone take-up of the slack (before a nappage burst, so the first shot is on time)
        if self.phase == IDLE and self.slack:
            self.motors(True)
            self.takeup_only = True
            self.phase = TAKEUP
            self.plunger_start = self.plunger.pos
            self.plunger.move_to(self.plunger.pos + self.slack, fast_rate, now_us)

    def suck_back(self, steps, fast_rate, now_us):
        # a lone anti-drip retraction (the end of a nappage burst)
        if self.phase == IDLE and steps:
            self.motors(True)
            self.fast_rate = fast_rate
            self.suckback = steps
            self._suck_back(now_us)

    def _sum(self, reads):
        total = 0
        for _ in range(reads):
            total += self.pressure()
        return total

    def _zero(self, reads):
        total = self._sum(reads)
        self.zero16 = (total << 4) // reads
        return (total + reads // 2) // reads

    def _shot_topup(self, now_us):
        # Halfway out of the skin a shot's line has long settled at its wheal's pressure (the settle is
        # SHOT_SETTLE_MS, the line's time constant a few ms): what it holds there would leave into the
        # air as the tip comes out (~0.5 % of a 2 uL shot in a 3 mL syringe, issue #20). Pushed now, it
        # drains into the dermis over the rest of the retraction. Nothing is recorded for it: the volume
        # it replaces was never subtracted from the shot's record.
        self.topped = True
        kpa = (self._sum(WHEAL_READS) + WHEAL_READS // 2) // WHEAL_READS - self.zero_kpa  # a few reads' mean, above the zero
        # rounded with its dose (steps_topup), the creep's take with it
        topup = self.topup_steps(kpa if kpa >= SHOT_TOPUP_KPA else 0, False)
        self.shot_topup_steps = topup  # out of the syringe all the same (the device counts it in)
        if topup > 0:
            self.plunger.move_to(self.plunger.pos + topup, self.rate, now_us)

    @micropython.native  # every pass
    def line_kpa(self):
        # line pressure above the sensor's zero
        kpa = self.pressure() - self.zero_kpa
        return kpa if kpa > 0 else 0

    @micropython.native  # every pass
    def active(self):
        return self.phase != IDLE

    def needle_in(self):
        return self.tip > 0

    def depth_um(self):
        return self.tip * 1000 // self.needle_steps_per_mm

    @micropython.native  # every pass
    def _follow_tip(self):
        # the tip trails the carriage going in by the play and comes back with it (integers: per tick)
        pos = self.needle.pos
        if pos < self.tip:
            self.tip = pos
        elif pos - self.needle_play > self.tip:
            self.tip = pos - self.needle_play

    def interrupt(self, now_us):
        phase = self.phase
        if phase == RETRACT:
            self.plunger.stop()  # a shot's top-up on its way out
        if phase == IDLE or phase >= RETRACT:
            return
        if phase == RELIEVE:
            self.end_relief(now_us)
            return
        if self.takeup_only:  # no dose was under way: stop where we are
            self.plunger.stop()
            self.slack -= self.plunger.pos - self.plunger_start
            self._finish()
            return
        self.interrupted = True
        self.plunger.stop()
        if phase == TAKEUP:
            self.slack -= self.plunger.pos - self.plunger_start
        if phase <= INSERT:
            self.plunger_start = self.plunger.pos  # nothing dispensed yet
        self._end_dispense()
        self._retract(now_us)

    def relieve(self, max_steps, now_us):
        # Stop and back the plunger off by up to max_steps; the caller ends it
        # with end_relief() once the line pressure is down.
        if self.phase != DISPENSE:
            self.interrupt(now_us)
            return
        self.interrupted = True
        self.stop_kpa = self.line_kpa()
        self.dispensed_steps = self.plunger.pos - self.plunger_start
        self.phase = RELIEVE
        self.plunger.stop()
        self.plunger_start = self.plunger.pos
        self.plunger.move_to(self.plunger.pos - max_steps, self.fast_rate, now_us)

    def end_relief(self, now_us):
        if self.phase == RELIEVE:
            self.plunger.stop()
            self.slack += self.plunger_start - self.plunger.pos
            self.depth_reached_um = self.depth_um()
            self.dispense_done = True
            self._retract(now_us)

    def _end_dispense(self):
        self.dispensed_steps = self.plunger.pos - self.plunger_start
        self.depth_reached_um = self.depth_um()
        self.dispense_done = True

    def _retract(self, now_us):
        self.phase = RETRACT
        self.needle.move_to(0, self.needle_rate, now_us)

    def _suck_back(self, now_us):
        self.phase = SUCKBACK
        self.plunger_start = self.plunger.pos
        self.plunger.move_to(self.plunger.pos - self.suckback, self.fast_rate, now_us)

    @micropython.native  # every pass
    def tick(self, now_us):
        # Returns True on the tick the sequence finishes.
        phase = self.phase
        if phase == IDLE:
            return False
        # an axis at its target is not called (on an RP2040 a call is ~25 us of a 1 ms pass): the same as
        # Axis.tick's first test; the tip follows a needle that moved (_follow_tip does nothing otherwise)
        needle = self.needle
        if needle.pos != needle.target:
            needle.tick(now_us)
            self._follow_tip()
        plunger = self.plunger
        if plunger.pos != plunger.target:
            plunger.tick(now_us)
        probe = self.probe
        if probe is not None and (phase == DISPENSE or phase == SETTLE):
            probe.feed(self.line_kpa(), now_us, phase == SETTLE and self.pushed)
        if phase == TAKEUP and plunger.pos == plunger.target:  # (not moving(), without its call)
            self.slack = 0
            if self.takeup_only:
                return self._finish()
            self.phase = INSERT
            # going in from home the carriage first takes up the axis's play
            self.needle.move_to(self.depth_steps + (self.needle_play if self.depth_steps else 0), self.needle_rate,
                                now_us)
        elif phase == INSERT and needle.pos == needle.target:
            self.phase = DISPENSE
            self.plunger_start = self.plunger.pos
            self.creep.begin(now_us)  # (what it gave back before, the line at rest, left the needle before the dose)
            self.plunger.move_to(self.plunger.pos + self.steps, self.rate, now_us)
        elif (phase == DISPENSE or phase == TOPUP) and plunger.pos == plunger.target:
            self.phase = SETTLE
            self.phase_start_us = self.sample_us = now_us
            self.pushed = False
            self.last_block = -1
            self.block_sum = self.block_us = 0
        elif phase == SETTLE:
            kpa = self.line_kpa()
            if self.creep.gain:
                self.creep.follow(kpa, now_us)
            waited_ms = ticks_diff(now_us, self.phase_start_us) // 1000
            if probe is not None and not probe.dense:
                # a prime's line read densely from here, the driver's last batch and the discharge, whatever
                # the pass rate (compliance.Probe.tail); the settle then finds it emptied
                probe.tail(self.pressure, self.zero16, self.plunger_busy)
            if not self.pushed:
                # nothing is judged while the last batch is still moving the stopper: its pressure is
                # still rising or barely falling, which looked like a plateau (issue #20: ~150 nL)
                if self.plunger_busy() and waited_ms < self.settle_ms:
                    return False
                self.pushed = True
                self.sample_us = now_us
                if probe is not None:
                    probe.feed(kpa, now_us, True)
            gap = ticks_diff(now_us, self.sample_us)
            self.sample_us = now_us
            self.block_sum += kpa * gap
            self.block_us += gap
            plateau = False
            if self.block_us >= SETTLE_BLOCK_US:
                mean = self.block_sum // self.block_us
                plateau = self.last_block >= 0 and self.last_block - mean < SETTLE_DROP_KPA and probe is None
                self.last_block = mean
                self.block_sum = self.block_us = 0
                kpa = mean  # judged and topped up from the block's mean, not one noisy read
            elif kpa > (SETTLE_DONE_KPA if probe is None else PROBE_DONE_KPA) and waited_ms < self.settle_ms:
                return False
            done_kpa = SETTLE_DONE_KPA if probe is None else PROBE_DONE_KPA
            if kpa <= done_kpa or plateau or waited_ms >= self.settle_ms:
                # top up only from a true plateau (the wheal's back-pressure), never from the
                # flow pressure of a settle cut short by its time limit; the creep's take, always
                topup = 0
                if self.point and not self.topped:
                    topup = self.topup_steps(kpa if plateau and kpa > SETTLE_DONE_KPA else 0)
                self.topped = self.topped or self.point  # (a shot's comes on its way out)
                if topup > 0:
                    self.phase = TOPUP
                    self.plunger.move_to(self.plunger.pos + topup, self.rate, now_us)
                else:
                    # at a plateau what stays stored leaks away on withdrawal; a settle cut short
                    # by its time limit still drains into the dermis while the needle retracts
                    # (nappage shots are too brief for a wheal: their stored volume drains as they retract)
                    self.stop_kpa = kpa if self.point and (plateau or kpa <= SETTLE_DONE_KPA) else 0
                    self._end_dispense()
                    self._retract(now_us)
            self.last_kpa = kpa
        elif phase == RELIEVE and not self.plunger.moving():
            self.end_relief(now_us)  # backed off as far as allowed
        elif phase == RETRACT and self.tip * 2 <= self.depth_steps and not (self.point or self.topped or self.interrupted):
            self._shot_topup(now_us)
        elif phase == RETRACT and not self.needle.moving() and not self.plunger.moving():
            if self.suckback:
                self._suck_back(now_us)
            else:
                return self._finish()
        elif phase == SUCKBACK and not self.plunger.moving():
            self.slack += self.plunger_start - self.plunger.pos
            return self._finish()
        return False

    def _finish(self):
        self.phase = IDLE
        self._follow_tip()
        self.motors(False)
        return True


def _never():
    return False
