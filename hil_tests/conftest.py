"""HIL rig: the same tests against a fresh simulated board per module (default) or --port."""

from __future__ import annotations

import dataclasses

import pytest

from hil import drain
from mesoinject.client import Device
from mesoinject.records import RecordStore


def pytest_addoption(parser):
    group = parser.getgroup("hil", "hardware-in-the-loop rig")
    group.addoption("--board", default="sim", choices=("sim", "real"),
                    help="sim (default): a fresh simulated board per test module; real: the board on --port")
    group.addoption("--port", default=None, help="serial port or URL of the board under test (with --board real)")


@dataclasses.dataclass
class Rig:
    url: str
    sim: object | None  # mesosim.SimBoard when simulated


@pytest.fixture(scope="module")
def rig(request):
    if request.config.getoption("--board") == "real":
        port = request.config.getoption("--port")
        if not port:
            raise pytest.UsageError("--board real needs --port PORT")
        yield Rig(port, None)
        return
    from mesosim import SimBoard

    with SimBoard() as board:
        yield Rig(board.url, board)


@pytest.fixture
def sim(rig):
    if rig.sim is None:
        pytest.skip("needs the simulated board's control channel (ground truth and virtual trigger)")
    return rig.sim


@pytest.fixture
def device(rig):
    """A connected device, reset to IDLE with no events pending."""
    with Device.open(rig.url) as dev:
        dev.hello()
        dev.abort()
        drain(dev)
        yield dev
        try:
            dev.abort()
            if rig.sim:
                rig.sim.set_trigger(False)
        except Exception:
            pass


@pytest.fixture
def store(tmp_path):
    s = RecordStore(tmp_path / "records.db")
    yield s
    s.close()
