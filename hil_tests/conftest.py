"""HIL rig of this repository: the mesoinject pytest plugin's fixtures (rig, device, sim, scale) against
--mesoinject-port, or by default a fresh simulated board per test module (started here)."""

from __future__ import annotations

import contextlib

import pytest

from mesoinject.pytest_plugin import Rig
from mesoinject.records import RecordStore


def pytest_mesoinject_board_starter(config):
    board = config.getoption("mesoinject_board")
    if board not in (None, "sim"):
        raise pytest.UsageError(f"--mesoinject-board {board} needs --mesoinject-port PORT (the board's serial "
                                "port); without a port the suites run on a simulated board")
    return start_sim


@contextlib.contextmanager
def start_sim(request, tmp_path_factory):
    from mesoinject.simulated import SimBoard

    # imperfect mechanics, but the bore as in the table: recorded-vs-truth tests assume a
    # calibrated syringe (calibration has its own tests)
    with SimBoard(seed=request.config.sim_seed, profile={"diameter_error": 0.0},
                  workdir=tmp_path_factory.mktemp("board")) as board:  # kept: its log outlives a failure
        yield Rig(board.url, board)


@pytest.fixture
def store(tmp_path):
    s = RecordStore(tmp_path / "records.db")
    yield s
    s.close()


@pytest.fixture(scope="module")
def slow(request, tmp_path_factory):
    """A simulated board whose flash takes its worst-case datasheet time, the CPU stalled meanwhile
    (as on an RP2040)."""
    from hil import WORST_ERASE_MS, WORST_PAGE_US
    from mesoinject.simulated import SimBoard

    with SimBoard(seed=request.config.sim_seed, workdir=tmp_path_factory.mktemp("slowflash"),
                  profile={"diameter_error": 0.0, "flash_erase_ms": WORST_ERASE_MS,
                           "flash_page_us": WORST_PAGE_US}) as board:
        yield board
