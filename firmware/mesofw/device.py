# The device state machine (PROTOCOL.md, "States"): commands in, motion and events out.
# Safety decisions live here: the host is never trusted for limits, trigger or link.
import micropython
from time import ticks_add, ticks_diff, ticks_ms, ticks_us
from mesoprotocol import spec as S
from mesoprotocol import rules
from mesofw import compliance, dosing, fitted, headpath, needles, settings
# spec's and dosing's names the control tick reads every pass, as this module's globals (one lookup, not two);
# their own names: a new name is a new qstr, and one more can take a new qstr pool (9 KB of heap, mpy_heap.py)
from mesoprotocol.spec import (CFG_TECHNIQUE, CFG_VACUUM, OCCLUSION_KPA, SET_LINK_TIMEOUT, STATE_ARMED,
                               STATE_DELIVERING, TECHNIQUE_NAPPAGE, TRIGGER_STUCK_MS)
from mesofw.dosing import DISPENSE, IDLE, RELIEVE, RETRACT

PRIME_SETTLE_MS = 300  # a prime waits this long at most for its line to empty (the compliance probe reads it)
SENSOR_PERIOD_US = 4000  # the syringe clamp and head ID sensors are read this often (tick)


PATH_MIXED = 255  # path_channel while a flushing prime runs or after it stopped early: both drugs in the path


def _mask(*states):  # bit i set = state i
    m = 0
    for s in states:
        m |= 1 << s
    return m


# states in which each command is accepted (HELLO, STATUS and ABORT: always)
_ACCEPTS = {
    S.CONFIGURE: _mask(S.STATE_IDLE, S.STATE_CONFIGURED, S.STATE_PRIMED, S.STATE_COMPLETE),
    S.PRIME: _mask(S.STATE_CONFIGURED, S.STATE_PRIMED),
    S.ARM: _mask(S.STATE_PRIMED, S.STATE_COMPLETE),
    S.PAUSE: _mask(S.STATE_ARMED, S.STATE_DELIVERING),
    S.RESUME: _mask(S.STATE_PAUSED),
    S.SETTINGS: _mask(S.STATE_IDLE),
    S.CALIBRATE: _mask(S.STATE_IDLE, S.STATE_CONFIGURED, S.STATE_PRIMED, S.STATE_COMPLETE),
    S.REPL: _mask(S.STATE_IDLE, S.STATE_CONFIGURED, S.STATE_PRIMED, S.STATE_COMPLETE, S.STATE_FAULT),
    S.LINE_TEST: _mask(S.STATE_CONFIGURED),
}
_MOVES = (S.PRIME, S.ARM, S.RESUME, S.LINE_TEST, S.REPL)  # commands that start the motors (or reset the board)
_PROGRAM_RUNS = _mask(S.STATE_ARMED, S.STATE_DELIVERING, S.STATE_PAUSED)  # ABORT here ends a program: journalled
_LINK_WATCHED = _mask(S.STATE_PRIMING, S.STATE_ARMED, S.STATE_DELIVERING)
# a syringe that stops fitting the program in these states is an alarm; in the others it makes the
# syringe a new one (primed again, its contents counted afresh) at the next CONFIGURE
_SYRINGE_WATCHED = _mask(S.STATE_PRIMING, S.STATE_ARMED, S.STATE_DELIVERING, S.STATE_PAUSED)

# indicator per state, indexed by STATE_*
_LED = (S.LED_OFF, S.LED_OFF, S.LED_DELIVERING, S.LED_OFF, S.LED_READY, S.LED_DELIVERING, S.LED_OFF,
        S.LED_COMPLETE, S.LED_FAULT)


def home_needle(board):
    # The needle may have been in the skin when power went: retract to the home switch.
    # First thing at boot, before anything slow (the journal's scan). Returns the depth axis's lost
    # motion in steps, measured against the switch on a board that declares it has some.
    max_play = getattr(board, "NEEDLE_PLAY_MAX_UM", 0) * board.NEEDLE_STEPS_PER_MM // 1000
    if board.needle_home() and not max_play:
        return 0
    board.motors(True)
    period_us = 1000000000 // (board.NEEDLE_STEPS_PER_MM * board.NEEDLE_SPEED_UM_S)
    if not board.needle_home():
        _step_needle(board, -1, 2 * S.MAX_DEPTH_UM * board.NEEDLE_STEPS_PER_MM // 1000, period_us, True)
    play = _measure_needle_play(board, max_play, period_us)
    board.motors(False)
    return play


def _step_needle(board, direction, limit, period_us, until_home):
    # single steps at the axis's speed until the home switch reads until_home (or limit); steps taken
    deadline = ticks_us()
    n = 0
    while (until_home is None or board.needle_home() != until_home) and n < limit:
        board.needle_step(direction)
        board.wait_steps()  # read the switch after the pulse, not with pulses still queued: no over-travel
        n += 1
        deadline = ticks_add(deadline, period_us)
        while ticks_diff(deadline, ticks_us()) > 0:
            pass
    return n


def _measure_needle_play(board, max_steps, period_us):
    # From home with the carriage pulled back against its play (driven back into the stop first),
    # the needle leaves the switch only after the carriage has crossed the play: count those steps,
    # then step back as many (the needle home again, the carriage pulled back). 0 without a declared play.
    if not max_steps or not board.needle_home():
        return 0
    _step_needle(board, -1, max_steps, period_us, None)  # into the home stop: the play taken up backwards
    n = _step_needle(board, 1, max_steps + 1, period_us, False)
    _step_needle(board, -1, n + max_steps, period_us, None)
    return n - 1 if 0 < n <= max_steps else 0


class Device:
    def __init__(self, board, emit, journal, emit_delivery):
        # emit(msg_type, values): queue an event to the host; emit_delivery(10 DELIVERY fields): the
        # dosing loop's event, sent without allocating. journal: where every point is written
        # before the host hears of it.
        self.board = board
        self.emit = emit
        self.emit_delivery = emit_delivery
        self.journal = journal
        self.checkpoint_at = 0  # plunger steps into the dose at which the journal is next updated
        self.checkpoint_steps = 1
        self.state = S.STATE_IDLE
        self.alarm = 0
        self.boot_count = 0  # this boot (boot()), named in every ALARM
        self.cfg = None
        self.syringe = 0  # code of the loaded syringe; metering and contents follow it
        self.barrel_lo = self.barrel_hi = 0  # clamp readings (um) that fit it
        self.primed_syringe = 0
        self.stop_flags = 0
        self.metering = None
        self.done = 0
        self.delivered_nl = 0
        self.dispensed_nl = 0  # out of the loaded syringe so far (prime included)
        self.capacity_nl = 0
        self.need_release = True
        self.kind = 0
        self.point_nl = 0
        self.point_index = 0
        self.next_shot_us = 0
        self.burst_start = False
        self.period_us = 0
        self.settings = settings.load()
        self.calibration = settings.load_calibration()
        self.link_rx_ms = ticks_ms()
        self.pressed_ms = 0  # when the trigger was last pressed (0: released)
        self.point_ms = 0  # how long one point or shot takes, from CONFIGURE
        self.hold_lag_ms = 0  # the moves' lag (_lag_ms) when the trigger's hold began
        self.syringe_spent = False  # emptied, or taken out of the clamp: a CONFIGURE treats it as a new one
        self.barrel_watch = fitted.Disagreement(S.SYRINGE_SENSOR_MS)  # the clamp sensor against the syringe
        self.head = 0  # code of the needle head the program names (its ID resistor is read)
        self.primed_head = 0  # the head whose dead volume a prime filled (0: none, or it came off)
        self.head_watch = fitted.Disagreement(S.HEAD_SENSOR_MS)
        self.sensors_due_us = ticks_us()  # the clamp or the head ID is read next (tick)...
        self.sensor_turn = 0  # ...the clamp when this turns 1, the head ID when it turns 0
        # a stall flag to read (a TMC2209's DIAG; the sim's driver); a step/dir board with A4988-class drivers has none
        self.stall_signal = getattr(board, "STALL_SIGNAL", True)
        # two drugs, never mixed: each syringe channel has its own syringe and plunger axis, joined into the
        # head's one path (a Y-piece with check valves). The board steps, and its clamp sensor reads, the
        # channel selected at CONFIGURE (nothing moves then). The path holds one channel's drug; a program of
        # the other channel runs only once a prime of it has flushed the path (FLUSH_VOLUMES x dead volume).
        self.channel = 1  # the program's channel: the axis the board steps
        self.channels = getattr(board, "CHANNELS", 1)
        # whose drug fills the head's path (0: dry); on flash where there are two channels, so a reboot keeps it
        self.path_channel = headpath.load() if self.channels > 1 else 0
        self.parked = [None] * (S.CHANNELS + 1)  # type: list  # per channel not selected: (syringe, spent, primed, dispensed, slack)
        # a blocked needle of a multi-needle head, from the dispense's pressure (its sensor's lag: needles.figures)
        self.needles = needles.Watch(getattr(board, "PRESSURE_LAG_US", 0))
        # a board that reports the watch's figures per dose (the simulated one, for bench_heads; no chip has it)
        self.needle_figures = getattr(board, "needle_figures", None)
        self.pump_on = False  # the head's vacuum pump
        self.least_vacuum = 0  # the least vacuum held while this dose ran (kPa below ambient)
        self.session = 0  # the session tag in force (CONFIGURE); a new tag opens a new session
        self.session_nl = 0  # delivered in that session, across re-ARMs and resumes: max_session_nl bounds it...
        self.session_cap_nl = 0  # ...and the session's own cap when lower (CONFIGURE; 0: none; never raised)
        self.min_period_us = 0  # the cadence ceiling's period: no two shots' needle entries closer
        self.entry_pending = False  # a shot started whose needle has not yet entered
        self.shot_floor_us = ticks_us()  # no shot may start before (the last needle entry + min_period_us)
        self.hello_since_fault = True
        self.alarms_due = []  # (record_id, code, detail, time_ms) raised while a point was still open
        self.pair_hold_ms = 0  # E-stop pressed and trigger held since (0: not)
        self.pairing_until = 0  # pairing mode open until (0: closed)
        paced = getattr(board, "STEP_PACED_GAP_US", 0)  # a board whose driver paces late batches (dosing.Axis)
        self.plunger = dosing.Axis(board.plunger_step, 1, paced)
        self.needle = dosing.Axis(board.needle_step, 1, paced)
        needle_rate = board.NEEDLE_STEPS_PER_MM * board.NEEDLE_SPEED_UM_S // 1000  # steps/s
        self.dose = dosing.Sequence(board.motors, board.pressure_kpa, self._topup_steps, self.plunger, self.needle,
                                    board.NEEDLE_STEPS_PER_MM, needle_rate, getattr(board, "plunger_busy", None))
        # the line's compliance (pL/kPa): the stopper-area prior until a prime measures it (compliance.py)
        self.compliance_pl = 0
        self.probe = compliance.Probe(getattr(board, "PRESSURE_LAG_US", 0), board.estop)
        # the line test (the outlet capped): the sensor's lag, and this syringe's compliance, measured. Its module
        # is loaded by the first LINE_TEST (a service step before a session; 3.5 KB of a 32-bit heap from then on)
        self.line = None
        self.line_on = False  # a line test runs (its moves too, after a stop)
        self.line_syringe = 0  # the syringe whose compliance in force a line test measured (a prime keeps it)
        # anti-drip: draw back past the worst-case lost motion, so returning the same
        # distance before the next dose cancels backlash and stopper breakaway exactly
        self.suckback_steps = (board.PLUNGER_PLAY_MAX_UM + board.ANTIDRIP_UM) * board.PLUNGER_STEPS_PER_MM // 1000
        # where the pusher sits is unknown after power-up: at worst where this firmware's own suck-back left it
        # (the play and the anti-drip draw), so the prime (into the air) takes that up before it counts. Only the
        # play assumed, a prime after a restart counted the draw's steps as fluid (sim: 64 steps, -1.8 % on that
        # prime). After a syringe change, its play (configure)
        self.play_steps = board.PLUNGER_PLAY_MAX_UM * board.PLUNGER_STEPS_PER_MM // 1000
        self.dose.slack = self.suckback_steps
        board.motors(False)
        board.led(S.LED_OFF)

    def boot(self, reset_cause, boot_count=0):
        # After any reset (the app has homed the needle first: home_needle), a RESET alarm
        # the host must acknowledge.
        # Not journalled: the device holds it (FAULT) until a host acknowledges it with ABORT, which a
        # session does only once it stored it; a boot loop must not fill the journal with resets.
        # Every ALARM names its boot: the host stores one RESET per boot, however it learnt of it (PROTOCOL.md 8).
        self.boot_count = boot_count
        self.alarm = S.ALARM_RESET
        self._set_state(S.STATE_FAULT)
        self.emit(S.ALARM, (S.ALARM_RESET, self.state, reset_cause, ticks_ms(), 0, self.journal.epoch, boot_count))

    # ---- host commands -----------------------------------------------------------
    def handle(self, msg_type, values, now_us):
        # Returns (ACK, values) or (NACK, values) for the reply frame.
        accepts = _ACCEPTS.get(msg_type)
        if accepts is not None and not (accepts >> self.state) & 1:
            return self._nack(msg_type, S.NACK_BAD_STATE, 0, self.state, accepts)
        if msg_type == S.REPL and self.dose.active():  # FAULT may still be backing off or retracting
            return self._nack(msg_type, S.NACK_BAD_STATE, 0, self.state, accepts)
        if self.line_on and msg_type in _MOVES:  # a stopped line test still backing off: nothing else moves yet
            return self._nack(msg_type, S.NACK_BAD_STATE, 0, self.state, accepts)
        if msg_type == S.CONFIGURE:
            return self._configure(values)
        if msg_type == S.PRIME:
            return self._prime(values[0], now_us)
        if msg_type == S.LINE_TEST:
            from mesofw import linetest  # the line test's code only once one is asked for (a service step)

            return linetest.command(self, now_us)
        if msg_type == S.SETTINGS:
            error = settings.check(values)
            if error:
                return self._nack(msg_type, S.NACK_LIMIT, error[0], error[1], error[2])
            self.settings = list(values)
            settings.save(self.settings)
        elif msg_type == S.CALIBRATE:
            return self._calibrate(values[0], values[1])
        if msg_type == S.ARM or msg_type == S.RESUME:
            # every point left (ARM: all of them), and one stopped early; a refusal changes nothing
            left = self.cfg[S.CFG_COUNT] - (0 if msg_type == S.ARM else self.done)
            if self.journal.free() < left + 1:
                return self._nack(msg_type, S.NACK_JOURNAL_FULL, 0, self.journal.free(), left + 1)
            barrel = self.board.syringe_barrel_um()
            if not S.syringe_fits(self.syringe, barrel):
                return self._nack(msg_type, S.NACK_SYRINGE, 0, self.syringe, barrel)
            refusal = self._head_refusal(msg_type, self.head, 0) or self._path_refusal(msg_type)
            if refusal:
                return refusal
            total = self.session_nl + left * self.cfg[S.CFG_VOLUME]  # the session so far and every point left
            limit = rules.session_limit_nl(self.settings, self.session_cap_nl)
            if total > limit:
                return self._nack(msg_type, S.NACK_LIMIT, 0, total, limit)
            self.journal.reserve(left + 1)  # ids for them, leased on flash before any is given
            if msg_type == S.ARM:
                self.done = 0
                self.delivered_nl = 0
            self._arm()
        elif msg_type == S.PAUSE:
            self._stop(S.FLAG_ABORTED, now_us)
            self._end_burst_early(now_us)
            self._set_state(S.STATE_PAUSED)
        elif msg_type == S.ABORT:
            if self.state == S.STATE_FAULT and not self.hello_since_fault:
                return self._nack(msg_type, S.NACK_HELLO_FIRST, 0, self.alarm, 0)
            self._stop(S.FLAG_ABORTED, now_us)
            self._end_burst_early(now_us)
            if self.cfg and (_PROGRAM_RUNS >> self.state) & 1:
                self._end_record(S.END_ABORTED)
            self.cfg = None
            self.alarm = 0
            self._set_state(S.STATE_IDLE)
        return (S.ACK, (msg_type, self.state))

    def _nack(self, msg_type, reason, field, value, limit):
        return (S.NACK, (msg_type, reason, field, self.state, value, limit))

    def _configure(self, cfg):
        # the same session tag continues its session (its total so far counts); a new tag opens one
        # (and its cap, which a later CONFIGURE may lower but not raise)
        same = cfg[S.CFG_SESSION] == self.session
        used_nl = self.session_nl if same else 0
        error = rules.check_configure(cfg, self._shot_time_ms, self.settings, self._min_volume_nl, used_nl,
                                      self.session_cap_nl if same else 0)
        if error:
            return self._nack(S.CONFIGURE, error[0], error[1], error[2], error[3])
        syringe = cfg[S.CFG_SYRINGE]
        channel = cfg[S.CFG_CHANNEL]
        if channel > self.channels:  # a board with one plunger axis
            return self._nack(S.CONFIGURE, S.NACK_BAD_VALUE, rules.F_CHANNEL, channel, self.channels)
        self.board.plunger_channel(channel)  # its clamp sensor from here; its axis if accepted
        barrel = self.board.syringe_barrel_um()
        if not S.syringe_fits(syringe, barrel):  # the program's syringe is not the one in the clamp
            self.board.plunger_channel(self.channel)
            return self._nack(S.CONFIGURE, S.NACK_SYRINGE, rules.F_SYRINGE, syringe, barrel)
        refusal = self._head_refusal(S.CONFIGURE, cfg[S.CFG_HEAD], rules.F_HEAD)
        if refusal:
            self.board.plunger_channel(self.channel)
            return refusal
        if channel != self.channel:
            self._switch_channel(channel)
        self.session = cfg[S.CFG_SESSION]
        self.session_nl = used_nl
        self.session_cap_nl = cfg[S.CFG_SESSION_CAP]
        if syringe != self.syringe or self.syringe_spent:  # a new syringe
            self.syringe = syringe
            # the clamp readings that fit it (S.syringe_fits), for _watch_syringe's every-tick check
            self.barrel_lo = max(1, S.SYRINGES[syringe][4] - S.SYRINGE_BARREL_TOL_UM)
            self.barrel_hi = S.SYRINGES[syringe][4] + S.SYRINGE_BARREL_TOL_UM
            self.syringe_spent = False
            self.primed_syringe = 0
            self.metering = self._metering(syringe)
            self.capacity_nl = S.syringe_capacity_nl(syringe, self.calibration.get(syringe, 1000000))
            self.dispensed_nl = 0
            self.compliance_pl = compliance.prior_pl_per_kpa(self._area_mm2())
            self.line_syringe = 0
            self.dose.creep.set(0, 0, 0)
            self.dose.slack = max(self.dose.slack, self.play_steps)
        if cfg[S.CFG_HEAD] != self.head:  # another head: dry until primed, no pressure baseline
            self.head = cfg[S.CFG_HEAD]
            self.primed_head = 0
            self.needles.forget()
        self.cfg = cfg
        self.done = 0
        self.delivered_nl = 0
        self.point_ms = self._shot_time_ms(cfg)
        if cfg[S.CFG_CADENCE]:
            self.period_us = 1000000000 // cfg[S.CFG_CADENCE]
            self.min_period_us = 1000000000 // self.settings[S.SET_CADENCE]
        # the other channel's drug in the path: CONFIGURED, and only a flushing prime leads on (_prime)
        primed = self.primed_syringe == syringe and self.primed_head == self.head and self.path_channel == channel
        self._set_state(S.STATE_PRIMED if primed else S.STATE_CONFIGURED)
        return (S.ACK, (S.CONFIGURE, self.state))

    def _switch_channel(self, channel):
        # the selected channel's syringe state parked, the other's taken back (a channel never used: no
        # syringe, so CONFIGURE treats it as new). Per CONFIGURE, not in the dosing loop.
        self.parked[self.channel] = (self.syringe, self.syringe_spent, self.primed_syringe, self.dispensed_nl,
                                     self.dose.slack)
        mine = self.parked[channel]
        self.channel = channel
        if mine is None:
            self.syringe = 0
            return
        self.syringe, self.syringe_spent, self.primed_syringe, self.dispensed_nl, self.dose.slack = mine
        if self.syringe:
            self.barrel_lo = max(1, S.SYRINGES[self.syringe][4] - S.SYRINGE_BARREL_TOL_UM)
            self.barrel_hi = S.SYRINGES[self.syringe][4] + S.SYRINGE_BARREL_TOL_UM
            self.metering = self._metering(self.syringe)
            self.capacity_nl = S.syringe_capacity_nl(self.syringe, self.calibration.get(self.syringe, 1000000))
            self.compliance_pl = compliance.prior_pl_per_kpa(self._area_mm2())
            self.line_syringe = 0
            self.dose.creep.set(0, 0, 0)

    def _path_refusal(self, msg_type):
        # NACK_CHANNEL if the head's path holds the other channel's drug (or one not known), else None
        if self.path_channel == self.channel:
            return None
        return self._nack(msg_type, S.NACK_CHANNEL, 0, self.channel, self.path_channel)

    def _head_refusal(self, msg_type, head, field):
        # NACK_HEAD if the head fitted (its ID resistor) is not `head`, else None
        id_mv = self.board.head_id_mv()
        if S.head_fits(head, id_mv):
            return None
        return self._nack(msg_type, S.NACK_HEAD, field, head, id_mv)

    def _calibrate(self, syringe, ppm):
        if syringe not in S.SYRINGES:
            return self._nack(S.CALIBRATE, S.NACK_BAD_VALUE, 1, syringe, 0)
        if not S.MIN_CAL_PPM <= ppm <= S.MAX_CAL_PPM:
            return self._nack(S.CALIBRATE, S.NACK_LIMIT, 2, ppm, S.MIN_CAL_PPM if ppm < S.MIN_CAL_PPM else S.MAX_CAL_PPM)
        self.calibration[syringe] = ppm
        settings.save_calibration(self.calibration)
        if syringe == self.syringe:
            self.metering = self._metering(syringe)
            self.capacity_nl = S.syringe_capacity_nl(syringe, ppm)
            if self.cfg and rules.check_configure(self.cfg, self._shot_time_ms, self.settings, self._min_volume_nl,
                                                   self.session_nl, self.session_cap_nl):
                self.cfg = None  # the program no longer meters to 1 %: configure it again
                self._set_state(S.STATE_IDLE)
        return (S.ACK, (S.CALIBRATE, self.state))

    def cal_ppm(self):
        return self.calibration.get(self.syringe, 1000000)

    def _topup_steps(self, kpa, carry=True):
        # the volume the line holds at this pressure and what the stopper's creep took over the dose, in plunger
        # steps (the measured compliance), rounded
        # with the metering's carried remainder: a floor lost half a step a point (a 10 mL syringe's step is 52 nL);
        # a nappage shot's (carry False) with its own dose's rounding, not the session's: Metering.steps_topup
        nl = (kpa * self.compliance_pl + self.dose.creep.taken(ticks_us())) // 1000
        if nl <= 0:
            return 0
        return self.metering.steps_for(nl) if carry else self.metering.steps_topup(nl)

    def _area_mm2(self):
        # the stopper's face: nL per mm of travel / 1000 (pL per step x steps per mm / 10^6)
        return (self.metering.pl_step * self.board.PLUNGER_STEPS_PER_MM + 500000) // 1000000

    def _measure_compliance(self, pushed_nl):
        # after a prime: its pressure response gives the line's compliance (kept if it says nothing)
        est = self.probe.pl_per_kpa(pushed_nl, self._area_mm2())
        if est is not None and self.line_syringe != self.syringe:  # a line test's figure is the better one
            self.compliance_pl = est
        self.dose.probe = None
        seen = getattr(self.board, "compliance_measured", None)  # a board that logs it (the sim: to its harness)
        if seen is not None:
            seen(self.probe, pushed_nl, -1 if est is None else est, self.compliance_pl)

    def _min_volume_nl(self, syringe):
        return rules.least_dose_nl(self._metering(syringe).pl_step)

    def _metering(self, syringe):
        ppm = self.calibration.get(syringe, 1000000)
        return dosing.Metering(S.pl_per_step(syringe, self.board.PLUNGER_STEPS_PER_MM, ppm))

    def _shot_time_ms(self, cfg):
        return rules.shot_time_ms(cfg, self.board.NEEDLE_SPEED_UM_S)

    def _prime(self, volume_nl, now_us):
        error = rules.check_prime(volume_nl)
        if error:
            return self._nack(S.PRIME, error[0], error[1], error[2], error[3])
        if not self.journal.free():
            return self._nack(S.PRIME, S.NACK_JOURNAL_FULL, 0, 0, 1)
        barrel = self.board.syringe_barrel_um()
        if not S.syringe_fits(self.syringe, barrel):
            return self._nack(S.PRIME, S.NACK_SYRINGE, 0, self.syringe, barrel)
        refusal = self._head_refusal(S.PRIME, self.head, 0)
        if refusal:
            return refusal
        dead_nl = S.HEADS[self.head][4]
        if self.primed_head != self.head and volume_nl < dead_nl:  # a dry head: the prime must fill it
            return self._nack(S.PRIME, S.NACK_LIMIT, 1, volume_nl, dead_nl)
        other = self.path_channel and self.path_channel != self.channel  # PATH_MIXED too
        if other and volume_nl < S.FLUSH_VOLUMES * dead_nl:  # the other drug in the path: flush it out
            return self._nack(S.PRIME, S.NACK_CHANNEL, 1, volume_nl, S.FLUSH_VOLUMES * dead_nl)
        if other:
            self._set_path(PATH_MIXED)  # both drugs in it until this prime completes
        self.journal.reserve(1)
        self.primed_syringe = 0
        self.primed_head = 0
        self.needles.forget()
        self._start(S.KIND_PRIME, self.head, volume_nl, 0, now_us)  # a prime's point: the head it fills
        self._set_state(S.STATE_PRIMING)
        return (S.ACK, (S.PRIME, self.state))

    def _set_path(self, channel):
        if channel != self.path_channel:
            self.path_channel = channel
            if self.channels > 1:
                headpath.save(channel)

    def _arm(self):
        self.need_release = True  # a trigger held while arming never fires
        self._set_state(S.STATE_ARMED)

    # ---- safety stops -------------------------------------------------------------
    @micropython.native  # every pass
    def _steps_back(self):
        # steps the board's hardware gates kept off the pin (trigger up or E-stop pressed while
        # delivering, the E-stop in any other move outside FAULT, board_steppio.py) never moved the axis: its
        # position, and so the record and the needle's way home, loses them
        n = self.board.plunger_unsent()
        if n:
            self.dose.plunger.pos -= n
        n = self.board.needle_unsent()
        if n:
            self.dose.needle.pos -= n

    def _stop(self, flags, now_us):
        # Plunger stops now; the sequence records what was delivered and retracts (a line test backs off).
        if self.line_on:
            self.board.wait_steps()
            self._steps_back()
            self.line.stop(now_us)
        if self.dose.active():
            self.board.wait_steps()  # every word handed over sent or dropped by the gate: counted exactly
            self._steps_back()
            self.stop_flags |= flags
            self.dose.interrupt(now_us)
            self._record_if_dispensed(now_us)

    def fault(self, code, detail, now_us):
        if code == S.ALARM_OCCLUSION and self.dose.active():
            self.board.wait_steps()
            self._steps_back()
            # stop, then back off until the line pressure is released (tick ends it)
            self.stop_flags |= S.FLAG_FAULT | S.FLAG_ABORTED
            self.dose.relieve(self.metering.steps_for_relief(S.MAX_RELIEF_NL), now_us)
        else:
            self._stop(S.FLAG_FAULT | S.FLAG_ABORTED, now_us)
        if code == S.ALARM_LINK_LOST:
            self.hello_since_fault = False
        elif code == S.ALARM_SYRINGE_EMPTY:
            self.syringe_spent = True
        self.alarm = code
        self._set_state(S.STATE_FAULT)
        # sent now with the id its journal record will have; written once no point is open (the stopped
        # point's record closes first: after an occlusion's back-off), so ids stay in ring order
        t = ticks_ms()
        rid = self.journal.reserve_id()
        if rid:
            self.alarms_due.append((rid, code, detail, t))
        self.emit(S.ALARM, (code, self.state, detail, t, rid, self.journal.epoch, self.boot_count))
        self._journal_alarms()

    def _journal_alarms(self):
        j = self.journal
        while self.alarms_due and j.cur < 0:
            rid, code, detail, t = self.alarms_due.pop(0)
            j.add(S.KIND_ALARM, self.cfg[S.CFG_SESSION] if self.cfg else 0, code, detail & 0xFFFFFFFF, self.delivered_nl,
                  self.dose.depth_um(), t, rid)

    def _end_record(self, end):
        # a program's end on the journal, so its outcome reaches the host's store like its points
        if self.journal.cur < 0:
            self.journal.add(S.KIND_END, self.cfg[S.CFG_SESSION], end, self.done, self.delivered_nl, 0, ticks_ms())

    def link_seen(self):
        # the controlling host was heard (its signed traffic): the link watchdog restarts
        self.link_rx_ms = ticks_ms()

    def hello_seen(self):
        self.hello_since_fault = True

    def host_silent_ms(self):
        return max(0, ticks_diff(ticks_ms(), self.link_rx_ms))

    def host_gone(self, silent_ms):
        # the controlling host's session has lapsed: silent past the link timeout, in a state the
        # watchdog does not watch (in those its silence is a LINK_LOST first)
        return silent_ms > self.settings[S.SET_LINK_TIMEOUT] and not (_LINK_WATCHED >> self.state) & 1

    # ---- the control tick -----------------------------------------------------------
    @micropython.native  # machine code, not bytecode: the pass costs less on an RP2040 (bench_pico_emu.py --profile)
    def tick(self, now_us):
        # (on an RP2040 a call costs ~25 us and a module attribute a few: the per-pass paths below inline the
        # small methods' tests and read spec's names once, as module globals; bench_pico_emu.py --only-profile)
        state = self.state
        board = self.board
        line_on = self.line_on
        if state == STATE_DELIVERING or self.dose.phase != IDLE or line_on:
            # _steps_back, without its call every pass: while delivering a trigger bounce, in any move an E-stop
            # shorter than a pass may have kept steps off the pins the loop never saw stop (the axis re-issues
            # them); a stop takes the rest (_stop)
            n = board.plunger_unsent()
            if n:
                self.dose.plunger.pos -= n
            n = board.needle_unsent()
            if n:
                self.dose.needle.pos -= n
        estop = board.estop()
        if estop and state != S.STATE_FAULT:
            self.fault(S.ALARM_ESTOP, 0, now_us)
            state = self.state
        if (_LINK_WATCHED >> state) & 1:
            silent = ticks_diff(ticks_ms(), self.link_rx_ms)
            if silent > self.settings[SET_LINK_TIMEOUT]:
                self.fault(S.ALARM_LINK_LOST, silent, now_us)
                state = self.state
        if ticks_diff(now_us, self.sensors_due_us) >= 0:
            # the clamp and head ID sensors every SENSOR_PERIOD_US, not every pass (their ADC reads are ~1/4 of
            # an RP2040's pass), and never both in one pass (the two take turns every half period): each must
            # disagree for 30 ms (fitted.Disagreement) before it counts, so this adds at most one period to a
            # swap's alarm; the stop-path inputs (E-stop, trigger, contact, line pressure) are read every pass
            self.sensors_due_us = ticks_add(now_us, SENSOR_PERIOD_US // 2)
            self.sensor_turn ^= 1
            if self.sensor_turn:
                if self.syringe:
                    self._watch_syringe(now_us)
                    state = self.state
            elif self.head:
                self._watch_head(now_us)
                state = self.state
        pressed = board.trigger()
        if (pressed and estop) or self.pairing_until:
            self._pairing_gesture(pressed)
        else:  # what _pairing_gesture does without the gesture (trigger + E-stop) and no window open, without its call
            # (a held trigger while delivering called it every pass: ~60 us of an RP2040's pass)
            self.pair_hold_ms = 0
        if not pressed:
            self.need_release = False
            self.pressed_ms = 0
        elif not self.pressed_ms:
            self.pressed_ms = ticks_ms() | 1
            self.hold_lag_ms = self._lag_ms()
        elif (state == STATE_ARMED or state == STATE_DELIVERING) and self.cfg[CFG_TECHNIQUE] != TECHNIQUE_NAPPAGE:
            held = ticks_diff(ticks_ms(), self.pressed_ms)
            # the point time as the moves ran it: what a late loop took from them (dosing.Axis lag_ms) is not
            # the trigger's; after the point the margin is TRIGGER_STUCK_MS as ever. The lag only grows
            # (lag >= hold_lag_ms), so it is summed only once the hold is past the time without it
            limit = self.point_ms + TRIGGER_STUCK_MS - self.hold_lag_ms
            if held > limit and held > limit + self._lag_ms():
                self.fault(S.ALARM_TRIGGER_STUCK, held, now_us)
                state = self.state
        if line_on and self.line.tick(now_us):
            self.line.report(self)
            state = self.state
        seq = self.dose
        phase = seq.phase
        if phase == DISPENSE or phase == RELIEVE:
            kpa = board.pressure_kpa()
            if phase == RELIEVE:
                if kpa <= S.RELIEF_KPA:
                    seq.end_relief(now_us)
            elif kpa >= OCCLUSION_KPA or (self.stall_signal and board.plunger_stalled()):  # pressure, or a stall
                self.fault(S.ALARM_OCCLUSION, kpa, now_us)
            elif board.syringe_end():
                self.fault(S.ALARM_SYRINGE_EMPTY, self.capacity_nl - self.dispensed_nl, now_us)
            else:  # the dispense's line pressure (_check_needles), and the creep's
                self.needles.feed(kpa, self.plunger.pos, now_us)
                if seq.creep.gain:
                    seq.creep.follow(kpa - seq.zero_kpa, now_us)
            state = self.state
        if state == STATE_DELIVERING and not pressed and seq.phase != RETRACT:
            self._stop(S.FLAG_TRIGGER_RELEASED, now_us)
        cfg = self.cfg
        if (cfg is None or not cfg[CFG_VACUUM]) and not self.pump_on:
            contact = board.skin_contact()  # _contact's way without a vacuum, without its call
        else:
            contact = self._contact(state)
        if not contact and state == STATE_ARMED and self.pressed_ms:
            self.pressed_ms = ticks_ms() | 1  # held off the skin, waiting: TRIGGER_STUCK counts from the contact
            self.hold_lag_ms = self._lag_ms()
        if not contact and seq.phase != IDLE and state == STATE_DELIVERING and seq.phase != RETRACT:
            self._stop(S.FLAG_CONTACT_LOST, now_us)  # read before this pass steps: no step after the edge
        finished = seq.tick(now_us)
        if self.entry_pending and seq.tip > 0:  # needle_in()
            # the shot's needle entered the skin (read after the step): the next may not enter sooner
            # than the cadence ceiling's period after it, however late this one ran
            self.entry_pending = False
            self.shot_floor_us = ticks_add(ticks_us(), self.min_period_us)
        if self.journal.cur >= 0 and seq.plunger.pos - seq.plunger_start >= self.checkpoint_at:
            self._checkpoint()  # its own tests first, without its call every pass: a point open, a checkpoint due
        if seq.dispense_done:  # _record_if_dispensed's own test, without its call every pass
            self._record_if_dispensed(now_us)
        if self.alarms_due:
            self._journal_alarms()
        if finished:
            self._sequence_finished(now_us)
        state = self.state
        if state == STATE_ARMED and pressed and contact and not self.need_release and seq.phase == IDLE:
            self._set_state(S.STATE_DELIVERING)
            if self.cfg[S.CFG_TECHNIQUE] == S.TECHNIQUE_NAPPAGE:
                # take up the slack first; the cadence starts with the first shot
                self.burst_start = True
                self.next_shot_us = now_us
                if not 0 < ticks_diff(self.shot_floor_us, now_us) <= self.min_period_us:
                    self.shot_floor_us = now_us  # no shot within a period (a stale time could have wrapped)
                self.dose.take_up(self._fast_rate(), now_us)
            else:
                self.need_release = True
                self._next_point(now_us)
        elif state == STATE_DELIVERING and seq.phase == IDLE and self.cfg[CFG_TECHNIQUE] == TECHNIQUE_NAPPAGE:
            if not pressed:
                self._end_burst(now_us)
                self._set_state(S.STATE_ARMED)
            elif contact and ticks_diff(now_us, self.next_shot_us) >= 0 and ticks_diff(now_us, self.shot_floor_us) >= 0:
                self._next_point(now_us)

    @micropython.native  # every pass
    def _watch_syringe(self, now_us):
        # the clamp sensor, every tick: the syringe dosing counts on must still be the one loaded
        barrel = self.board.syringe_barrel_um()
        # S.syringe_fits, its lookups done once at CONFIGURE
        if not self.barrel_watch.lasting(self.barrel_lo <= barrel <= self.barrel_hi):
            return
        # swapped, taken out, or a sensor fault: what is loaded is not known to be primed or full
        self.syringe_spent = True
        self.primed_syringe = 0
        if (_SYRINGE_WATCHED >> self.state) & 1:
            self.fault(S.ALARM_SYRINGE, barrel, now_us)
        elif self.state == S.STATE_PRIMED:
            self._set_state(S.STATE_CONFIGURED)

    @micropython.native  # every pass
    def _contact(self, state):
        # skin contact: a single-needle head's switch, or a multi-needle head's vacuum at the program's level.
        # The pump runs while a program is armed or delivering, to VACUUM_HYST_KPA past that level.
        vacuum = self.cfg[S.CFG_VACUUM] if self.cfg else 0
        if not vacuum:
            if self.pump_on:
                self._pump(False)
            return self.board.skin_contact()
        kpa = self.board.vacuum_kpa()
        if self.dose.active() and kpa < self.least_vacuum:
            self.least_vacuum = kpa
        if state == S.STATE_ARMED or state == S.STATE_DELIVERING:
            if kpa < vacuum + 1:
                self._pump(True)
            elif kpa >= vacuum + S.VACUUM_HYST_KPA:
                self._pump(False)
        elif self.pump_on:
            self._pump(False)
        return kpa >= vacuum

    def _pump(self, on):
        self.pump_on = on
        self.board.vacuum_pump(on)

    @micropython.native  # every pass
    def _watch_head(self, now_us):
        # the head's ID resistor, every tick: the head the program splits its doses over must still be on
        id_mv = self.board.head_id_mv()
        if not self.head_watch.lasting(S.head_fits(self.head, id_mv)):
            return
        # changed, taken off, or a fault: what is on is not known to be primed
        self.primed_head = 0
        # path_channel stays: the same head may be put back with its drug in it
        self.needles.forget()
        if (_SYRINGE_WATCHED >> self.state) & 1:
            self.fault(S.ALARM_HEAD, id_mv, now_us)
        elif self.state == S.STATE_PRIMED:
            self._set_state(S.STATE_CONFIGURED)

    def _check_needles(self, now_us):
        # A multi-needle head shares one line: a needle blocking sends its dose to the others and raises
        # the line pressure n/(n-1) (needles.py). A full prime measures the clear head's flow pressure; a
        # full point judges its flow figure against it, and its mean against the head's clean points.
        verdict = self.needles.judge(self.kind == S.KIND_PRIME, S.head_needles(self.head), S.head_block_permille(self.head))
        if self.needle_figures is not None:
            self.needle_figures(self.kind == S.KIND_PRIME, self.needles, verdict)
        if verdict:
            self.fault(S.ALARM_NEEDLE_BLOCKED, self.needles.risen16 >> 4, now_us)

    def _pairing_gesture(self, pressed):
        # E-stop pressed (nothing can move) and trigger held PAIRING_HOLD_MS: pairing mode opens
        if self.pairing_until and not self.pairing_open():
            self.close_pairing()  # the window ran out
        if not (pressed and self.board.estop()):
            self.pair_hold_ms = 0
        elif self.pair_hold_ms < 0:
            pass  # a pairing just closed: let go first
        elif not self.pair_hold_ms:
            self.pair_hold_ms = ticks_ms() | 1
        elif ticks_diff(ticks_ms(), self.pair_hold_ms) >= S.PAIRING_HOLD_MS and not self.pairing_until:
            self.pairing_until = ticks_add(ticks_ms(), S.PAIRING_WINDOW_MS) | 1
            self.board.led(S.LED_PAIRING)

    def pairing_open(self):
        return self.pairing_until != 0 and ticks_diff(self.pairing_until, ticks_ms()) > 0

    def close_pairing(self):
        self.pairing_until = 0
        self.pair_hold_ms = -1  # the gesture must be let go and made again
        self.board.led(_LED[self.state])

    @micropython.native  # every pass
    def busy(self):
        # (dose.active() without its call)
        return self.dose.phase != IDLE or self.line_on or self.state == STATE_DELIVERING

    def _next_point(self, now_us):
        technique, _, _, _, depth_um, volume_nl, count, _, _, _, _, _, _ = self.cfg
        if self.done >= count:  # every point ends at its programmed volume: count bounds the total
            self._complete()
            return
        if technique == S.TECHNIQUE_NAPPAGE:
            # absolute cadence from the burst's first shot while shots are on time (a tick's jitter is
            # made up); a shot later than a tenth of the period re-anchors it a tenth behind, so the
            # next comes at least 0.9 period later, and never sooner than the ceiling's (shot_floor_us)
            slack = self.period_us // S.CADENCE_SLACK_DIV
            late = ticks_diff(now_us, self.next_shot_us)
            if self.burst_start:
                anchor = now_us
            elif late > slack:
                anchor = ticks_add(now_us, -slack)
            else:
                anchor = self.next_shot_us
            self.burst_start = False
            self.next_shot_us = ticks_add(anchor, self.period_us)
            self.entry_pending = True
            kind = S.KIND_SHOT
        else:
            kind = S.KIND_TEST_DOSE if technique == S.TECHNIQUE_TEST_DOSE else S.KIND_POINT
        if self.session_nl + volume_nl > rules.session_limit_nl(self.settings, self.session_cap_nl):  # ARM, RESUME checked it
            self._complete()  # journalled as an END like any program end (programmed_nl: the points done)
            return
        left = self.capacity_nl - self.dispensed_nl
        if volume_nl > left:
            self.fault(S.ALARM_SYRINGE_EMPTY, left, now_us)
            return
        self._start(kind, self.done, volume_nl, depth_um, now_us)

    def _start(self, kind, index, volume_nl, depth_um, now_us):
        # the point is journalled (OPEN) before anything moves: no room, no point. With an append area, room
        # there for this dose's entries (open, checkpoints, close, an alarm, the program's end) first: if it
        # is short, its records are settled now, the plunger still (one shot late instead of a record lost)
        if self.journal.short_of(volume_nl // max(1, min(S.JOURNAL_CHECKPOINT_NL, volume_nl // 4)) + 6):
            self.board.wait_steps()
            self.journal.settle()
        if not self.journal.open(self.cfg[S.CFG_SESSION], index, kind, volume_nl, ticks_ms(), self.syringe, self.channel):
            self.fault(S.ALARM_JOURNAL_FULL, 0, now_us)
            return
        # checkpoints: as the dispense starts (the needle at depth), then every JOURNAL_CHECKPOINT_NL and at
        # least 4 times a dose (plain division: steps_for() would spend the metering's carried remainder).
        # The first one is not redundant with open(): it moves the record's time from before the needle went
        # in to inside its entry, so a point cut by power before its next checkpoint is still stamped at
        # its delivery (NOW/point: a page programmed, not a block erased)
        self.checkpoint_steps = min(S.JOURNAL_CHECKPOINT_NL, volume_nl // 4) * 1000 // self.metering.pl_step + 1
        self.checkpoint_at = 0
        self.kind = kind
        self.point_index = index
        self.point_nl = volume_nl
        self.stop_flags = 0
        self.least_vacuum = 255 if self.cfg and self.cfg[S.CFG_VACUUM] and kind != S.KIND_PRIME else 0
        steps = self.metering.steps_for_dose(volume_nl)  # each dose within its tolerance (dosing.py)
        rate = self.cfg[S.CFG_FLOW] * 1000 // self.metering.pl_step + 1  # steps/s
        fast = self._fast_rate()
        shot = kind == S.KIND_SHOT
        self.board.plunger_stalled()  # a stall flag from before this dose is stale: clear it
        prime = kind == S.KIND_PRIME
        if prime:  # the needle in the air: the prime measures the line's compliance
            self.probe.start(now_us)
        self.dose.probe = self.probe if prime else None
        self.dose.start(depth_um, steps, rate, fast, 0 if shot else self.suckback_steps,
                       S.SHOT_SETTLE_MS if shot else PRIME_SETTLE_MS if prime else S.POINT_SETTLE_MS, not shot, now_us)
        self.needles.start(self.dose.zero16, steps, rate, S.head_prime_max16(self.head, self.cfg[S.CFG_FLOW]) if prime else 0)

    def _record_if_dispensed(self, now_us):
        # One DELIVERY per point, emitted the moment the plunger stops.
        seq = self.dose
        if not seq.dispense_done:
            return
        seq.dispense_done = False
        if seq.probe is not None:
            self._measure_compliance(self.metering.nl(seq.dispensed_steps))
        # best estimate: steps pushed, less what the compliant line still held when the plunger
        # stopped (after an occlusion, or at the wheal's back-pressure) and what the stopper's creep took
        # meanwhile: that never reaches the dermis (a shot's creep: its top-up's, not recorded)
        held = seq.stop_kpa * self.compliance_pl + (seq.creep.taken(now_us) if seq.point else 0)
        delivered = self.metering.nl(seq.dispensed_steps) - held // 1000
        if delivered < 0:
            delivered = 0
        flags = self.stop_flags
        if self.syringe not in self.calibration:
            flags |= S.FLAG_UNCALIBRATED  # the table's bore: an estimate (bore +-3 % -> volume +-6 %)
        if seq.interrupted or seq.dispensed_steps < seq.steps:
            flags |= S.FLAG_PARTIAL
        self.dispensed_nl += delivered
        depth = seq.depth_reached_um
        if self.kind != S.KIND_PRIME:
            self.delivered_nl += delivered
            self.done += 1
            # the session is charged what went in, at most the programmed dose (the metering's carried
            # remainder may put one microstep more into this one and less into the next)
            self.session_nl += delivered if delivered < self.point_nl else self.point_nl
        j = self.journal
        t = ticks_ms()
        self.board.wait_steps()  # the plunger still before the flash stalls the CPU (_checkpoint)
        vacuum = self.least_vacuum if self.least_vacuum < 255 else 0
        j.close(flags, delivered, depth, t, vacuum)  # on flash before the host hears of it
        self.emit_delivery(j.o_id, j.o_session, self.point_index, self.kind, flags, self.point_nl, delivered, depth, t,
                           self.syringe, self.channel, j.epoch, vacuum)
        if not flags & S.FLAG_PARTIAL and self.kind != S.KIND_SHOT:
            self._check_needles(now_us)

    @micropython.native  # every pass
    def _checkpoint(self):
        # a point in progress is re-journalled every checkpoint_steps it pushes, so a power cut
        # loses at most that much of the record
        seq = self.dose
        phase = seq.phase
        if self.journal.cur < 0 or not (phase == dosing.DISPENSE or phase == dosing.TOPUP or phase == dosing.SETTLE):
            return
        pushed = seq.plunger.pos - seq.plunger_start
        if pushed >= self.checkpoint_at:
            # Stop-safety while the flash is busy (an erase stalls an RP2040's CPU for 45-400 ms): the
            # plunger is still for the whole write - the pulses handed over are let out first, and no
            # step is issued again before the next pass has read the E-stop and the trigger (tick()
            # reads them before the sequence steps). So a release or E-stop during the write adds no
            # step; the dose pauses instead (the loop's overrun count in STATUS shows it).
            self.board.wait_steps()
            self.journal.checkpoint(self.metering.nl(pushed), seq.depth_um(), ticks_ms(),
                                    self.least_vacuum if self.least_vacuum < 255 else 0)
            self.checkpoint_at = pushed + self.checkpoint_steps

    def _sequence_finished(self, now_us):
        # a shot's top-up left the syringe after its record (dosing._shot_topup): the syringe counts it
        self.dispensed_nl += self.metering.nl(self.dose.shot_topup_steps)
        self.dose.shot_topup_steps = 0
        if self.state == S.STATE_PRIMING:
            if not self.dose.interrupted:
                self.primed_syringe = self.cfg[S.CFG_SYRINGE]
                self.primed_head = self.head
                self._set_path(self.channel)  # flushed: only this channel's drug in the path
            self._set_state(S.STATE_PRIMED if self.primed_syringe else S.STATE_CONFIGURED)
        elif self.state == S.STATE_DELIVERING:
            if self.done >= self.cfg[S.CFG_COUNT]:
                self._end_burst(now_us)
                self._complete()
            elif self.cfg[S.CFG_TECHNIQUE] != S.TECHNIQUE_NAPPAGE:
                self._set_state(S.STATE_ARMED)

    def _complete(self):
        self._set_state(S.STATE_COMPLETE)
        self._end_record(S.END_COMPLETE)

    def _fast_rate(self):
        # take-up and suck-back run at the plunger's speed ceiling (steps/s)
        return self.settings[S.SET_FLOW] * 1000 // self.metering.pl_step + 1

    def _end_burst(self, now_us):
        # nappage shots follow each other without suck-back; the burst's end gets one
        if self.cfg[S.CFG_TECHNIQUE] == S.TECHNIQUE_NAPPAGE:
            self.dose.suck_back(self.suckback_steps, self._fast_rate(), now_us)

    def _end_burst_early(self, now_us):
        # a nappage burst cut short by PAUSE or ABORT still ends with its anti-drip suck-back
        if self.state != S.STATE_DELIVERING or self.cfg[S.CFG_TECHNIQUE] != S.TECHNIQUE_NAPPAGE:
            return
        if self.dose.phase == dosing.RETRACT:
            self.dose.suckback = self.suckback_steps
        elif not self.dose.active():
            self._end_burst(now_us)

    def _set_state(self, new):
        old = self.state
        if new == old:
            return
        self.state = new
        # while delivering, the plunger's forward steps stop in hardware the moment the trigger is up or
        # the E-stop pressed, whatever the loop is doing (a flash erase); the loop stops the dose after
        self.board.plunger_gate(new == S.STATE_DELIVERING)
        # every other move, both axes, stops in hardware on the E-stop too, as the loop stops it - except in
        # FAULT, whose moves (the needle out, the suck-back) the loop makes under a held E-stop. The words
        # already queued keep the gate they were handed over with: the stop path (_stop) waits for them and
        # takes back what they did not send before the state turns FAULT
        self.board.estop_gate(new != S.STATE_FAULT)
        self.board.led(_LED[new])
        self.emit(S.STATE, (old, new, ticks_ms()))

    @micropython.native  # every pass the trigger is held
    def _lag_ms(self):
        # the moves' lag since boot, both axes (dosing.Axis): together when both move at once (a shot's top-up
        # on its way out), so never less than the time lost
        return self.plunger.lag_ms + self.needle.lag_ms

    def status(self, rx_errors, next_event_seq, boot_count, overruns=0, worst_pass_us=0):
        cfg = self.cfg
        return (
            self.state,
            self.alarm,
            1 if self.pressed_ms else 0,  # as the control tick last read it
            cfg[S.CFG_TECHNIQUE] if cfg else 0,
            self.done,
            cfg[S.CFG_COUNT] if cfg else 0,
            self.delivered_nl,
            max(0, self.capacity_nl - self.dispensed_nl),
            self.dose.depth_um(),
            rx_errors & 0xFFFF,
            ticks_ms(),
            min(self.journal.unacked, 0xFFFF),
            next_event_seq,
            boot_count,
            min(overruns, 0xFFFF),
            worst_pass_us,
            self._lag_ms(),
        )
