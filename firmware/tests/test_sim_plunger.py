"""The simulated board's plunger (firmware/boards/sim/board_model.py) keeps the fluid its steps move.

CPython, the model loaded as the emulated-Pico board loads it (tools/pico-emu/emuboard.py), on its own clock.
The model spreads each batch of forward steps over the next ~2 ms (pending_nl); steps back that cross the
pusher's play within that time used to drop what was still pending: steps counted, no fluid, and the
syringe's content raised by it.
"""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pico-emu"))

PROFILE = {"plunger_steps_per_mm": 3200, "needle_steps_per_mm": 100, "diameter_um": 4780, "content_nl": 900000,
           "compliance_nl_per_kpa": 1.0, "sensor_lag_ms": 0.0, "play_um": 30}


def fluid(model):
    # every nanolitre the model holds, wherever it is: the syringe (with what is still being pushed), the line,
    # the stopper's creep, out of the needles, the head's dead volume - less the air a suck-back drew in
    return model.content_nl + model.stored_nl + model.creep_nl + model.out_nl + model.head_fill_nl - model.tip_nl


@pytest.mark.parametrize("back_after_us", [0, 300, 5000])
def test_steps_back_right_after_a_push_keep_the_pushed_fluid(back_after_us):
    import emuboard

    clock = emuboard.ChipClock()
    module = emuboard.load_model(clock)
    model = module.Model(PROFILE, lambda msg: None)
    clock.now_us = 1000
    model.advance(clock.ticks_us())
    play = round(model.play_steps)
    model.plunger(play)  # the pusher meets the stopper
    start, content0 = fluid(model), model.content_nl
    model.plunger(400)  # 400 steps forward, pushed over the next ~2 ms...
    clock.now_us += back_after_us
    model.plunger(-(play + 100))  # ...and back across the play and 100 more (a whole suck-back in one call)
    clock.now_us += 50000
    model.advance(clock.ticks_us())
    assert fluid(model) == pytest.approx(start, abs=1e-6)  # nothing made, nothing lost
    net = content0 - model.content_nl  # what left the syringe: 300 steps' worth, however soon the steps came back
    assert net == pytest.approx(300 * model.nl_per_step, abs=1e-6)
