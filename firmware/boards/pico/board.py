# Board layer for a Raspberry Pi Pico (RP2040) with two step/dir stepper drivers.
# The logic is shared with the other real boards in board_stepdir.py; this file is the pin map.
from machine import ADC, Pin
import micropython
import rp2
import board_stepdir
import board_steppio
from mesofw import flasharea

NAME = "pico"

# ---- pin map (GPIO numbers; GP0/GP1 left free for a debug UART) ---------------------
# Drivers (A4988: MS1-3 high; TMC2209 standalone: MS1 and MS2 high) run 16 microsteps.
PLUNGER_STEP = 2  # plunger: 200 steps/rev x 16, 1 mm lead screw
PLUNGER_DIR = 3
PLUNGER_INVERT = False  # True if the plunger moves back on + steps
NEEDLE_STEP = 4  # needle depth actuator
NEEDLE_DIR = 5
NEEDLE_INVERT = False  # True if the needle retracts on + steps
MOTOR_EN = 6  # shared EN, active low; fit a 10k pull-up to 3V3 so the drivers are off until boot
TRIGGER = 10  # push button to GND, pull-up: low = pressed; with the E-stop, at boot = service mode
ESTOP = 11  # normally-closed button to GND, pull-up: high = stop (also a cut wire); TRIGGER + 1: the step PIO reads both
NEEDLE_HOME = 12  # endstop to GND at the retracted end, pull-up: low = home
PLUNGER_END = 13  # endstop to GND at the end of the syringe stroke: low = empty
LED = "LED"  # on-board LED: GP25 on a Pico (the wireless chip's LED pin on a Pico W)
PRESSURE_ADC = 26  # ADC0: line-pressure sensor through a 2/3 divider (board_stepdir)
BARREL_ADC = 27  # ADC1: syringe clamp potentiometer's wiper (barrel diameter, board_stepdir)
CONTACT = 14  # skin contact switch of a single-needle head, to GND, pull-up: low = on the skin
VACUUM_PUMP = 15  # vacuum pump MOSFET gate (multi-needle heads), high = on; 10k pull-down
VACUUM_ADC = 29  # ADC3: the vacuum sensor. On a Pico board ADC3 reads VSYS/3: a gun board wires the sensor there
HEAD_ADC = 28  # ADC2: the needle head's ID resistor against a 10k pull-up to 3V3 (spec.HEADS)

# Second syringe channel (two drugs, spec.CHANNELS): driven when SECOND_CHANNEL (below) says it is wired;
# otherwise CHANNELS = 1 and the device refuses a channel 2 program. A real gun joins the two syringes' lines in a Y-piece with a check
# valve on each arm (no back-flow of one drug into the other syringe) right before the head; the device
# treats Y-piece + head as one path holding one drug (device.path_channel). The RP2040 has no fifth ADC:
# the second clamp's potentiometer needs an external ADC (I2C) or an analogue switch on BARREL_ADC.
PLUNGER2_STEP = 7  # its own step/dir driver, the shared MOTOR_EN
PLUNGER2_DIR = 8
PLUNGER2_END = 9  # its stroke-end switch, to GND, pull-up
PLUNGER2_INVERT = False
BARREL_SELECT = 16  # an analogue switch (TS5A3157-class) routing the selected channel's clamp wiper to BARREL_ADC: high = 2
# True on a gun built with the second driver, its end switch and the clamp switch wired: then CHANNELS = 2.
# Off by default: unwired, BARREL_ADC would read channel 1's clamp as channel 2's, and a channel 2 dose would
# be recorded from a plunger that moves nothing.
SECOND_CHANNEL = False

# The drivers must stay off from the first moment: main.py imports this module first thing.
Pin(MOTOR_EN, Pin.OUT, value=1)


def safe_mode():
    return board_stepdir.safe_mode(TRIGGER, ESTOP)


class Board(board_stepdir.StepDirBoard):
    NAME = NAME
    # the PIO spreads each batch over the time it stands for (board_steppio), so the moves follow control passes
    # up to this late at their commanded rate (dosing.Axis paced): on the RP2040 a pass takes 1-6 ms while
    # dosing; longer (a flash erase) and the move lags (STATUS lag_ms). A queue then holds at most ~0.8 x this of
    # pulses: every move outside FAULT stops in the PIO on the E-stop, the plunger's delivery on the trigger too
    STEP_PACED_GAP_US = 8000

    def __init__(self):
        super().__init__((PLUNGER_STEP, PLUNGER_DIR, PLUNGER_INVERT), (NEEDLE_STEP, NEEDLE_DIR, NEEDLE_INVERT),
                         MOTOR_EN, TRIGGER, ESTOP, NEEDLE_HOME, PLUNGER_END, LED, CONTACT, VACUUM_PUMP)
        self._adc = ADC(PRESSURE_ADC)
        self._barrel = ADC(BARREL_ADC)
        self._head = ADC(HEAD_ADC)
        self._vacuum = ADC(VACUUM_ADC)
        self._select = Pin(BARREL_SELECT, Pin.OUT, value=0)  # channel 1's clamp
        if SECOND_CHANNEL:
            # PIO state machine 2, its gate on TRIGGER/ESTOP as the first plunger's
            self.second_channel((PLUNGER2_STEP, PLUNGER2_DIR, PLUNGER2_INVERT), PLUNGER2_END)

    def journal_log(self):
        # the journal's append area: 4 blocks of the littlefs's own flash (rp2.Flash()) kept as files and
        # programmed a page at a time (the boot ROM's unit), so a point costs no erase (mesofw/flasharea.py)
        area, self.journal_area = flasharea.open_area(rp2.Flash(), flasharea.ROM_PAGE, feed=self.feed_watchdog)
        return area

    @micropython.native  # every pass the plunger moves
    def plunger_step(self, n, span_us=1000):
        self._plunger.step(n, span_us)

    @micropython.native  # every pass the needle moves
    def needle_step(self, n, span_us=1000):
        self._needle.step(n, span_us)

    def plunger_busy(self):
        # the PIO still letting out the plunger's last batch (dosing.Sequence: the settle and the prime's compliance
        # read wait for it). Without it a paced batch's last few ms of pulses were read as the line's discharge: the
        # prime's compliance came out too high, so each point topped up too far and the record took the same amount
        # off (emulated, 3 x 20 and 3 x 50 uL: truth vs program +0.46 %, record vs truth -0.45 %; with it 0.00/-0.01 %)
        return self._plunger.busy()

    def step_driver(self, step_pin, dir_pin, invert, unit):
        # pulses from the hardware, not a Python loop; the plunger's gated by the PIO on TRIGGER and ESTOP
        return board_steppio.PioStepDir(step_pin, dir_pin, invert, unit, TRIGGER)

    def plunger_channel(self, channel):
        super().plunger_channel(channel)
        self._select.value(1 if self.channel == 2 else 0)  # BARREL_ADC reads that channel's clamp from now on

    def pressure_raw(self):
        return self._adc.read_u16()

    @micropython.native  # every pass
    def pressure_mv(self):
        return self._adc.read_u16() * 3300 >> 16  # 3.3 V reference; fits a small int

    @micropython.native  # every pass
    def barrel_mv(self):
        return self._barrel.read_u16() * 3300 >> 16

    @micropython.native  # every pass
    def head_mv(self):
        return self._head.read_u16() * 3300 >> 16

    def vacuum_mv(self):
        return self._vacuum.read_u16() * 3300 >> 16
