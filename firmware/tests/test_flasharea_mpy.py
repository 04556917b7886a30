"""The journal's append area on the real boards (flasharea.py: blocks of the board's own littlefs flash,
reserved as one-block files and programmed/erased directly), run on the MicroPython unix port
(mpy_flasharea.py) over a RAM NOR flash that programs as the RP2040's boot ROM does (whole 256-byte pages
from a page boundary) and ANDs what it programs."""

import pathlib

import pytest

HERE = pathlib.Path(__file__).parent


@pytest.fixture(scope="module")
def fa(run_mpy):
    return run_mpy(HERE / "mpy_flasharea.py", heap="4M")


@pytest.mark.req("SR-166")
def test_a_point_goes_to_the_reserved_blocks_with_no_erase_and_no_allocation(fa):
    # open, 4 checkpoints, close: one page program each, under heap_lock (an allocation raises)
    assert fa["first"] == "made"
    assert fa["dose"] == {"erases": 0, "programs": 6, "used": 6}
    # every program a whole page from a page boundary: what the RP2040's boot ROM needs
    assert fa["unaligned"] == 0


@pytest.mark.req("SR-167")
def test_setting_the_area_up_keeps_the_journal_and_files_already_on_the_board(fa):
    # a journal of firmware without an area, and another file: both still there after the setup
    assert fa["old_kept"] is True
    assert fa["other_kept"] is True
    # the watchdog fed between the setup's flash writes (each file, the scan, the map): no step near its 2 s
    assert fa["feeds"] >= 4 + 2


@pytest.mark.req("SR-166", "SR-186")
def test_a_point_in_the_area_survives_a_reboot_on_the_same_blocks(fa):
    r = fa["reboot"]
    assert r["how"] == "kept" and r["same_blocks"] is True
    assert r["ids"] == [r["old"], r["rid"]]  # each record once, in order


@pytest.mark.req("SR-168")
def test_the_settle_off_the_dose_erases_the_areas_block_and_turns_to_the_next(fa):
    s = fa["settle"]
    assert s["before"] == 2 and s["after"] == 0
    first, after = s["turned"]
    assert s["erased"] == [s["area"][first]]  # the block the two records were in, no other
    # the next entries begin in the next block, so the erases go round the 4 blocks, not to the first alone
    assert after == (first + 1) % 4 and fa["next_block_used"] is True
    r = fa["turned_reboot"]  # the turn is kept (the map): a reboot reads the point from where it went
    assert r["how"] == "kept" and r["newest"] == r["rid"]


@pytest.mark.req("SR-168")
def test_a_cut_between_an_erase_and_its_header_keeps_the_area(fa):
    assert fa["cut_header"] == {"how": "kept", "same_blocks": True}


@pytest.mark.req("SR-169")
def test_a_map_that_names_a_block_not_the_files_is_not_trusted(fa):
    # programming a block littlefs may give to another file would corrupt it: the area is made afresh
    assert fa["stale_map"] == "made"


@pytest.mark.req("SR-169")
def test_no_room_for_the_area_boots_without_one_and_says_why(fa):
    none, why = fa["no_room"]
    assert none is True and "no room" in why and "straight to their cells" in why
