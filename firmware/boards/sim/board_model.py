# Physical model of the simulated injector (runs inside the board's MicroPython VM).
# A pusher on a lead screw drives the syringe stopper through lost motion (lead-screw
# backlash plus the stopper's breakaway deformation: a play of width play_um); the
# stopper is compliant (it stores volume under pressure); fluid leaves through the
# needle's resistance against the tissue's back-pressure, which grows with the wheal;
# the bore differs from the syringe table by diameter_error until calibrated; a
# needle-depth actuator; an end-of-syringe switch. It keeps the ground truth -
# volume out of the needle, needle depth over time - and reports it on the
# control channel only; the firmware sees step counts, switches and pressure.
#
# Physical state survives a firmware reset or power cut: the harness keeps the
# last snapshot() and hands it back to the next boot (a motor does not move back
# when the MCU reboots).
import json
from math import exp
from time import ticks_diff, ticks_ms, ticks_us

ENDSTOP_NL = 2000  # the end-of-syringe switch closes 2 uL before the stopper bottoms out
STALL_KPA = 600  # the stepper stalls against this line pressure
PUMP_MAX_KPA = 70.0  # the vacuum pump's best, sealed
VACUUM_TAU_S = 0.08  # the head's chamber draws down with this time constant
LEAK_TAU_S = 0.002  # ...and loses its vacuum this fast once the seal breaks (the gun lifted)
SEAL_LEAK_TAU_S = 2.0  # sealed on the skin with the pump off, it leaks this slowly


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
        self.compliance = profile.get("compliance_nl_per_kpa", 1.0)
        self.resistance = profile.get("resistance_kpa_s_per_nl", 0.0012)  # ~60 kPa at 50 uL/s
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
        state = profile.get("state")
        if state:
            self.restore(state)

    def _nl_per_step(self, diameter_um):
        diameter_mm = diameter_um * (1 + self.diameter_error) / 1000
        area_mm2 = 3.14159265358979 * diameter_mm * diameter_mm / 4
        return area_mm2 * (1.0 / self.steps_per_mm) * 1000  # mm^3 is uL; x1000 -> nL per microstep

    def load(self, diameter_um, content_nl, barrel_um):
        # another syringe in the clamp (full, its own bore): the pusher is off its stopper again
        self.nl_per_step = self._nl_per_step(diameter_um)
        self.content_nl = content_nl
        self.barrel_um = barrel_um
        self.pending_nl = self.stored_nl = self.tip_nl = 0.0
        self.gap = 0.0
        self.moved = True

    def fit_head(self, id_mv, dead_nl, conductance):
        # another head on the gun: dry, its own needles
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

    def advance(self, now):
        # The stepper pushes the steps it was last given over the following moment
        # (as a driver spreads a batch of pulses), while the stored volume discharges
        # through the needle towards the wheal's back-pressure: dV/dt = q - (V - rest)/tau.
        dt = ticks_diff(now, self.t) / 1000000
        self.t = now
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
        v = v0 + (rest - v0) * k + push / dt * tau * k
        if v < rest + 0.001 and v0 + push >= rest:
            v = max(rest, 0.0)  # discharged: stop the exponential tail at 1 pL
        if v > v0 + push:
            v = v0 + push  # below the back-pressure nothing flows back in from the tissue
        flow = v0 + push - v
        if flow or push:
            self.moved = True
        self.stored_nl = v
        refill = min(flow, self.tip_nl)  # first the needle refills what a suck-back drew in
        self.tip_nl -= refill
        flow -= refill
        flow = self._to_needles(flow)
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
        volume = moved * self.nl_per_step
        interval = ticks_diff(now, self.last_call_us) / 1000000
        self.last_call_us = now
        if volume > 0:
            self.pending_nl += volume
            self.q_in = self.pending_nl / min(max(interval, 0.0005), 0.002)
            self.last_step_us = now
        elif volume < 0:  # pulled back: first the pressure goes, then fluid is drawn back into the needle
            self.content_nl += self.pending_nl
            self.pending_nl = 0.0
            back = -volume
            relieved = min(back, self.stored_nl)
            self.stored_nl -= relieved
            self.tip_nl += back - relieved
            self.content_nl += back

    def needle(self, n):
        self.advance(ticks_us())
        was_in = self.depth_um > 0
        self.depth_um += n * self.um_per_needle_step
        self.moved = True
        if self.depth_um < 0:
            self.depth_um = 0.0  # retracted against the home stop
        if self.depth_um > self.pen_max_um:
            self.pen_max_um = self.depth_um
        inside = self.depth_um > 0
        if inside and not was_in:
            self.pen_t0 = clock_us()
            self.pen_nl = 0.0
            self.pen_max_um = self.depth_um
            for i in range(len(self.pen_needles_nl)):
                self.pen_needles_nl[i] = 0.0
        elif was_in and not inside:
            self.penetrations += 1
            # the exit also on the millisecond clock records are stamped with (ticks_ms and
            # ticks_us wrap apart on a 32-bit port: a record's time cannot be turned into us)
            self.report({"kind": "pen", "t0_us": self.pen_t0, "t1_us": clock_us(), "volume_nl": round(self.pen_nl, 3),
                         "max_depth_um": round(self.pen_max_um, 1), "t1_ms": clock_ms()})
            self.report({"kind": "pen_needles", "t1_us": clock_us(),
                         "volumes_nl": [round(v, 3) for v in self.pen_needles_nl]})

    def at_end(self):
        return self.content_nl - self.pending_nl <= ENDSTOP_NL

    # ---- ground truth and persistence ------------------------------------------------------
    def truth(self):
        return {"kind": "truth", "out_nl": round(self.out_nl, 3), "air_nl": round(self.air_nl, 3),
                "depth_um": round(self.depth_um, 1), "penetrations": self.penetrations,
                "content_nl": round(self.content_nl - self.pending_nl, 3), "pressure_kpa": round(self.pressure_kpa(), 1),
                "last_step_us": self.last_step_us, "now_us": clock_us(), "forward_steps": self.forward_steps}

    _FIELDS = ("content_nl", "stored_nl", "out_nl", "air_nl", "depth_um", "pen_t0", "pen_nl", "pen_max_um",
               "penetrations", "occlusion", "occlusion_ramp", "last_step_us", "gap", "tip_nl",
               "nl_per_step", "barrel_um", "head_mv", "head_dead_nl", "head_fill_nl", "head_g0", "head_g",
               "needle_out_nl", "contact")

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
