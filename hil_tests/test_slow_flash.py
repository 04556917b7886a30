"""The board's flash at its worst-case datasheet time (a 4 KB erase 400 ms, a page 0.8 ms; the
CPU stalled meanwhile, as on an RP2040): stops stay within 2 ms of plunger travel, and a loop
that falls behind says so in STATUS.

Measured in plunger steps on the model's ground truth, never in time.
"""

import time

import pytest

from hil import drain, prime_and_arm, wait_state
from mesoinject.client import Device
from mesoprotocol import spec
from test_stops import SLOW_POINT

pytestmark = pytest.mark.sim_only  # slows a simulated board's flash

WORST_ERASE_MS = 400
WORST_PAGE_US = 800
STOP_ALLOWANCE_S = 0.002  # trigger release / E-stop -> the plunger's last step


@pytest.fixture(scope="module")
def slow(request, tmp_path_factory):
    from mesoinject.simulated import SimBoard

    with SimBoard(seed=request.config.sim_seed, workdir=tmp_path_factory.mktemp("slowflash"),
                  profile={"diameter_error": 0.0, "flash_erase_ms": WORST_ERASE_MS,
                           "flash_page_us": WORST_PAGE_US,
                           # no append area: checkpoints and closes erase mid-dose, as on the Pico today
                           "journal_area": 0}) as board:
        yield board


@pytest.fixture
def dev(slow):
    with Device.open(slow.url) as d:
        d.hello()
        d.abort()
        drain(d)
        yield d
        slow.set_trigger(False)
        slow.set_estop(False)
        d.abort()


def allowance_steps(sim):
    # 2 ms of plunger travel at the point's flow: what may still go out after a stop
    nl_per_step = 3.14159265 / 4 * (spec.SYRINGES[SLOW_POINT["syringe"]][1] / 1000) ** 2 / 3200 * 1000
    return int(SLOW_POINT["flow_nl_s"] / nl_per_step * STOP_ALLOWANCE_S) + 1


def stop_at_an_erase(dev, sim, line):
    """Start a slow point and, mid-dispense, send this input the moment the flash begins an erase
    (from the harness's I/O thread: the host's STATUS would wait out the stall)."""
    dev.configure(**SLOW_POINT)
    prime_and_arm(dev)
    sim.set_trigger(True)
    wait_state(dev, {spec.STATE_DELIVERING}, timeout=5)
    start = sim.truth().forward_steps
    while sim.truth().forward_steps - start < 200:  # well into the dispense (heartbeat kept)
        dev.status()
    kind = line.split()[0]
    with sim._cond:
        sim.last_input = None

    def once():
        sim.on_erase = None
        if kind == "contact":  # the gun lifted off the skin (test_contact.py)
            sim.send_contact(line.split()[1] == "1")
        else:
            sim.send_input(line)

    sim.on_erase = once
    while not (sim.last_input and sim.last_input.kind == kind):  # a checkpoint that erases a block
        dev.status()
        dev.next_event(0.01)
    return sim.last_input


def wait_retracted(dev, sim, pens, timeout=10):
    deadline = time.monotonic() + timeout
    while len(sim.penetrations) <= pens:
        assert time.monotonic() < deadline, "needle retraction"
        dev.status()
        dev.next_event(0.01)


@pytest.mark.parametrize("stop", ["trigger 0", "estop 1"])
def test_a_stop_during_a_worst_case_erase_adds_no_steps_beyond_2_ms(dev, slow, stop):
    pens = len(slow.penetrations)
    at_stop = stop_at_an_erase(dev, slow, stop)
    # the stop came while the flash had the firmware stalled (the case this test is about)
    assert at_stop.flash_busy
    # polling meanwhile, as a host does: the stop's record write is another worst-case erase, and a
    # host silent through both (500 ms) would end the test in LINK_LOST instead (seen under load)
    wait_retracted(dev, slow, pens)
    after = slow.truth().forward_steps - at_stop.forward_steps
    assert after <= allowance_steps(slow), f"{after} plunger steps after '{stop}'"
    assert wait_state(dev, {spec.STATE_ARMED, spec.STATE_FAULT}) == (
        spec.STATE_ARMED if stop == "trigger 0" else spec.STATE_FAULT)


def test_a_loop_held_up_by_the_flash_counts_its_overruns(dev, slow):
    before = dev.status()
    stop_at_an_erase(dev, slow, "trigger 0")
    wait_state(dev, {spec.STATE_ARMED})
    after = dev.status()
    assert after["overruns"] > before["overruns"]
    # the erase stalled one pass at least that long (a lower bound: a stall is never shorter)
    assert after["worst_pass_us"] >= WORST_ERASE_MS * 1000
