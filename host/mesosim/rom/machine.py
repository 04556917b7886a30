# The simulated MCU's `machine` module: what a MicroPython port's C code provides on a board, for
# the REPL's users (mpremote reset, soft-reset) and the board layer. MicroPython, never on the flash:
# the harness imports it once main.py returns, for the REPL (host/mesosim/process.py), as a port's
# built-ins come with the chip. The unix port's own `machine` stays reachable as umachine.
import os
import sys

from umachine import *  # noqa: F401,F403  (what the unix port has: mem8/16/32, idle, ...)

RESET_EXIT = 0xE5  # the process's exit status that means "the reset line was pulled" (process.py)
PWRON_RESET = 1  # reset_cause() values as on the esp32 port
HARD_RESET = 2
WDT_RESET = 3
SOFT_RESET = 5
_CAUSES = (PWRON_RESET, SOFT_RESET, WDT_RESET)  # spec RESET_POWER_ON, RESET_SOFT, RESET_WATCHDOG


def reset():
    # a hard reset, as machine.reset() on a board: the harness boots the flash again, main.py included
    sys.exit(RESET_EXIT)


def soft_reset():
    # the unix port's exit is the harness's soft reboot
    sys.exit(0)


def reset_cause():
    cause = int(os.getenv("MESOSIM_RESET") or 0)
    return _CAUSES[cause] if 0 <= cause < len(_CAUSES) else HARD_RESET


def unique_id():
    return (os.getenv("MESOSIM_SERIAL") or "SIM-0000").encode()


def freq(hz=None):
    return 125_000_000  # an RP2040's clock, as reported; the unix port runs as fast as the host
