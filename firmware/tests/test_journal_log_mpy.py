"""The journal with an append area (appendlog.py), run on the MicroPython unix port
(mpy_journal_log.py): littlefs on a RAM NOR flash for the cells, a second RAM flash as the area.

Before the area, every shot's close copied its segment's block in littlefs (one erase, ~1.3 per
shot with the metadata log's compactions: test_journal_lfs_mpy.py); a shot now costs page programs
only, and the records are moved into their cells later. These check that no power cut on the way
loses or double-counts a record.
"""

import pathlib

import pytest

from mesoprotocol import spec

HERE = pathlib.Path(__file__).parent
PARTIAL = spec.FLAG_PARTIAL | spec.FLAG_POWER_LOST


@pytest.fixture(scope="module")
def lg(run_mpy):
    return run_mpy(HERE / "mpy_journal_log.py", heap="4M")


@pytest.mark.req("SR-185")
def test_a_burst_of_shots_programs_pages_and_erases_nothing(lg):
    b = lg["burst"]
    # 10 shots: open, 4 checkpoints, close each; littlefs untouched, the area's entries programmed in order
    assert (b["fs_erases"], b["fs_programs"], b["area_erases"]) == (0, 0, 0)
    assert b["area_entries"] == 60 and b["pending"] == 10
    assert lg["overwrites"] == [0, 0]  # never a program onto bytes not erased


@pytest.mark.req("SR-186", "SR-050")
def test_a_cut_after_the_shots_before_their_cells_are_written_loses_nothing(lg):
    a = lg["after_cut"]
    assert [r[0] for r in a["records"]] == a["ids"]  # each shot once, in order
    assert a["records"] == lg["before_cut"]  # field for field what the host would have read before the cut
    assert all(r[4] == 0 and r[6] == 2000 for r in a["records"])  # closed, whole: not power-lost partials
    # the boot moved them into their cells and erased the area
    assert (a["pending"], a["area_used"], a["power_lost"], a["area_erased"]) == (0, 0, 0, True)


@pytest.mark.req("SR-186", "SR-053")
def test_a_cut_mid_shot_closes_it_partial_at_its_last_checkpoint(lg):
    o = lg["open_cut"]
    assert o["power_lost"] == 1
    [r] = o["records"]
    assert r[0] == o["rid"] and r[4] == PARTIAL and r[6] == 900 and r[8] == 502


@pytest.mark.req("SR-186")
def test_a_cut_between_a_settles_cell_writes_and_its_erase_counts_each_record_once(lg):
    s = lg["settle_cut"]
    assert [r[0] for r in s["records"]] == s["ids"]


@pytest.mark.req("SR-186")
def test_a_torn_close_keeps_the_shots_last_checkpoint(lg):
    t = lg["torn_close"]
    [r] = t["records"]
    assert t["repaired"] == 1 and r[4] == PARTIAL and r[6] == 1500  # the 3rd checkpoint (3/4 of 2 uL)


@pytest.mark.req("SR-051")
def test_records_not_yet_settled_are_read_and_acknowledged_like_any(lg):
    assert lg["pending_read"][2] == 80 and lg["pending_read"][6] == 2000
    assert lg["acks"] == [True, True]  # out of order, then in order
    a = lg["acked_then_settled"]
    assert a["unacked"] == 1 and a["pending"] == 0 and a["records"][0][2] == 82  # the acks survived the settle


@pytest.mark.req("SR-187")
def test_unsettled_records_are_bounded_by_the_area(lg):
    b = lg["bound"]
    # 6 entries a shot: the area says it is short once fewer than a dose's 8 are left
    assert b["shots_before_short"] == (b["slots"] - 8) // 6 + 1
    assert b["after_settle"] == [False, 0, 0] and b["same_after_cut"]
