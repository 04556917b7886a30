# Back to the REPL for mpremote and `mesoinject flash`: the firmware takes Ctrl-C as data, so the
# protocol's REPL command leaves a one-shot flag on the flash and resets the board (a reset is
# also the only thing that stops a hardware watchdog); main.py finds the flag and skips the app.
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
