# Step pulses from the ESP32 RMT peripheral: the control tick hands over a count and the RMT
# spreads that many pulses evenly over 80 % of the next millisecond. The pulse trains are built
# once at start-up (one per count), so a tick allocates nothing.
import esp32
from machine import Pin
from time import sleep_us

MAX_PER_TICK = 64  # more than the plunger's top speed needs (100 uL/s in a 1 mL syringe: ~18)
SPREAD_US = 800
DIR_SETUP_US = 2


def _trains():
    trains: list = [()]
    for n in range(1, MAX_PER_TICK + 1):
        half = max(SPREAD_US // (2 * n), 1)
        trains.append((half, half) * n)  # high, low, ... in RMT ticks of 1 us
    return trains


_TRAINS = _trains()


class RmtStepDir:
    # The StepDir interface (board_stepdir.py): step(n), n signed. Every step asked for is
    # issued: a count above MAX_PER_TICK (a tick catching up after a stall) goes out as more
    # trains, one after the other, never dropped (the caller has already counted them).
    #
    # The gates (the Pico's PIO gates, board_steppio.py, as far as an RMT can): the RMT cannot read a pin, so
    # the driver reads the trigger and the E-stop itself right before it starts each train, and a train is at
    # most 0.8 ms with nothing queued behind it. A release or an E-stop is therefore followed by at most the
    # train already on the pin, however slow the loop - and during a flash write the CPU starts none. gate: set
    # True (plunger_gate) and the + steps stop when the trigger is up or the E-stop pressed; estop_gate: set True
    # and every step stops when the E-stop is pressed. unsent() gives back, signed, the steps kept off the pin.

    def __init__(self, step_pin, dir_pin, invert, channel, trigger_pin, estop_pin):
        self._dir = Pin(dir_pin, Pin.OUT, value=0)
        self._invert = invert
        self._sign = 0
        self._unsent = 0
        self._trigger = Pin(trigger_pin, Pin.IN, Pin.PULL_UP)  # 1 = up (the raw pin: no debounce to wait for)
        self._estop = Pin(estop_pin, Pin.IN, Pin.PULL_UP)  # 1 = pressed, or a cut wire
        self.gate = False
        self.estop_gate = False  # off until the device sets it: the boot's homing runs before it
        self._rmt = esp32.RMT(channel, pin=Pin(step_pin, Pin.OUT, value=0), clock_div=80)  # 1 us resolution

    def step(self, n):
        if not n:
            return
        sign = 1 if n > 0 else -1
        left = n * sign
        if sign != self._sign:
            self._rmt.wait_done(timeout=2)  # the last tick's train has ended by now
            self._dir.value((sign > 0) != self._invert)
            self._sign = sign
            sleep_us(DIR_SETUP_US)
        while left:
            count = min(left, MAX_PER_TICK)
            self._rmt.wait_done(timeout=2)  # a train at a time
            if (self.estop_gate or self.gate and sign > 0) and self._closed(sign):
                self._unsent += left * sign  # never on the pin: the device takes them off the axis
                return
            self._rmt.write_pulses(_TRAINS[count], 1)  # starts high
            left -= count

    def _closed(self, sign):
        # read as late as it can be: after the last train ended, before the next starts
        if self._estop.value():
            return True
        return self.gate and sign > 0 and self._trigger.value() == 1

    def wait_done(self):
        self._rmt.wait_done(timeout=2)  # a train lasts 0.8 ms

    def unsent(self):
        n = self._unsent
        self._unsent = 0
        return n
