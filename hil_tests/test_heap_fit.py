"""The firmware a board is flashed with (modules compiled to .mpy) boots and doses in the RP2040's heap on
the simulated board: a firmware grown past it fails here with the MemoryError it printed, not somewhere later
with a link timeout. (firmware/tests/test_heap_fit_mpy.py holds its headroom; bench/bench_heap.py the figures.)"""

import pytest

from hil import load_program, run_with_operator
from mesoinject.client import Device
from mesoinject.flash import KEEP_SOURCE
from mesoinject.link import LinkError
from mesosim.harness import RP2040_HEAP


@pytest.mark.req("SR-190")
def test_the_flashed_image_boots_and_doses_in_the_rp2040_heap(request, tmp_path, store):
    from mesoinject.simulated import SimBoard

    with SimBoard(seed=request.config.sim_seed, profile={"diameter_error": 0.0}, workdir=tmp_path / "board",
                  sources=False, heap=RP2040_HEAP) as sim:  # a boot that runs out of heap raises here, naming the MemoryError
        assert sim.heap == RP2040_HEAP
        modules = sorted(str(p.relative_to(sim.flash)) for p in sim.flash.rglob("*.py")) + sorted(
            str(p.relative_to(sim.flash)) for p in sim.flash.rglob("*.mpy"))
        assert [m for m in modules if m.endswith(".py")] == sorted(KEEP_SOURCE), modules  # what a board runs
        assert "mesofw/device.mpy" in modules
        try:
            with Device.open(sim.url) as dev:
                dev.hello()
                outcome = run_with_operator(dev, sim, store, load_program("point-by-point", count=3))
        except (LinkError, TimeoutError) as e:
            pytest.fail(f"the firmware stopped answering in the {sim.heap} heap: {sim.firmware_error() or e}")
        assert outcome.completed, outcome.progress.alarms
        assert [r["point"] for r in store.deliveries(outcome.session_id) if r["kind"] == "point"] == [0, 1, 2]
        assert sim.firmware_error() == "", sim.firmware_error()
