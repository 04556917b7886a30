"""HIL rig of this repository: the mesoinject pytest plugin's fixtures (rig, device, sim, scale) against
--mesoinject-port, or by default a fresh simulated board per test module (started here)."""

from __future__ import annotations

import contextlib
import pathlib
import sys

import pytest

from mesoinject.pytest_plugin import Rig
from mesoinject.records import RecordStore


def pytest_mesoinject_board_starter(config):
    board = config.getoption("mesoinject_board")
    if board == "pico-emu":
        return start_pico_emu
    if board not in (None, "sim"):
        raise pytest.UsageError(f"--mesoinject-board {board} needs --mesoinject-port PORT (the board's serial "
                                "port); without a port the suites run on a simulated board (sim) or an "
                                "emulated Pico (pico-emu)")
    return start_sim


@contextlib.contextmanager
def start_sim(request, tmp_path_factory):
    from mesoinject.simulated import SimBoard

    # imperfect mechanics, but the bore as in the table: recorded-vs-truth tests assume a
    # calibrated syringe (calibration has its own tests)
    with SimBoard(seed=request.config.sim_seed, profile={"diameter_error": 0.0},
                  workdir=tmp_path_factory.mktemp("board")) as board:  # kept: its log outlives a failure
        # the host's waits count the board's time (its process's CPU waits left out, as its clock does)
        yield Rig(board.url, board, clock=board.clock)


PICO_EMU = pytest.StashKey[object]()


@contextlib.contextmanager
def start_pico_emu(request, tmp_path_factory):
    """The real RPI_PICO firmware in rp2040js, its world the sim's model (tools/pico-emu/emuboard.py). One
    emulated board for the whole run, as a board on a port (each boot costs ~10 s of wall time); skipped,
    saying how to get the binaries, where they are absent."""
    import hil

    config = request.config
    board = config.stash.get(PICO_EMU, None)
    if board is None:
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools" / "pico-emu"))
        import emuboard
        import picoemu

        try:
            picoemu.locate()
        except picoemu.Unavailable as e:
            pytest.skip(f"emulated Pico unavailable: {e}")
        board = emuboard.EmuBoard(seed=config.sim_seed, profile={"diameter_error": 0.0},
                                  workdir=tmp_path_factory.mktemp("pico-emu"))
        board.start()
        config.stash[PICO_EMU] = board
        config.add_cleanup(board.stop)
    hil.SLOWDOWN = board.slowdown
    yield Rig(board.url, board, slowdown=board.slowdown, clock=lambda: board.emulated_s)


@pytest.fixture
def store(tmp_path):
    s = RecordStore(tmp_path / "records.db")
    yield s
    s.close()


@pytest.fixture(scope="module")
def slow(request, tmp_path_factory):
    """A simulated board whose flash takes its worst-case datasheet time, the CPU stalled meanwhile
    (as on an RP2040), and whose journal erases mid-dose."""
    from hil import WORST_ERASE_MS, WORST_PAGE_US
    from mesoinject.simulated import SimBoard

    with SimBoard(seed=request.config.sim_seed, workdir=tmp_path_factory.mktemp("slowflash"),
                  profile={"diameter_error": 0.0, "flash_erase_ms": WORST_ERASE_MS,
                           "flash_page_us": WORST_PAGE_US,
                           # no journal append area: checkpoints and closes erase mid-dose (the stops
                           # these tests aim at an erase), as on the Pico and ESP32-S3 today
                           "journal_area": 0}) as board:
        yield board
