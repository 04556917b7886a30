# Step pulses from an RP2040 PIO state machine: the control tick hands over a count and the PIO
# spreads that many pulses evenly over 80 % of the next millisecond, so the pulse train is
# exact and the CPU spends a FIFO write per tick, not a loop toggling a pin.
import rp2
from machine import Pin
from time import sleep_us

MYPY = False
if MYPY:  # the PIO assembler's names, for mypy; on the board asm_pio provides them
    from rp2.asm_pio import *  # noqa: F401,F403

PIO_HZ = 1_000_000  # one PIO cycle per microsecond
SPREAD_US = 800  # a tick's pulses take 0.8 ms when the ticks keep up; DIR changes wait for them anyway
DIR_SETUP_US = 2
QUEUE_MAX = 4  # words handed over and not yet reported done: at most the RX FIFO's depth, so no report is lost


# out_shiftdir=SHIFT_RIGHT: the OSR shifts out its LOW bits first. asm_pio's default shifts left
# (high bits first), which read the half period as the count: 638 pulses for 77 asked.
@rp2.asm_pio(set_init=rp2.PIO.OUT_LOW, out_shiftdir=rp2.PIO.SHIFT_RIGHT)
def _pulses():
    # one FIFO word: pulses - 1 in bits 0-15, half a period (loop passes) in bits 16-31
    pull(block)  # noqa: F405
    out(x, 16)  # noqa: F405
    out(isr, 16)  # noqa: F405
    label("pulse")  # noqa: F405
    set(pins, 1)  # noqa: F405
    mov(y, isr)  # noqa: F405
    label("high")  # noqa: F405
    jmp(y_dec, "high")  # noqa: F405
    set(pins, 0)  # noqa: F405
    mov(y, isr)  # noqa: F405
    label("low")  # noqa: F405
    jmp(y_dec, "low")  # noqa: F405
    jmp(x_dec, "pulse")  # noqa: F405
    push(noblock)  # noqa: F405  # the word's last pulse is out: one word back to the CPU


class PioStepDir:
    # The StepDir interface (board_stepdir.py): step(n), n signed, at most ~50 per tick;
    # wait_done() blocks until every pulse handed over has left the pin.

    def __init__(self, step_pin, dir_pin, invert, sm_id):
        self._dir = Pin(dir_pin, Pin.OUT, value=0)
        self._invert = invert
        self._sign = 0
        self._queued = 0  # words put and not yet reported done by the PIO
        self._sm = rp2.StateMachine(sm_id, _pulses, freq=PIO_HZ, set_base=Pin(step_pin, Pin.OUT, value=0))
        self._sm.active(1)

    def step(self, n):
        if not n:
            return
        sign = 1 if n > 0 else -1
        count = n * sign
        if sign != self._sign:
            # Pulses still queued (a slow tick, a burst after a stall, homing) would otherwise
            # go out in the new direction.
            self._wait(0)
            self._dir.value((sign > 0) != self._invert)
            self._sign = sign
            sleep_us(DIR_SETUP_US)
        self._wait(QUEUE_MAX - 1)
        half = SPREAD_US // (2 * count) - 2  # each half period: the loop passes plus two instructions
        while count:  # the count field holds 16 bits: a larger catch-up goes out as more words
            part = min(count, 0x10000)
            self._sm.put((max(half, 1) << 16) | (part - 1))  # < 2^25: a small int, no allocation
            self._queued += 1
            count -= part
            if count:
                self._wait(QUEUE_MAX - 1)

    def wait_done(self):
        self._wait(0)

    def _wait(self, most):
        # Until at most `most` words are outstanding. The PIO reports every word, so this ends
        # within a few ms; if the PIO ever stopped, the hardware watchdog resets the board with
        # the drivers off (EN pull-up) rather than the CPU carrying on with unsent steps.
        sm = self._sm
        while True:
            while sm.rx_fifo():
                sm.get()
                self._queued -= 1
            if self._queued <= most:
                return
