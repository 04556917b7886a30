"""The simulated board's clock leaves out the time its process waited for a CPU (issue #20: the model's
line went on falling while the firmware was frozen; a prime's tail was read across 3-11 ms gaps at host
load 7), on the MicroPython unix port (firmware/tests/mpy_sim_clock.py, a fake schedstat)."""

import pathlib

import pytest

HERE = pathlib.Path(__file__).parent
SIM = HERE.parent / "boards" / "sim"


@pytest.fixture(scope="module")
def out(run_mpy):
    return run_mpy(HERE / "mpy_sim_clock.py", SIM)


@pytest.mark.req("SR-184")
def test_the_board_clock_takes_off_what_the_process_waited(out):
    assert out["overridden"]  # firmware and model import this `time`, not the built-in
    assert out["after_gap"] == [4500, 4, 500]  # 4.5 ms waited: off the us clock, 4 ms off the ms clock (+500 us)
    assert out["short"] == 4500  # a short gap is not looked at (no read per call)
    assert out["second_gap"] == [9000, 9, 0]
    # the firmware's ticks_us() trails the built-in by what was waited: read between two built-in reads, the
    # offset lies between them (the bracket is a few us wide, wider only if the process was held up there)
    since_before, until_after = out["ticks_us_bracket"]
    assert -since_before <= 9000 <= until_after, out["ticks_us_bracket"]


@pytest.mark.req("SR-201")
def test_the_board_clock_takes_off_what_the_host_took_that_was_not_asked_for(out):
    # issue #20's nappage outliers (6-12 Hz, 11-132 ms gaps "mixed": ran 0.1-0.4 ms, waited 0-6 ms): the
    # process lost host time that was neither run time, nor a wait for a CPU, nor a sleep it asked for (a
    # stolen vCPU, interrupts). That much less the run-time figure's lag (time.TICK_US, 4 ms) comes off, in us
    # and ms: 30 - 1 - 4 = 25 ms
    assert out["taken"] == [25000, 25, 0]
    assert out["ran"] == [0, 0, 0]  # the firmware's own long pass (its run time lagging a tick): kept
    assert out["slept"] == [0, 0, 0]  # a sleep it asked for: kept
    assert out["late_wake"] == [2000 + 23300, 25, 300]  # a sleep woken late: the wait and 30-0.1-2-0.6-4 off
    assert out["within_tick"] == [0, 0, 0]  # within the lag: kept
    assert out["sliced"] == [22000 - 4000, 18, 0]  # lost in pieces under a tick each: summed, less one tick
    assert out["credit"] == [30000 - 1000 - 4000 - 4000, 21, 0]  # the early polls' credit dropped past a tick


@pytest.mark.req("SR-184")
def test_the_board_clock_never_runs_backwards_when_it_takes_off_many_short_waits_at_once(out):
    # a read finds the waits of the whole span since the last read; taken off in the gap it came in, 4 ms of short
    # preemptions stepped the clock 3.7 ms back under load: a suck-back's Axis ran forward for a pass (35 steps), a
    # point's record then counted 18 steps that had gone into the air (test_journal, 1 run in ~100 with CPU hogs)
    values = out["stepped"]
    assert all(b >= a for a, b in zip(values, values[1:])), values
    assert values[-1] - values[0] == 40 * 150 + 300 + 8 * 1000 - 150 - 40 * 100  # all of it taken off, in the end
