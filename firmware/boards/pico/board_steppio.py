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
SPREAD_US = 800  # a tick's pulses end before the next tick starts (DIR can then change)
DIR_SETUP_US = 2


@rp2.asm_pio(set_init=rp2.PIO.OUT_LOW)
def _pulses():
    # one FIFO word: pulses - 1 in the low half, half a period (loop passes) in the high half
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


class PioStepDir:
    # The StepDir interface (board_stepdir.py): step(n), n signed, at most ~50 per tick.
    def __init__(self, step_pin, dir_pin, invert, sm_id):
        self._dir = Pin(dir_pin, Pin.OUT, value=0)
        self._invert = invert
        self._sign = 0
        self._sm = rp2.StateMachine(sm_id, _pulses, freq=PIO_HZ, set_base=Pin(step_pin, Pin.OUT, value=0))
        self._sm.active(1)

    def step(self, n):
        if not n:
            return
        sign = 1 if n > 0 else -1
        count = n * sign
        if sign != self._sign:  # the last tick's pulses ended SPREAD_US after it began
            self._dir.value((sign > 0) != self._invert)
            self._sign = sign
            sleep_us(DIR_SETUP_US)
        half = SPREAD_US // (2 * count) - 2  # each half period: the loop passes plus two instructions
        self._sm.put((max(half, 1) << 16) | (count - 1))
