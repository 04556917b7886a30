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


BOARD_LOG_TAIL = 60  # lines of the board's log shown beside a failed test


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test on a simulated board shows the end of the board's log (firmware tracebacks,
    reboots); the whole log stays in the module's pytest tmp folder."""
    report = yield
    rig = item.funcargs.get("rig") if hasattr(item, "funcargs") else None
    if report.failed and rig is not None and rig.sim is not None:
        log = rig.sim.log_path
        try:
            tail = log.read_bytes().decode(errors="replace").splitlines()[-BOARD_LOG_TAIL:]
        except OSError as e:
            tail = [f"(no board log: {e})"]
        report.sections.append((f"board log {log} (last {BOARD_LOG_TAIL} lines)", "\n".join(tail)))
    return report


@pytest.fixture(scope="module")
def rig(request, tmp_path_factory):
    port = request.config.getoption("--port")
    if port:
        yield Rig(port, None)
        return
    if request.config.getoption("--board") != "sim":
        raise pytest.UsageError("a real board needs --port PORT")
    from mesoinject.simulated import SimBoard

    # imperfect mechanics, but the bore as in the table: recorded-vs-truth tests assume a
    # calibrated syringe (calibration has its own tests)
    with SimBoard(seed=request.config.sim_seed, profile={"diameter_error": 0.0},
                  workdir=tmp_path_factory.mktemp("board")) as board:  # kept: its log outlives a failure
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
