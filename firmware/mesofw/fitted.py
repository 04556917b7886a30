# Fitted hardware the device identifies by a sensor (the syringe by its clamp, the needle head by its
# ID resistor): the sensor must disagree with the program for hold_ms before it counts - one sample
# is noise, not a swap. Called every control pass: no allocation.
import micropython
from time import ticks_diff, ticks_ms


class Disagreement:
    def __init__(self, hold_ms):
        self.hold_ms = hold_ms
        self.since = 0  # since when the sensor disagrees (0: it agrees)

    @micropython.native  # every sensor read (Device.tick)
    def lasting(self, fits):
        # True once `fits` has been false for hold_ms
        if fits:
            self.since = 0
            return False
        if not self.since:
            self.since = ticks_ms() | 1  # 0 means agreeing: a tick of 0 is taken as 1
            return False
        return ticks_diff(ticks_ms(), self.since) >= self.hold_ms
