# Back to the REPL for mpremote and `mesoinject flash`: the firmware takes Ctrl-C as data, so the
# protocol's REPL command leaves a one-shot flag on the flash and resets the board (a reset is
# also the only thing that stops a hardware watchdog); main.py finds the flag and skips the app.
import json
import os

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


def build_id():
    # what `mesoinject flash` wrote in /build.json, for IDENTITY; 0 for a source image
    try:
        with open("/build.json") as f:
            return int(json.load(f)["build"], 16)
    except (OSError, ValueError, KeyError):
        return 0
