# Physical model of the simulated injector (runs inside the board's MicroPython VM).
# A pusher on a lead screw drives the syringe stopper through lost motion (lead-screw
# backlash plus the stopper's breakaway deformation: a play of width play_um); the
# stopper sticks and slips (slip_um of travel held by its ribs until they let go); it is
# compliant (it stores volume under pressure, compliance growing with its area) and creeps
# (a slower share of that compliance); fluid leaves through the needle's Poiseuille
# resistance against the tissue's back-pressure, which grows with the wheal, and some of
# the wheal refluxes along the needle track as it is withdrawn; the bore differs from the
# syringe table (the harness draws it from the makers' nominal, not from the table); the
# pressure sensor has an offset, noise, a lag and a quantum; the needle-depth axis has its
# own lost motion; an end-of-syringe switch. It keeps the ground truth - volume out of
# the needle, needle depth over time - and reports it on the control channel only; the
# firmware sees step counts, switches and the sensed pressure. Ranges and their sources:
# docs/sim-model.md (drawn in host/mesosim/harness.py: imperfections()).
#
# Physical state survives a firmware reset or power cut: the harness keeps the
# last snapshot() and hands it back to the next boot (a motor does not move back
# when the MCU reboots).
import json
import random
from math import exp, pi
from time import ticks_diff, ticks_ms, ticks_us

ENDSTOP_NL = 2000  # the end-of-syringe switch closes 2 uL before the stopper bottoms out
STALL_KPA = 600  # the stepper stalls against this line pressure
PUMP_MAX_KPA = 70.0  # the vacuum pump's best, sealed
VACUUM_TAU_S = 0.08  # the head's chamber draws down with this time constant
LEAK_TAU_S = 0.002  # ...and loses its vacuum this fast once the seal breaks (the gun lifted)
SEAL_LEAK_TAU_S = 2.0  # sealed on the skin with the pump off, it leaks this slowly
NOT_A_POINT_UM = 50  # a needle excursion shallower than this with no flow is not a penetration (MIN_DEPTH_UM is 500)
WATER_MPA_S = 1.0  # viscosity of water at 20 C; drug solutions are given as a multiple of it
# needle inner diameters (um) of regular-wall hypodermic tubing by gauge (ISO 9626:2016, table 1, nominal)
NEEDLE_ID_UM = {27: 210, 28: 184, 29: 184, 30: 159, 31: 133, 32: 108, 33: 108}
HUB_KPA_S_PER_NL = 0.0002  # hub, Luer cone and entry losses, in series with the lumen
# A ratiometric gauge sensor's output at ambient is 0.5 V, not 0 V: it reads below ambient (its zero offset,
# negative noise) down to its output's floor; the ADC sees it there (board_stepdir: 333 mV at 0 kPa, a wire
# open under 150 mV). Clamping at 0 kPa hid a negative offset's worth of the line's pressure (a 9-needle
# head's 2-5 kPa flow pressure behind a -3 kPa offset).
SENSOR_FLOOR_KPA = -40.0


def poiseuille_kpa_s_per_nl(gauge, length_mm, viscosity_mpa_s):
    # R = 128 mu L / (pi d^4) for laminar flow in the lumen (Re << 100 at these flows), plus the hub
    d_m = NEEDLE_ID_UM.get(gauge, 159) * 1e-6
    r_pa_s_m3 = 128 * viscosity_mpa_s * 1e-3 * length_mm * 1e-3 / (pi * d_m ** 4)
    return r_pa_s_m3 * 1e-15 + HUB_KPA_S_PER_NL  # Pa s/m^3 -> kPa s/nL: x 1e-3 (kPa) x 1e-12 (nL)


def stopper_area_mm2(diameter_um):
    return pi * diameter_um * diameter_um / 4000000


class PressureSensor:
    # A line-pressure sensor as the firmware reads it: first-order lag (its RC filter), a zero
    # offset, white noise and a quantum (ADC LSB). advance() runs with the model; read() per read.
    def __init__(self, profile):
        self.offset = profile.get("sensor_offset_kpa", 0.0)
        self.noise = profile.get("sensor_noise_kpa", 0.0)  # standard deviation
        self.lag_s = profile.get("sensor_lag_ms", 0.0) / 1000
        self.lsb = profile.get("sensor_lsb_kpa", 1.0)
        self.rng = random.Random(profile.get("sensor_seed", 1)) if hasattr(random, "Random") else random
        if self.rng is random:
            random.seed(profile.get("sensor_seed", 1))
        self.sensed = 0.0  # the filtered pressure

    def advance(self, p_kpa, dt, end_kpa=None):
        # p_kpa: the line's mean over the interval dt; end_kpa: the line at its end. An interval of 5 lags
        # or more leaves the filter at the line's pressure now (a long interval's mean is not it: the
        # line discharged early in it, a read after a held-up pass saw half the stale pressure)
        if self.lag_s <= 0 or dt >= 5 * self.lag_s:
            self.sensed = p_kpa if end_kpa is None else end_kpa
        else:
            self.sensed += (p_kpa - self.sensed) * (1 - exp(-dt / self.lag_s))

    def read(self):
        # triangular noise (two uniforms), the same standard deviation as the Gaussian it stands for
        n = (self.rng.random() + self.rng.random() - 1) * 2.449 * self.noise if self.noise else 0.0
        v = self.sensed + self.offset + n
        if v < SENSOR_FLOOR_KPA:
            v = SENSOR_FLOOR_KPA
        # rounded to the quantum (shifted positive first: int() truncates towards zero)
        q = int(v / self.lsb + 0.5 - SENSOR_FLOOR_KPA / self.lsb) + int(SENSOR_FLOOR_KPA / self.lsb)
        return q * self.lsb


def clock_us():
    # The board clock as a plain int, for ground truth and snapshots: the harness reads the
    # same clock. The stubs keep ticks opaque; on the unix port they are ints.
    return ticks_us()


def clock_ms():
    # the millisecond clock the firmware stamps records with, as a plain int too
    return ticks_ms()


class Model:
    def __init__(self, profile, report):
        # report(msg): send a ground-truth message to the harness (board_ctrl.py's FROM_BOARD)
        self.report = report
        self.steps_per_mm = profile["plunger_steps_per_mm"]
        self.diameter_error = profile.get("diameter_error", 0.0)
        self.nl_per_step = self._nl_per_step(profile["diameter_um"])
        self.barrel_um = profile.get("barrel_um", 0)  # the loaded syringe's outer diameter: the clamp closes on it
        self.um_per_needle_step = 1000.0 / profile["needle_steps_per_mm"]
        self.diameter_um = profile["diameter_um"]
        # per mm^2 of stopper face (drawn), unless a fixed compliance is pinned
        self.compliance_per_mm2 = 0.0 if "compliance_nl_per_kpa" in profile else profile.get("compliance_nl_per_kpa_mm2", 0.0)
        self.compliance = self._compliance(profile.get("compliance_nl_per_kpa", 1.0))
        self.creep_share = profile.get("creep_share", 0.0)  # creep compliance / instant compliance
        self.creep_s = profile.get("creep_ms", 500) / 1000
        self.pen_creep0 = 0.0  # creep_nl as the needle entered (a penetration's report: what the creep took meanwhile)
        self.creep_nl = 0.0  # volume taken by the stopper's creep at this pressure
        self.slip_steps = profile.get("slip_um", 0.0) * profile["plunger_steps_per_mm"] / 1000
        self.stick_steps = 0.0  # pusher travel held in the stopper's ribs until they slip
        self.resistance = self._resistance(profile)
        self.reflux_at_1mm = profile.get("reflux_share_at_1mm", 0.0)  # of the wheal, back out along the track
        self.needle_play_um = profile.get("needle_play_um", 0.0)
        self.carriage_um = 0.0  # the needle actuator's side of its lost motion; depth_um is the tip's
        self.sensor = PressureSensor(profile)
        self.tissue = profile.get("tissue_kpa_per_ul", 0.0)  # back-pressure of the growing wheal
        self.play_steps = profile.get("play_um", 0.0) * profile["plunger_steps_per_mm"] / 1000
        self.gap = 0.0  # pusher - stopper, in steps: 0 = pulling contact, play_steps = pushing contact
        self.tip_nl = 0.0  # fluid drawn back into the needle by a suck-back, refilled first
        self.content_nl = profile["content_nl"]
        self.occlusion = 1.0  # resistance multiplier; large = occluded
        self.occlusion_ramp = 0.0  # per second, for a gradual occlusion
        self.stored_nl = 0.0  # volume held by the compliant stopper (pressure = stored / C)
        self.out_nl = 0.0  # out of the needle since the board was built
        self.air_nl = 0.0  # of which with the needle out of the skin (priming): what the balance weighs
        # a gravimetric rig: the gun fires into a vessel on the balance, no skin (every shot is weighed)
        self.skin = not profile.get("vessel", False)
        self.depth_um = 0.0
        self.pen_t0 = 0
        self.pen_nl = 0.0
        self.pen_max_um = 0.0
        self.penetrations = 0
        self.last_step_us = 0  # last plunger step that moved fluid forward
        self.forward_steps = 0  # plunger steps forward since this boot (pusher pulses, play included)
        self.stalled = False
        self.moved = True  # physical state changed since the last snapshot()
        self.pending_nl = 0.0  # pushed by the last steps, not yet moved
        self.q_in = 0.0
        self.last_call_us = 0
        self.t = ticks_us()
        # the needle head (spec.HEADS): its ID voltage, its dead volume, each needle's relative conductance
        # (1.0 nominal; a needle's bore spread, a blockage): flow splits over the needles by conductance,
        # and the line sees them in parallel. The board's first head comes filled (as before heads);
        # a head fitted later (fit_head) is dry until a prime fills its dead volume.
        self.head_mv = profile.get("head_mv", 300)
        self.head_dead_nl = float(profile.get("head_dead_nl", 0.0))
        self.head_fill_nl = self.head_dead_nl
        self.head_g0 = list(profile.get("head_g", [1.0]))  # as made
        self.head_g = list(self.head_g0)  # as it is now (block_needle)
        self.needle_out_nl = [0.0] * len(self.head_g)  # out of each needle since the board was built
        self.pen_needles_nl = [0.0] * len(self.head_g)  # out of each needle into this penetration
        # skin contact: the operator holds the gun on the skin (contact switch closed, a vacuum head sealed);
        # the pump draws the sealed chamber towards PUMP_MAX_KPA, a broken seal leaks it at once
        self.contact = True
        self.pump = False
        self.vacuum_kpa = 0.0
        # two drugs: channel 2 is a second syringe on its own plunger (the board steps the channel the firmware
        # selected), its line joined to channel 1's in a Y-piece with check valves before the head. The line
        # after the Y-piece (its compliance, the head) is shared. The path is plug flow: the drug nearest the
        # tip (path_front, path_front_nl of it) leaves first, then the drug behind it (path_back: the last
        # channel that pushed; 3 = both, a front of mixed fluid). Ground truth per channel: what left the
        # needles (drug_out_nl) and into the skin (drug_skin_nl); wrong_nl: into the skin while the plunger
        # pushing was another channel's than the drug leaving (a dose of one drug that gave the other).
        self.channel = 1
        self.parked = [None, None, [self.content_nl, self.barrel_um, self.nl_per_step, self.diameter_um, 0.0, 0.0]]
        self.path_front = self.path_back = 1  # the board's first head comes filled with channel 1's drug
        self.path_front_nl = 0.0
        self.drug_out_nl = [0.0, 0.0, 0.0, 0.0]  # by drug: -, channel 1, channel 2, mixed
        self.drug_skin_nl = [0.0, 0.0, 0.0, 0.0]
        self.wrong_nl = 0.0
        self.switch_moving = 0  # channel changes while a plunger's steps were still moving fluid or the needle was in
        state = profile.get("state")
        if state:
            self.restore(state)

    def _compliance(self, fixed):
        # a stopper's compliance grows with its area (its face bulges; the barrel's hoop strain too)
        if self.compliance_per_mm2:
            return self.compliance_per_mm2 * stopper_area_mm2(self.diameter_um)
        return fixed

    def _resistance(self, profile):
        if "resistance_kpa_s_per_nl" in profile:
            return profile["resistance_kpa_s_per_nl"]
        return poiseuille_kpa_s_per_nl(profile.get("needle_gauge", 30), profile.get("needle_length_mm", 4),
                                       profile.get("viscosity_mpa_s", WATER_MPA_S))

    def _nl_per_step(self, diameter_um):
        diameter_mm = diameter_um * (1 + self.diameter_error) / 1000
        area_mm2 = 3.14159265358979 * diameter_mm * diameter_mm / 4
        return area_mm2 * (1.0 / self.steps_per_mm) * 1000  # mm^3 is uL; x1000 -> nL per microstep

    def load(self, diameter_um, content_nl, barrel_um):
        # another syringe in the clamp (full, its own bore): the pusher is off its stopper again
        self.nl_per_step = self._nl_per_step(diameter_um)
        self.diameter_um = diameter_um
        self.compliance = self._compliance(self.compliance)
        self.content_nl = content_nl
        self.barrel_um = barrel_um
        self.pending_nl = self.stored_nl = self.tip_nl = self.creep_nl = 0.0
        self.gap = self.stick_steps = 0.0
        self.moved = True

    def select(self, channel):
        # the board's plunger steps, clamp sensor and stroke end switch over to that channel's syringe
        if channel == self.channel:
            return
        self.advance(clock_us())
        if self.pending_nl > 0.001 or self.depth_um > 0:
            self.switch_moving += 1
        mine = [self.content_nl, self.barrel_um, self.nl_per_step, self.diameter_um, self.gap, self.stick_steps]
        (self.content_nl, self.barrel_um, self.nl_per_step, self.diameter_um, self.gap,
         self.stick_steps) = self.parked[channel]
        self.parked[self.channel] = mine
        self.parked[channel] = None  # live in the fields now
        self.channel = channel
        self.moved = True

    def load_channel(self, channel, diameter_um, content_nl, barrel_um):
        # another syringe in that channel's clamp (load() for the selected one)
        if channel == self.channel:
            return self.load(diameter_um, content_nl, barrel_um)
        self.parked[channel] = [content_nl, barrel_um, self._nl_per_step(diameter_um), diameter_um, 0.0, 0.0]
        self.moved = True

    def _drugs_out(self, flow):
        # plug flow through the head's path: which drug this flow out of the needles is (ground truth)
        if not self.path_back:  # a dry head: this channel filled it
            self.path_front = self.path_back = self.channel
        if self.channel != self.path_back:  # the path so far is what the other channel pushed in
            mixed = self.path_front_nl > 0 and self.path_front != self.path_back
            self.path_front = 3 if mixed else self.path_back
            self.path_front_nl = self.head_fill_nl
            self.path_back = self.channel
        front = min(flow, self.path_front_nl)
        self.path_front_nl -= front
        skin = self.depth_um > 0 and self.skin
        for drug, nl in ((self.path_front, front), (self.path_back, flow - front)):
            if nl > 0:
                self.drug_out_nl[drug] += nl
                if skin:
                    self.drug_skin_nl[drug] += nl
                    if drug != self.channel:
                        self.wrong_nl += nl

    def drug_truth(self):
        contents = [0.0, 0.0, 0.0]
        for ch in (1, 2):
            parked = self.parked[ch]
            contents[ch] = parked[0] if parked else self.content_nl - self.pending_nl
        return {"kind": "drug_truth", "channel": self.channel, "path_front": self.path_front,
                "front_nl": round(self.path_front_nl, 3), "path_back": self.path_back,
                "out_nl": [round(v, 3) for v in self.drug_out_nl], "skin_nl": [round(v, 3) for v in self.drug_skin_nl],
                "content_nl": [round(v, 3) for v in contents], "wrong_nl": round(self.wrong_nl, 3),
                "switch_moving": self.switch_moving}

    def fit_head(self, id_mv, dead_nl, conductance):
        # another head on the gun: dry, its own needles
        self.path_front_nl = 0.0
        self.path_front = self.path_back = 0
        self.head_mv = id_mv
        self.head_dead_nl = float(dead_nl)
        self.head_fill_nl = 0.0
        self.head_g0 = list(conductance)
        self.head_g = list(conductance)
        self.needle_out_nl = [0.0] * len(conductance)
        self.pen_needles_nl = [0.0] * len(conductance)
        self.moved = True

    def block_needle(self, needle, factor):
        # needle's flow resistance x factor (1: clear again; large: blocked)
        self.head_g[needle] = self.head_g0[needle] / factor
        self.moved = True

    def _vacuum(self, dt):
        # first-order: the pump draws the sealed chamber down (VACUUM_TAU_S); off the skin it leaks (LEAK_TAU_S)
        if self.contact and self.pump:
            target, tau = PUMP_MAX_KPA, VACUUM_TAU_S
        else:  # sealed on the skin it holds (a slow leak); lifted, it is gone in a few ms
            target, tau = 0.0, SEAL_LEAK_TAU_S if self.contact else LEAK_TAU_S
        x = dt / tau
        self.vacuum_kpa += (target - self.vacuum_kpa) * (1 - exp(-x) if x > 1e-4 else x)

    def _head_conductance(self):
        return sum(self.head_g)

    def _to_needles(self, flow):
        # what leaves the syringe fills the head's dead volume first, then splits over its needles
        fill = min(flow, self.head_dead_nl - self.head_fill_nl)
        if fill > 0:
            self.head_fill_nl += fill
            flow -= fill
        if flow > 0:
            g = self._head_conductance()
            for i in range(len(self.head_g)):
                share = flow * self.head_g[i] / g
                self.needle_out_nl[i] += share
                self.pen_needles_nl[i] += share
        return flow

    def head_truth(self):
        return {"kind": "head_truth", "id_mv": self.head_mv, "dead_nl": self.head_dead_nl,
                "vacuum_kpa": round(self.vacuum_kpa, 1), "pump": self.pump,
                "fill_nl": round(self.head_fill_nl, 3), "needles_nl": [round(v, 3) for v in self.needle_out_nl]}

    # ---- physics ------------------------------------------------------------------
    def pressure_kpa(self):
        return self.stored_nl / self.compliance

    def sensed_kpa(self):
        # what the firmware's pressure sensor reads
        return self.sensor.read()

    def _creep(self, dt):
        # the stopper's slow share of compliance follows the pressure with its own time constant,
        # taking volume from the line as pressure holds and giving it back as it falls
        if not self.creep_share:
            return
        target = self.creep_share * self.stored_nl
        x = dt / self.creep_s
        d = (target - self.creep_nl) * (x if x < 0.05 else 1 - exp(-x))
        if d > self.stored_nl:
            d = self.stored_nl
        self.creep_nl += d
        self.stored_nl -= d

    def advance(self, now):
        # The stepper pushes the steps it was last given over the following moment
        # (as a driver spreads a batch of pulses), while the stored volume discharges
        # through the needle towards the wheal's back-pressure: dV/dt = q - (V - rest)/tau.
        dt = ticks_diff(now, self.t) / 1000000
        self.t = now  # (an earlier time too: a clock set anew, the emulated chip's at boot, is followed from there)
        if dt <= 0:
            return
        if self.occlusion_ramp:
            self.occlusion += self.occlusion_ramp * dt
        if self.pump or self.vacuum_kpa > 0.01:
            self._vacuum(dt)
        push = min(self.pending_nl, self.q_in * dt)
        if push > 0:
            if self.pressure_kpa() >= STALL_KPA:
                self.stalled = True  # the driver's stall detection (StallGuard) reports it
                self.pending_nl = 0.0  # the motor skips these steps against the blockage
                push = 0.0
            else:
                push = min(push, self.content_nl)  # the stopper bottoms out
                self.pending_nl -= push
                self.content_nl -= push
        g = self._head_conductance()  # the needles in parallel; each raises its own wheal
        tau = self.resistance * self.occlusion * self.compliance / g
        rest = self.compliance * self.tissue * self.pen_nl / 1000 / g if self.depth_um > 0 and self.skin else 0.0
        x = dt / tau
        k = 1 - exp(-x) if x > 1e-4 else x - x * x / 2  # 1 - e^-x without cancellation
        v0 = self.stored_nl
        target = rest + push / dt * tau  # where the line heads while this push lasts
        v = v0 + (target - v0) * k
        free = v
        if v < rest + 0.001 and v0 + push >= rest:
            v = max(rest, 0.0)  # discharged: stop the exponential tail at 1 pL
        if v > v0 + push:
            v = v0 + push  # below the back-pressure nothing flows back in from the tissue
        flow = v0 + push - v
        if flow or push:
            self.moved = True
        # the interval's mean drives the sensor's filter: the exponential's own mean (from v0 towards the target
        # v - the push's rate x tau above the rest - it nears), not the ends' average - the line settles within tau
        # (0.1-0.3 ms on a multi-needle head), so over a pass-long interval that began low (a batch's gap) the
        # ends' average read it up to half a flow pressure low, by as much as how the pass's reads and steps cut
        # the time: the prime's and a point's flow figures 1-3 % apart (#17)
        mean = target + (v0 - target) * k / x if x >= 1e-3 and v == free else (v0 + v) / 2
        self.stored_nl = v
        self._creep(dt)
        end = self.stored_nl / self.compliance
        self.sensor.advance(mean / self.compliance, dt, end)
        refill = min(flow, self.tip_nl)  # first the needle refills what a suck-back drew in
        self.tip_nl -= refill
        flow -= refill
        flow = self._to_needles(flow)
        if flow > 0:
            self._drugs_out(flow)
        self.out_nl += flow
        if self.depth_um > 0 and self.skin:
            self.pen_nl += flow
        else:
            self.air_nl += flow

    def plunger(self, n):
        now = clock_us()
        self.advance(now)
        # lost motion: the stopper moves only once the pusher has crossed the play
        gap = self.gap + n
        moved = 0.0
        if gap > self.play_steps:
            moved = gap - self.play_steps
            gap = self.play_steps
        elif gap < 0:
            moved = gap
            gap = 0.0
        self.gap = gap
        self.moved = True
        if n > 0:
            self.forward_steps += n
        moved = self._stick_slip(moved)
        volume = moved * self.nl_per_step
        interval = ticks_diff(now, self.last_call_us) / 1000000
        self.last_call_us = now
        if volume > 0:
            self.pending_nl += volume
            self.q_in = self.pending_nl / min(max(interval, 0.0005), 0.002)
            self.last_step_us = now
        elif volume < 0:  # pulled back: first the pressure goes, then fluid is drawn back into the needle
            # the last forward steps' volume still being pushed went in first (a driver lets its pulses out before
            # the DIR change): into the line now. (It was dropped from the push and added to the content, which
            # still held it: steps counted with no fluid, and a syringe fuller than it was.)
            self.content_nl -= self.pending_nl
            self.stored_nl += self.pending_nl
            self.pending_nl = 0.0
            back = -volume
            relieved = min(back, self.stored_nl)
            self.stored_nl -= relieved
            self.tip_nl += back - relieved
            self.content_nl += back

    def _stick_slip(self, moved):
        # The stopper's ribs hold the pusher's travel (static friction) until it reaches slip_steps,
        # then let the stopper jump; pulling back releases what they hold first.
        if not self.slip_steps or moved == 0:
            return moved
        held = self.stick_steps + moved
        if held < 0:
            self.stick_steps = 0.0
            return held
        if held >= self.slip_steps:
            self.stick_steps = 0.0
            return held
        self.stick_steps = held
        return 0.0

    def needle(self, n):
        self.advance(ticks_us())
        was_in = self.depth_um > 0
        self._needle_lost_motion(n * self.um_per_needle_step)
        self.moved = True
        if self.depth_um > self.pen_max_um:
            self.pen_max_um = self.depth_um
        inside = self.depth_um > 0
        if inside and not was_in:
            self.pen_t0 = clock_us()
            self.pen_nl = 0.0
            self.pen_max_um = self.depth_um
            self.pen_creep0 = self.creep_nl
            for i in range(len(self.pen_needles_nl)):
                self.pen_needles_nl[i] = 0.0
        elif was_in and not inside and self.pen_max_um < NOT_A_POINT_UM:
            # the firmware measuring the axis's play at boot: the tip barely left home (10 um, not through the
            # stratum corneum), no point; after a power cut mid-point the line still drips as it does (its
            # pressure was never relieved), onto the skin, not into it
            self.air_nl += self.pen_nl
            self.pen_nl = 0.0
        elif was_in and not inside:
            self.penetrations += 1
            # the exit also on the millisecond clock records are stamped with (ticks_ms and
            # ticks_us wrap apart on a 32-bit port: a record's time cannot be turned into us)
            self.report({"kind": "pen", "t0_us": self.pen_t0, "t1_us": clock_us(), "volume_nl": round(self.pen_nl, 3),
                         "max_depth_um": round(self.pen_max_um, 1), "t1_ms": clock_ms(),
                         "reflux_nl": round(self._reflux_nl(), 3),
                         "creep_nl": round(self.creep_nl - self.pen_creep0, 3)})
            self.report({"kind": "pen_needles", "t1_us": clock_us(),
                         "volumes_nl": [round(v, 3) for v in self.pen_needles_nl]})

    def _needle_lost_motion(self, d_um):
        # The needle tip follows its carriage within a play (lead-screw backlash, the hub's seat): going
        # in it trails the carriage by needle_play_um, coming out it is pulled back with it; the home
        # stop holds the tip at 0 (and the carriage with it: the motor skips against the stop).
        c = self.carriage_um + d_um
        tip = self.depth_um
        if c < tip:
            tip = c
        elif c - self.needle_play_um > tip:
            tip = c - self.needle_play_um
        if tip < 0:
            tip = 0.0
            c = c if c > 0 else 0.0
        self.carriage_um = c
        self.depth_um = tip

    def _reflux_nl(self):
        # wheal fluid that escapes back along the needle track as the needle leaves: a share of the
        # wheal, the larger the shallower the point (reported apart: it left the needle in the skin)
        if not self.reflux_at_1mm or self.pen_max_um <= 0:
            return 0.0
        share = self.reflux_at_1mm * 1000 / max(self.pen_max_um, 250.0)
        return self.pen_nl * (share if share < 0.5 else 0.5)

    def at_end(self):
        return self.content_nl - self.pending_nl <= ENDSTOP_NL

    # ---- ground truth and persistence ------------------------------------------------------
    def truth(self):
        return {"kind": "truth", "out_nl": round(self.out_nl, 3), "air_nl": round(self.air_nl, 3),
                "depth_um": round(self.depth_um, 1), "penetrations": self.penetrations,
                "content_nl": round(self.content_nl - self.pending_nl, 3), "pressure_kpa": round(self.pressure_kpa(), 1),
                "last_step_us": self.last_step_us, "now_us": clock_us(), "forward_steps": self.forward_steps,
                "gap": round(self.gap, 1), "tip_nl": round(self.tip_nl, 3), "stored_nl": round(self.stored_nl, 3)}

    def probe_truth(self):
        # the line as a prime's compliance probe should have found it (board.compliance_measured's report)
        return {"kind": "probe", "true_pl": round(self.compliance * 1000), "true_lag_us": round(self.sensor.lag_s * 1e6),
                "true_tau_us": round(self.resistance * self.occlusion * self.compliance / self._head_conductance() * 1e6)}

    _FIELDS = ("content_nl", "stored_nl", "out_nl", "air_nl", "depth_um", "pen_t0", "pen_nl", "pen_max_um",
               "penetrations", "occlusion", "occlusion_ramp", "last_step_us", "gap", "tip_nl",
               "nl_per_step", "barrel_um", "head_mv", "head_dead_nl", "head_fill_nl", "head_g0", "head_g",
               "needle_out_nl", "pen_needles_nl", "contact", "creep_nl", "pen_creep0", "stick_steps", "carriage_um",
               "diameter_um", "compliance",
               "channel", "parked", "path_front", "path_back", "path_front_nl", "drug_out_nl", "drug_skin_nl", "wrong_nl",
               "switch_moving")

    def snapshot(self):
        # the "snap" message: the harness keeps state (opaque to it) and hands it to the next boot
        self.moved = False
        return {"kind": "snap", "air_nl": self.air_nl, "state": {k: getattr(self, k) for k in self._FIELDS}}

    def restore(self, state):
        # state: the JSON text of the last snapshot's state, as the harness hands it back
        state = json.loads(state)
        for k in self._FIELDS:
            if k in state:
                setattr(self, k, state[k])
        # the head fitted since this board was built (fit_head) came back with its needles: the per-needle
        # tallies follow its count (a snapshot of before the per-penetration one existed has none)
        n = len(self.head_g)
        if len(self.pen_needles_nl) != n:
            self.pen_needles_nl = [0.0] * n
