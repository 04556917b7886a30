# Shared by the real step/dir boards (pico, esp32s3): drivers, inputs, indicator, host serial.
# Written once here; boards/esp32s3/board_stepdir.py is a symlink to this file, because the
# image manifest copies only board*.py from the board's own folder.
import binascii
import machine
import micropython
import select
import sys
from machine import Pin
from time import sleep_ms, sleep_us, ticks_add, ticks_diff, ticks_ms
from mesoprotocol import spec

PULSE_US = 2  # STEP high/low and DIR setup time; A4988 needs 1 us, DRV8825 1.9 us, TMC2209 0.1 us
DEBOUNCE_MS = 3  # the trigger must read the same for this long before it counts
WDT_MS = 2000  # hardware watchdog; the control loop feeds it every <= 5 ms
LED_SLOT_MS = 100  # blink patterns: 10 slots of 100 ms, bit i = LED on in slot i

_PATTERNS = {
    spec.LED_OFF: 0,
    spec.LED_READY: 0b0000000001,  # short blink once a second: armed, press the trigger
    spec.LED_DELIVERING: 0b1111111111,  # steady on
    spec.LED_COMPLETE: 0b0000000101,  # double blink
    spec.LED_FAULT: 0b0101010101,  # fast blink, 5 Hz
    spec.LED_PAIRING: 0b0000011111,  # half a second on, half off: pairing mode
}


def held_at_boot(pin_no, level=0):
    # An input at `level` for 20 ms (a single glitch does not count); used for safe_mode().
    pin = Pin(pin_no, Pin.IN, Pin.PULL_UP)
    for _ in range(20):
        sleep_ms(1)
        if pin.value() != level:
            return False
    return True


def safe_mode(trigger, estop):
    # the service gesture, as for pairing: E-stop pressed (high) and trigger held (low); main.py
    # asks again until it has been made for PAIRING_HOLD_MS
    return held_at_boot(estop, 1) and held_at_boot(trigger)


def reset_code():
    # machine.reset_cause() -> spec RESET_*. rp2 has no SOFT_RESET (a soft reboot keeps the
    # previous cause); anything else (brownout, reset pin) counts as power-on.
    cause = machine.reset_cause()
    if cause == getattr(machine, "WDT_RESET", -1):
        return spec.RESET_WATCHDOG
    if cause == getattr(machine, "SOFT_RESET", -1):
        return spec.RESET_SOFT
    return spec.RESET_POWER_ON


class StepDir:
    # One step/dir driver, bit-banged: the fallback for a board without a pulse peripheral
    # (pico uses a PIO state machine, board_steppio.py; esp32s3 the RMT, board_steprmt.py).
    # ~20 steps per 1 ms tick at most, each a few us of CPU.

    def __init__(self, step_pin, dir_pin, invert):
        self._step = Pin(step_pin, Pin.OUT, value=0)
        self._dir = Pin(dir_pin, Pin.OUT, value=0)
        self._invert = invert  # flip if the axis runs backwards: wiring, not code
        self._sign = 0  # direction last set on DIR; 0 = not yet

    def step(self, n):
        if not n:
            return
        sign = 1 if n > 0 else -1
        if sign != self._sign:
            self._dir.value((sign > 0) != self._invert)
            self._sign = sign
            sleep_us(PULSE_US)  # DIR must settle before the STEP edge
        pin = self._step
        for _ in range(n * sign):
            pin.on()
            sleep_us(PULSE_US)
            pin.off()
            sleep_us(PULSE_US)

    def wait_done(self):
        pass  # step() returns once its pulses are out

    gate = False  # no hardware gate here: the control loop alone stops the plunger
    estop_gate = False

    def unsent(self):
        return 0


class Debounced:
    # An active-low switch with pull-up; a new level counts once stable for DEBOUNCE_MS.
    # Sampled on each read (every 1 ms tick, every <= 5 ms when idle): no IRQ needed. The read is
    # StepDirBoard.trigger(), inline there (a call less every pass: ~25 us on an RP2040).

    def __init__(self, pin_no):
        self._pin = Pin(pin_no, Pin.IN, Pin.PULL_UP)
        self.state = self._pin.value() == 0
        self._raw = self.state
        self._since = ticks_ms()


class StepDirBoard:
    # The board interface (boards/README.md) for a board with two step/dir drivers.
    # A board.py subclass sets the class constants and implements pressure_raw/pressure_mv.

    # Mechanics shared by the step/dir builds: 200 steps/rev x 16 microsteps on a 1 mm
    # lead screw; a 100 steps/mm needle actuator.
    PLUNGER_STEPS_PER_MM = spec.PLUNGER_STEPS_PER_MM
    NEEDLE_STEPS_PER_MM = 100
    NEEDLE_SPEED_UM_S = spec.NEEDLE_SPEED_UM_S
    PLUNGER_PLAY_MAX_UM = 120  # worst-case lead-screw backlash + stopper breakaway (measure per build)
    ANTIDRIP_UM = 20
    COMPLIANCE_NL_PER_KPA = 1  # nominal for 1 mL plastic syringes
    CHANNELS = 1  # syringe channels driven; 2 once board.py wires the second axis (second_channel)
    JOURNAL_CELLS = 6000  # delivery journal: 64 bytes a record (384 KB of flash in 4 KB segments), > MAX_SHOTS

    # Line-pressure sensor: ratiometric 0.5-4.5 V = 0-689 kPa (100 psi) on 5 V, through a
    # 2/3 divider so the ADC sees 0.33-3.0 V. Calibrate against the sensor actually fitted.
    PRESSURE_ZERO_MV = 333
    PRESSURE_SPAN_MV = 2667
    PRESSURE_SPAN_KPA = 689
    PRESSURE_OPEN_MV = 150  # below the 0.5 V offset: sensor unplugged or wire broken

    # Syringe clamp sensor: a linear potentiometer on the clamp's sliding jaw (wiper on an ADC,
    # track across 3V3/GND) gives the barrel's outer diameter, as an infusion pump's size sensor:
    # jaw shut = BARREL_ZERO_MV, each mm of opening BARREL_MV_PER_MM more. A reading outside the
    # track (wiper lifted, wire cut, short) is no reading (0), which fits no syringe: dosing stops.
    BARREL_ZERO_MV = 300
    BARREL_MV_PER_MM = 120  # 0-22.5 mm over 0.3-3.0 V; calibrate against gauge pins per build
    BARREL_MIN_MV = 150
    BARREL_MAX_MV = 3150

    def step_driver(self, step_pin, dir_pin, invert, unit):
        # a board with a pulse peripheral returns its driver here (unit: 0 plunger, 1 needle)
        return StepDir(step_pin, dir_pin, invert)

    def __init__(self, plunger, needle, motor_en, trigger, estop, needle_home, plunger_end, led, contact, pump):
        # plunger, needle: (step pin, dir pin, invert dir); inputs are switches to GND.
        self._en = Pin(motor_en, Pin.OUT, value=1)  # active low: disabled
        self._plunger = self.step_driver(plunger[0], plunger[1], plunger[2], 0)
        self._plungers = [self._plunger, self._plunger]  # type: list  # per channel (1, 2); one axis: both the same
        self._needle = self.step_driver(needle[0], needle[1], needle[2], 1)
        self._trigger = Debounced(trigger)
        # E-stop, home and end switches are read raw: acting on the first edge is the safe side.
        self._estop = Pin(estop, Pin.IN, Pin.PULL_UP)  # normally closed: high = pressed or cut
        self._home = Pin(needle_home, Pin.IN, Pin.PULL_UP)  # closed (low) at home
        self._end = Pin(plunger_end, Pin.IN, Pin.PULL_UP)  # closed (low) at end of stroke
        self._ends = [self._end, self._end]  # type: list
        self.channel = 1  # the channel plunger_step drives, syringe_end and barrel_mv read
        self._led = Pin(led, Pin.OUT, value=0)
        self._contact = Pin(contact, Pin.IN, Pin.PULL_UP)  # the skin contact switch (single-needle heads)
        self._pump = Pin(pump, Pin.OUT, value=0)  # the vacuum pump's MOSFET (multi-needle heads): off
        self._led_on = 0
        self._pattern = 0
        self._slot = 0  # slot of the blink pattern shown now
        self._slot_end = ticks_ms()
        self._reset = reset_code()  # read once: it is asked again on every HELLO
        # Host link = USB CDC. 0x03 in a frame must stay data, not raise KeyboardInterrupt:
        # to reach the REPL again, boot in safe mode (trigger held).
        micropython.kbd_intr(-1)
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._byte = bytearray(1)
        self._ipoll = self._poll.ipoll
        self._readinto = self._in.readinto
        self._wdt = machine.WDT(timeout=WDT_MS)  # last: once started it cannot be stopped

    # ---- identity ------------------------------------------------------------------
    def serial_number(self):
        return binascii.hexlify(machine.unique_id()).decode().upper()[-12:]

    def reset_cause(self):
        return self._reset

    # ---- host serial port -----------------------------------------------------------
    @micropython.native  # every pass, and every byte
    def host_read(self, buf):
        # stdin reads block until they have all they asked for, so take one byte at a time
        # and only while poll says one is there. ipoll, not poll: poll() allocates a list per
        # call; the bound methods are made once (__init__), and the loop is inline: this runs
        # every pass and every byte (~100 us a byte on an RP2040 through a _ready() method).
        n = 0
        size = len(buf)
        ipoll = self._ipoll
        readinto = self._readinto
        byte = self._byte
        while n < size:
            for _ in ipoll(0):
                break
            else:
                return n
            readinto(byte)
            buf[n] = byte[0]
            n += 1
        return n

    def host_write(self, buf, n):
        self._out.write(buf, n)  # a MicroPython stream's write(buf, max_len): no slice allocated

    def wait_input(self, timeout_ms):
        self._poll.poll(timeout_ms)

    # ---- actuators and sensors ------------------------------------------------------
    def motors(self, on):
        if not on:
            # the pulses handed over go out first: a driver disabled under them does not move, and the axis's
            # count runs ahead of it (a nappage shot's last retraction steps: the needle left in by them)
            self.wait_steps()
        self._en.value(0 if on else 1)

    @micropython.native  # every pass
    def plunger_step(self, n):
        self._plunger.step(n)

    @micropython.native  # every pass
    def needle_step(self, n):
        self._needle.step(n)

    @micropython.native  # every pass
    def wait_steps(self):
        self._plunger.wait_done()
        self._needle.wait_done()

    def plunger_gate(self, on):
        # on: plunger steps forward stop in hardware when the trigger is up or the E-stop pressed,
        # where the driver can (the Pico's PIO; the ESP32-S3's RMT before each train); the device sets it while
        # it delivers. The needle's forward steps too: its way in is part of the dose the trigger holds (a paced
        # batch runs up to ~6 ms)
        self._plunger.gate = on
        self._needle.gate = on

    def estop_gate(self, on):
        # on: every step handed over from now on, both axes, stops in hardware when the E-stop is pressed,
        # where the driver can (the Pico's PIO; the ESP32-S3's RMT before each train); the device sets it in
        # every state but FAULT (no tuple to loop over: the device calls this on every state change, inside a
        # program's run)
        self._plungers[0].estop_gate = on
        self._plungers[1].estop_gate = on
        self._needle.estop_gate = on

    @micropython.native  # every pass
    def plunger_unsent(self):
        # steps handed to the plunger that its gate kept off the pin, signed, since the last call
        return self._plunger.unsent()

    @micropython.native  # every pass the device delivers
    def needle_unsent(self):
        # the same for the needle
        return self._needle.unsent()

    @micropython.native  # every pass
    def trigger(self):
        # the trigger's Debounced, read here
        t = self._trigger
        raw = t._pin.value() == 0
        now = ticks_ms()
        if raw != t._raw:
            t._raw = raw
            t._since = now
        elif raw != t.state and ticks_diff(now, t._since) >= DEBOUNCE_MS:
            t.state = raw
        return t.state

    @micropython.native  # every pass
    def estop(self):
        return self._estop.value() == 1

    def needle_home(self):
        return self._home.value() == 0

    @micropython.native  # every pass
    def syringe_end(self):
        return self._end.value() == 0

    @micropython.native  # every pass
    def pressure_kpa(self):
        mv = self.pressure_mv()
        if mv < self.PRESSURE_OPEN_MV:
            # No sensor means no occlusion detection: read as full scale so dispensing
            # stops (OCCLUSION alarm) instead of running blind.
            return self.PRESSURE_SPAN_KPA
        # signed: the 0.5 V zero leaves headroom below ambient, where a negative offset reads (the firmware
        # zeroes it at rest: dosing._zero); clamping at 0 would hide that much of a low flow pressure
        return (mv - self.PRESSURE_ZERO_MV) * self.PRESSURE_SPAN_KPA // self.PRESSURE_SPAN_MV

    def pressure_mv(self):
        raise NotImplementedError  # board.py reads its ADC

    def second_channel(self, plunger2, plunger2_end):
        # board.py wires a second syringe channel (two drugs): its own step/dir driver (unit 2: the Pico's
        # third PIO state machine, gated on the trigger and the E-stop like the first), its stroke-end switch;
        # board.py's barrel_mv reads the selected channel's clamp. Only on a gun built with both: a floating
        # clamp input could read as a syringe, and a channel 2 dose would then be recorded from nothing.
        self._plungers[1] = self.step_driver(plunger2[0], plunger2[1], plunger2[2], 2)
        self._plungers[1].estop_gate = self._plunger.estop_gate
        self._ends[1] = Pin(plunger2_end, Pin.IN, Pin.PULL_UP)
        self.CHANNELS = 2

    def plunger_channel(self, channel):
        # the axis plunger_step drives, the end switch syringe_end and the clamp syringe_barrel_um read, from
        # now on. The device selects only at CONFIGURE, with nothing moving; the gate follows to the new axis
        # (off there: the device sets it while it delivers)
        if channel < 1 or channel > self.CHANNELS:
            return
        gate = self._plunger.gate
        self._plunger.gate = False
        self._plunger = self._plungers[channel - 1]
        self._plunger.gate = gate
        self._end = self._ends[channel - 1]
        self.channel = channel

    @micropython.native  # every pass
    def syringe_barrel_um(self):
        mv = self.barrel_mv()
        if mv < self.BARREL_MIN_MV or mv > self.BARREL_MAX_MV:
            return 0
        return max(0, (mv - self.BARREL_ZERO_MV) * 1000 // self.BARREL_MV_PER_MM)

    def barrel_mv(self):
        raise NotImplementedError  # board.py reads its ADC

    @micropython.native  # every pass
    def head_id_mv(self):
        # the needle head's ID resistor against the 10k pull-up (spec.HEADS): a voltage in one head's
        # band names it; no head (3.3 V), a short or a broken resistor fits none and dosing stops
        return self.head_mv()

    def head_mv(self):
        raise NotImplementedError  # board.py reads its ADC

    # Skin contact: a single-needle head closes a contact switch against the skin (to GND, pull-up:
    # low = contact); a multi-needle head's vacuum (kPa below ambient) is read by a vacuum sensor,
    # ratiometric 0.5-4.5 V = 0-100 kPa through the same 2/3 divider as the line-pressure sensor.
    VACUUM_ZERO_MV = 333
    VACUUM_SPAN_MV = 2667
    VACUUM_SPAN_KPA = 100

    @micropython.native  # every pass
    def skin_contact(self):
        return self._contact.value() == 0

    def vacuum_kpa(self):
        mv = self.vacuum_mv()
        if mv < self.PRESSURE_OPEN_MV:
            return 0  # no sensor: no vacuum, so a vacuum head never has contact and never doses
        return max(0, (mv - self.VACUUM_ZERO_MV) * self.VACUUM_SPAN_KPA // self.VACUUM_SPAN_MV)

    def vacuum_mv(self):
        raise NotImplementedError  # board.py reads its ADC

    def vacuum_pump(self, on):
        self._pump.value(1 if on else 0)

    # A TMC2209's DIAG output (StallGuard) belongs in plunger_stalled, with STALL_SIGNAL = True; with A4988-class
    # drivers there is no stall signal and line pressure is the only occlusion detector: the device does not ask
    STALL_SIGNAL = False

    @micropython.native  # every pass
    def plunger_stalled(self):
        return False

    def led(self, code):
        self._pattern = _PATTERNS.get(code, _PATTERNS[spec.LED_FAULT])
        self._show()  # now, not at the next slot (service only moves the slot on)

    def _show(self):
        on = (self._pattern >> self._slot) & 1
        if on != self._led_on:
            self._led_on = on
            self._led.value(on)

    # ---- housekeeping -----------------------------------------------------------------
    def reset(self):
        # a hard reset (it also stops the watchdog); the pause lets USB send the last reply first
        self.motors(False)
        sleep_ms(50)
        machine.reset()

    @micropython.native  # every pass
    def feed_watchdog(self):
        self._wdt.feed()

    @micropython.native  # every pass
    def service(self, now_us):
        # the trigger's debounce is sampled by Device.tick's trigger() every pass, not again here
        # every pass: the slot's time is checked, the LED set only when the slot (or led()) changes it
        now = ticks_ms()
        if ticks_diff(now, self._slot_end) >= 0:  # counted, not ticks_ms() // 100: ticks wrap
            self._slot = (self._slot + 1) % 10
            self._slot_end = ticks_add(now, LED_SLOT_MS)
            self._show()
