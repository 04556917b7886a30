"""HIL rig: the same tests against a fresh simulated board per module (default) or --port."""

from __future__ import annotations

import dataclasses

import pytest

from hil import drain
from mesoinject.client import Device
from mesoinject.records import RecordStore


@dataclasses.dataclass
class Rig:
    url: str
    sim: object | None  # mesosim.SimBoard when simulated


@pytest.fixture(scope="module")
def rig(request):
    port = request.config.getoption("--port")
    if port:
        yield Rig(port, None)
        return
    if request.config.getoption("--board") != "sim":
        raise pytest.UsageError("a real board needs --port PORT")
    from mesoinject.simulated import SimBoard

    # imperfect mechanics, but the bore as in the table: recorded-vs-truth tests assume a
    # calibrated syringe (calibration has its own tests)
    with SimBoard(seed=request.config.sim_seed, profile={"diameter_error": 0.0}) as board:
        yield Rig(board.url, board)


@pytest.fixture
def sim(rig):
    if rig.sim is None:
        pytest.skip("needs the simulated board's control channel (ground truth and virtual trigger)")
    return rig.sim


@pytest.fixture(scope="module")
def scale(rig, request):
    """A balance weighing what leaves the needle into the air: the simulated board's, or --balance PORT."""
    from mesoinject.balance import Balance

    port = rig.sim.balance.port if rig.sim else request.config.getoption("--balance")
    if not port:
        pytest.skip("needs ground truth: put an MT-SICS balance under the needle and pass --balance PORT")
    balance = Balance(port)
    yield balance
    balance.close()


@pytest.fixture
def device(rig):
    """A connected device, reset to IDLE with no events pending."""
    with Device.open(rig.url) as dev:
        dev.hello()
        dev.abort()
        drain(dev)
        yield dev
        try:
            if rig.sim:  # let go of every input a failed test may have left pressed
                rig.sim.set_trigger(False)
                rig.sim.set_estop(False)
            dev.abort()
        except Exception:
            pass


@pytest.fixture
def store(tmp_path):
    s = RecordStore(tmp_path / "records.db")
    yield s
    s.close()
