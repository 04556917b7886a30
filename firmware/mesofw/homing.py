# The needle's way home at boot (a power cut may have left it in the skin): the first thing the firmware does,
# before the journal's scan. Its own module so the app imports it, and allocates the journal's buffers, before the
# device and its dosing (a contiguous 6 KB found before the bulk of the code fragments the heap: a 192K heap had
# 68 KB free after every import but no 6 KB in one piece).
from time import ticks_add, ticks_diff, ticks_us
from mesoprotocol import spec as S


def home_needle(board):
    # The needle may have been in the skin when power went: retract to the home switch.
    # First thing at boot, before anything slow (the journal's scan). Returns the depth axis's lost
    # motion in steps, measured against the switch on a board that declares it has some.
    max_play = getattr(board, "NEEDLE_PLAY_MAX_UM", 0) * board.NEEDLE_STEPS_PER_MM // 1000
    if board.needle_home() and not max_play:
        return 0
    board.motors(True)
    period_us = 1000000000 // (board.NEEDLE_STEPS_PER_MM * board.NEEDLE_SPEED_UM_S)
    if not board.needle_home():
        _step_needle(board, -1, 2 * S.MAX_DEPTH_UM * board.NEEDLE_STEPS_PER_MM // 1000, period_us, True)
    play = _measure_needle_play(board, max_play, period_us)
    board.motors(False)
    return play


def _step_needle(board, direction, limit, period_us, until_home):
    # single steps at the axis's speed until the home switch reads until_home (or limit); steps taken
    deadline = ticks_us()
    n = 0
    while (until_home is None or board.needle_home() != until_home) and n < limit:
        board.needle_step(direction)
        board.wait_steps()  # read the switch after the pulse, not with pulses still queued: no over-travel
        n += 1
        deadline = ticks_add(deadline, period_us)
        while ticks_diff(deadline, ticks_us()) > 0:
            pass
    return n


def _measure_needle_play(board, max_steps, period_us):
    # From home with the carriage pulled back against its play (driven back into the stop first),
    # the needle leaves the switch only after the carriage has crossed the play: count those steps,
    # then step back as many (the needle home again, the carriage pulled back). 0 without a declared play.
    if not max_steps or not board.needle_home():
        return 0
    _step_needle(board, -1, max_steps, period_us, None)  # into the home stop: the play taken up backwards
    n = _step_needle(board, 1, max_steps + 1, period_us, False)
    _step_needle(board, -1, n + max_steps, period_us, None)
    return n - 1 if 0 < n <= max_steps else 0
