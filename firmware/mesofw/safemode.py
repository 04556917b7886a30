# Service mode: the REPL, for mpremote and `mesoinject flash`. The firmware takes Ctrl-C as data, so
# the REPL is reached at boot only: with the service gesture (E-stop pressed and trigger held
# PAIRING_HOLD_MS, as for pairing), or after the protocol's REPL command (authenticated, and taken only
# in pairing mode), which leaves a one-shot flag on the flash and resets the board (a reset is also
# the only thing that stops a hardware watchdog); main.py finds the flag and skips the app.
# Either way the command key is erased before the REPL opens: the REPL reads any file, so a key left
# on the flash would be anyone's who reaches it. The device is paired again after service.
import json
import os
from time import sleep_ms, ticks_diff, ticks_ms

from mesoprotocol import spec

FLAG = "/repl.flag"


def request_repl(board):
    with open(FLAG, "w"):
        pass
    board.reset()


def repl_requested():
    # consumed: the boot after this one starts the firmware again
    try:
        os.remove(FLAG)
        return True
    except OSError:
        return False


def gesture_held(held):
    # held(): the gesture is being made now (the board's safe_mode); True once it was for PAIRING_HOLD_MS
    start = ticks_ms()
    while held():
        if ticks_diff(ticks_ms(), start) >= spec.PAIRING_HOLD_MS:
            return True
        sleep_ms(20)
    return False


def erase_key(key_file):
    try:
        os.remove(key_file)
    except OSError:
        pass  # never paired, or erased by an earlier service boot


def build_id():
    # what `mesoinject flash` wrote in /build.json, for IDENTITY; 0 for a source image
    try:
        with open("/build.json") as f:
            return int(json.load(f)["build"], 16)
    except (OSError, ValueError, KeyError):
        return 0
