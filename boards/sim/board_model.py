# Physical model of the simulated injector (runs inside the board's MicroPython VM).
# Plunger on a lead screw pushing a syringe, needle-depth actuator. It keeps the
# ground truth - volume out of the needle, needle depth over time - and reports it
# on the control channel only; the firmware sees step counts, never this.
from time import ticks_us


class Model:
    def __init__(self, profile, report):
        # report(line): send a ground-truth line to the harness
        self.report = report
        diameter_mm = profile["diameter_um"] * (1 + profile.get("diameter_error", 0.0)) / 1000
        area_mm2 = 3.14159265358979 * diameter_mm * diameter_mm / 4
        # mm^3 is uL; x1000 -> nL per microstep
        self.nl_per_step = area_mm2 * (1.0 / profile["plunger_steps_per_mm"]) * 1000
        self.um_per_needle_step = 1000.0 / profile["needle_steps_per_mm"]
        self.content_nl = profile["content_nl"]
        self.out_nl = 0.0  # out of the needle since boot
        self.air_nl = 0.0  # of which with the needle out of the skin (priming)
        self.depth_um = 0.0
        self.pen_t0 = 0
        self.pen_nl = 0.0
        self.pen_max_um = 0.0
        self.penetrations = 0

    def plunger(self, n):
        volume = n * self.nl_per_step
        if volume > self.content_nl:
            volume = self.content_nl  # the stopper bottoms out
        self.content_nl -= volume
        self.out_nl += volume
        if self.depth_um > 0:
            self.pen_nl += volume
        else:
            self.air_nl += volume

    def needle(self, n):
        was_in = self.depth_um > 0
        self.depth_um += n * self.um_per_needle_step
        if self.depth_um < 0:
            self.depth_um = 0.0  # retracted against the home stop
        if self.depth_um > self.pen_max_um:
            self.pen_max_um = self.depth_um
        inside = self.depth_um > 0
        if inside and not was_in:
            self.pen_t0 = ticks_us()
            self.pen_nl = 0.0
            self.pen_max_um = self.depth_um
        elif was_in and not inside:
            self.penetrations += 1
            self.report("pen %d %d %.3f %.1f" % (self.pen_t0, ticks_us(), self.pen_nl, self.pen_max_um))

    def truth(self):
        return "truth %.3f %.3f %.1f %d %.3f" % (self.out_nl, self.air_nl, self.depth_um, self.penetrations, self.content_nl)
