# Step pulses from an RP2040 PIO state machine: the control tick hands over a count and the PIO
# spreads that many pulses evenly over 80 % of the next millisecond, so the pulse train is
# exact and the CPU spends a FIFO write per tick, not a loop toggling a pin.
import micropython
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
# Every word carries a gate, checked by the PIO itself before every pulse, however busy the CPU (a
# flash erase stalls it for 45-400 ms): the rest of the word is not sent, within a pulse (~20 us), once
# the gate closes. PRESS (the plunger pushing while the device delivers): trigger up or E-stop pressed.
# ESTOP (every other move outside FAULT: prime, take-up, suck-back, relief, the needle): E-stop pressed.
# FREE (moves made in FAULT - the needle out, the suck-back after it - and the boot's homing): none, as
# the loop itself does not stop those on the E-stop. Every word is reported back: how many of its pulses
# did not go out, so the firmware counts only the steps the pin made (Device takes them back from the
# axis's position). STEP is side-set (no set() instructions: the three loops fit the PIO's 32 words); the
# side-set is optional (asm_pio makes it so when some instructions have none): those leave STEP as it is.
GATE_FREE = 0
GATE_ESTOP = 1
GATE_PRESS = 2


@rp2.asm_pio(sideset_init=rp2.PIO.OUT_LOW, out_shiftdir=rp2.PIO.SHIFT_RIGHT)
def _pulses():
    # one FIFO word: pulses - 1 in bits 0-15, the gate in bits 16-17, half a period (loop passes) in bits 18-31
    pull(block)  # noqa: F405
    out(x, 16)  # noqa: F405
    out(y, 2)  # noqa: F405
    jmp(not_y, "free")  # noqa: F405
    jmp(y_dec, "mode")  # noqa: F405  # always taken (y is 1 or 2): y - 1
    label("mode")  # noqa: F405
    jmp(not_y, "estop")  # noqa: F405
    label("press")  # noqa: F405
    mov(isr, null)  # noqa: F405
    in_(pins, 2)  # noqa: F405  # in_base = TRIGGER, then ESTOP: 1 = trigger up, 1 = E-stop pressed
    mov(y, isr)  # noqa: F405
    jmp(y_dec, "done")  # noqa: F405  # either: stop here
    mov(y, osr).side(1)  # noqa: F405  # the half period: what the OSR holds after the outs
    label("h1")  # noqa: F405
    jmp(y_dec, "h1").side(1)  # noqa: F405
    mov(y, osr).side(0)  # noqa: F405
    label("l1")  # noqa: F405
    jmp(y_dec, "l1")  # noqa: F405
    jmp(x_dec, "press")  # noqa: F405
    jmp("done")  # noqa: F405
    label("estop")  # noqa: F405
    jmp(pin, "done")  # noqa: F405  # jmp_pin = ESTOP: high = pressed (or a cut wire)
    mov(y, osr).side(1)  # noqa: F405
    label("h2")  # noqa: F405
    jmp(y_dec, "h2").side(1)  # noqa: F405
    mov(y, osr).side(0)  # noqa: F405
    label("l2")  # noqa: F405
    jmp(y_dec, "l2")  # noqa: F405
    jmp(x_dec, "estop")  # noqa: F405
    jmp("done")  # noqa: F405
    label("free")  # noqa: F405
    mov(y, osr).side(1)  # noqa: F405
    label("h3")  # noqa: F405
    jmp(y_dec, "h3").side(1)  # noqa: F405
    mov(y, osr).side(0)  # noqa: F405
    label("l3")  # noqa: F405
    jmp(y_dec, "l3")  # noqa: F405
    jmp(x_dec, "free")  # noqa: F405
    label("done")  # noqa: F405
    mov(isr, x)  # noqa: F405  # pulses not sent - 1; all ones (x ran out) when every pulse went out
    in_(null, 16)  # noqa: F405  # into the high half: the CPU reads it with get(None, 16), a small int
    push(noblock)  # noqa: F405


class PioStepDir:
    # The StepDir interface (board_stepdir.py): step(n), n signed, at most ~50 per tick;
    # wait_done() blocks until every pulse handed over has left the pin.

    # gate: set True (the board's plunger_gate) and the + steps handed over from then on stop in
    # hardware when the trigger is up or the E-stop pressed (the PIO reads gate_base and the pin
    # after it); estop_gate: set True (the board's estop_gate) and every other step handed over from
    # then on stops when the E-stop is pressed; unsent() gives back, signed, the steps that did not go out.

    def __init__(self, step_pin, dir_pin, invert, sm_id, gate_base):
        self._dir = Pin(dir_pin, Pin.OUT, value=0)
        self._invert = invert
        self._sign = 0
        self._queued = 0  # words put and not yet reported done by the PIO
        self._unsent = 0  # steps handed over that the gate kept off the pin, signed, not yet taken
        self.gate = False
        self.estop_gate = False  # off until the device sets it: the boot's homing runs before it
        self._sm = rp2.StateMachine(sm_id, _pulses, freq=PIO_HZ, sideset_base=Pin(step_pin, Pin.OUT, value=0),
                                    in_base=Pin(gate_base), jmp_pin=Pin(gate_base + 1))
        self._sm.active(1)

    @micropython.native  # every pass an axis moves
    def step(self, n, span_us=1000):
        # span_us: the move time these n steps stand for (dosing.Axis, paced): they go out over 80 % of it, at the
        # move's own rate whether the pass came 1 ms or 6 ms after the last (a late pass is not a burst)
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
        # the reports taken inline (this runs every pass a plunger moves): _wait only when the FIFO is full
        sm = self._sm
        while sm.rx_fifo():
            self._unsent += ((sm.get(None, 16) + 1) & 0xFFFF) * self._sign
            self._queued -= 1
        if self._queued >= QUEUE_MAX:
            self._wait(QUEUE_MAX - 1)
        spread = span_us * SPREAD_US // 1000 if span_us > 1000 else SPREAD_US
        half = spread // (2 * count) - 2  # each half period: the loop passes plus two instructions
        gate = GATE_PRESS if self.gate and sign > 0 else GATE_ESTOP if self.estop_gate else GATE_FREE
        head = ((half if half > 1 else 1) << 18) | (gate << 16)
        while count:  # 15 bits of count (the report's 16 must tell "all sent"): a larger catch-up goes out as more words
            part = count if count < 0x8000 else 0x8000
            sm.put(head | (part - 1))  # < 2^26: a small int, no allocation
            self._queued += 1
            count -= part
            if count:
                self._wait(QUEUE_MAX - 1)

    def wait_done(self):
        self._wait(0)

    # bytecode, not native: natively, test_pico_emu's MARK snapshots miss the last 1-2 pulses of a move, which then
    # count in the next window with the OLD direction. Not a DIR race: with _wait(0) also waiting for an empty TX
    # FIFO and the SM's TXSTALL flag (it had pulled again, after its last pulse) the counts were identical, and no
    # pulse ever counted with the new DIR. An artifact of the emulator's edge accounting against the CPU's timing.
    def _wait(self, most):
        # Until at most `most` words are outstanding. The PIO reports every word, so this ends
        # within a few ms; if the PIO ever stopped, the hardware watchdog resets the board with
        # the drivers off (EN pull-up) rather than the CPU carrying on with unsent steps.
        while True:
            self._reports()
            if self._queued <= most:
                return

    def _reports(self):
        # every word the PIO has finished: its pulses not sent (0xFFFF: none), in the step's direction
        sm = self._sm
        while sm.rx_fifo():
            self._unsent += ((sm.get(None, 16) + 1) & 0xFFFF) * self._sign
            self._queued -= 1

    @micropython.native  # every pass of a settle
    def busy(self):
        # pulses handed over still going out (a word not yet reported done): with paced batches the last one
        # runs up to ~6 ms after the loop handed it over, and a line judged before then is still being pushed
        sm = self._sm
        while sm.rx_fifo():
            self._unsent += ((sm.get(None, 16) + 1) & 0xFFFF) * self._sign
            self._queued -= 1
        return self._queued > 0

    @micropython.native  # every pass the device delivers
    def unsent(self):
        # the steps the gate kept off the pin since the last call (signed); words still queued count later.
        # _reports() inline: this runs every pass
        sm = self._sm
        while sm.rx_fifo():
            self._unsent += ((sm.get(None, 16) + 1) & 0xFFFF) * self._sign
            self._queued -= 1
        n = self._unsent
        self._unsent = 0
        return n
