# Board layer for an ESP32-S3 DevKitC-1 with two step/dir stepper drivers.
# The logic is shared with the other real boards in board_stepdir.py; this file is the pin map.
from machine import ADC, Pin
import esp32
import board_stepdir
import board_steprmt
from mesofw import appendlog, flasharea

NAME = "esp32s3"

# ---- pin map (GPIO numbers) -------------------------------------------------------------
# Avoided: strapping 0, 3, 45, 46; USB 19/20; flash/PSRAM 26-37; UART0 43/44;
# 38/48 (on-board RGB LED, depends on the board revision). ADC on ADC1 (GPIO1-10): ADC2
# is shared with Wi-Fi.
# Drivers (A4988: MS1-3 high; TMC2209 standalone: MS1 and MS2 high) run 16 microsteps.
PLUNGER_STEP = 4  # plunger: 200 steps/rev x 16, 1 mm lead screw
PLUNGER_DIR = 5
PLUNGER_INVERT = False  # True if the plunger moves back on + steps
NEEDLE_STEP = 6  # needle depth actuator
NEEDLE_DIR = 7
NEEDLE_INVERT = False  # True if the needle retracts on + steps
MOTOR_EN = 15  # shared EN, active low; fit a 10k pull-up to 3V3 so the drivers are off until boot
TRIGGER = 16  # push button to GND, pull-up: low = pressed; with the E-stop, at boot = service mode
ESTOP = 17  # normally-closed button to GND, pull-up: high = stop (also a cut wire)
NEEDLE_HOME = 18  # endstop to GND at the retracted end, pull-up: low = home
PLUNGER_END = 8  # endstop to GND at the end of the syringe stroke: low = empty
LED = 2  # status LED + 330R to GND (single colour, same blink patterns as the Pico)
PRESSURE_ADC = 1  # ADC1_CH0: line-pressure sensor through a 2/3 divider (board_stepdir)
BARREL_ADC = 9  # ADC1_CH8: syringe clamp potentiometer's wiper (barrel diameter, board_stepdir)
CONTACT = 13  # skin contact switch of a single-needle head, to GND, pull-up: low = on the skin
VACUUM_PUMP = 14  # vacuum pump MOSFET gate (multi-needle heads), high = on; 10k pull-down
VACUUM_ADC = 12  # ADC2_CH1: the vacuum sensor (ADC2 is free: the firmware runs no Wi-Fi)
HEAD_ADC = 10  # ADC1_CH9: the needle head's ID resistor against a 10k pull-up to 3V3 (spec.HEADS)

# Second syringe channel (two drugs, spec.CHANNELS): driven when SECOND_CHANNEL (below) says it is wired;
# otherwise CHANNELS = 1 and the device refuses a channel 2 program. A real gun joins the two syringes'
# lines in a Y-piece with a check valve on each arm (no back-flow of one drug into the other syringe) right before the head; the device
# treats Y-piece + head as one path holding one drug (device.path_channel).
PLUNGER2_STEP = 39  # its own step/dir driver, the shared MOTOR_EN
PLUNGER2_DIR = 40
PLUNGER2_END = 41  # its stroke-end switch, to GND, pull-up
BARREL2_ADC = 11  # ADC2_CH0: the second clamp's potentiometer (ADC2 is free: no Wi-Fi)
PLUNGER2_INVERT = False
# True on a gun built with the second driver, its end switch and its clamp wired: then CHANNELS = 2. Off by
# default: unwired, the clamp input floats and could read as a syringe, and a channel 2 dose would be
# recorded from a plunger that moves nothing.
SECOND_CHANNEL = False

# The drivers must stay off from the first moment: main.py imports this module first thing.
Pin(MOTOR_EN, Pin.OUT, value=1)


def safe_mode():
    return board_stepdir.safe_mode(TRIGGER, ESTOP)


class Board(board_stepdir.StepDirBoard):
    NAME = NAME

    def __init__(self):
        super().__init__((PLUNGER_STEP, PLUNGER_DIR, PLUNGER_INVERT), (NEEDLE_STEP, NEEDLE_DIR, NEEDLE_INVERT),
                         MOTOR_EN, TRIGGER, ESTOP, NEEDLE_HOME, PLUNGER_END, LED, CONTACT, VACUUM_PUMP)
        self._adc = ADC(Pin(PRESSURE_ADC), atten=ADC.ATTN_11DB)  # 11 dB: 0-3.1 V range
        self._barrel = ADC(Pin(BARREL_ADC), atten=ADC.ATTN_11DB)
        self._barrels = [self._barrel, self._barrel]  # per channel; the second clamp's once wired
        if SECOND_CHANNEL:
            self.second_channel((PLUNGER2_STEP, PLUNGER2_DIR, PLUNGER2_INVERT), PLUNGER2_END)  # RMT channel 2
            self._barrels[1] = ADC(Pin(BARREL2_ADC), atten=ADC.ATTN_11DB)
        self._head = ADC(Pin(HEAD_ADC), atten=ADC.ATTN_11DB)
        self._vacuum = ADC(Pin(VACUUM_ADC), atten=ADC.ATTN_11DB)

    def journal_log(self):
        # the journal's append area: 4 blocks of the littlefs's own partition ("vfs") kept as files, each
        # entry programmed as it is (ESP-IDF writes any range), so a point costs no erase (mesofw/flasharea.py)
        parts = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="vfs")
        if not parts:
            self.journal_area = "no vfs partition: records go straight to their cells"
            return None
        area, self.journal_area = flasharea.open_area(parts[0], appendlog.ENTRY, feed=self.feed_watchdog)
        return area

    def step_driver(self, step_pin, dir_pin, invert, unit):
        # pulses from the hardware, not a Python loop; each train started only while the gates are open
        return board_steprmt.RmtStepDir(step_pin, dir_pin, invert, unit, TRIGGER, ESTOP)

    def pressure_raw(self):
        return self._adc.read_u16()

    def pressure_mv(self):
        return self._adc.read_uv() // 1000  # factory-calibrated, unlike read_u16

    def barrel_mv(self):
        return self._barrels[self.channel - 1].read_uv() // 1000  # the selected channel's clamp

    def head_mv(self):
        return self._head.read_uv() // 1000

    def vacuum_mv(self):
        return self._vacuum.read_uv() // 1000
