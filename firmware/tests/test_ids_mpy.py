"""Record ids across boots on MicroPython: unique and increasing, journal erased or not, and below
2^30 (a small int on a 32-bit MCU) for far more boots than the old boot_count << 16 epoch allowed."""

import pathlib

import pytest

HERE = pathlib.Path(__file__).parent


@pytest.fixture(scope="module")
def r(run_mpy, tmp_path_factory):
    return run_mpy(HERE / "mpy_ids.py", tmp_path_factory.mktemp("ids"))


def test_ids_continue_across_boots(r):
    assert r["first_boot"] == [1, [1, 2, 3]]
    count, ids = r["second_boot"]
    assert count == 2 and ids[0] > 3  # above the first boot's lease, never a repeat
    assert ids[1] == ids[0] + 1


def test_ids_never_repeat_after_the_journal_is_erased(r):
    # the program reserved more than a lease before giving them: the floor on flash covered them all
    assert r["unique_increasing"]
    assert r["after_erase"][0] > r["max_before_erase"]


def test_ids_stay_small_ints_for_a_million_boots(r):
    # the old epoch (boot_count << 16) passed 2^30 after 16,384 boots; a boot now spends at most a lease
    assert r["count_after_1000"] == 3 + 1000
    boots = 1000 + 4
    assert r["id_after_1000_boots"] <= boots * (r["lease"] + 1) + r["lease"] + 500
    assert 10**6 * (r["lease"] + 1) < 1 << 30


def test_earlier_firmwares_file_keeps_ids_above_its_epoch(r):
    count, rid = r["legacy"]
    assert count == 10 and rid > 9 << 16


def test_alarm_and_end_records_lease_their_ids(r):
    # journalled alarms and program ends outside a program's reserve (more than a lease of them in
    # one boot), then the journal erased: the next id is above every one they took
    first, last, after = r["alarms_then_erase"]
    assert last - first == r["lease"] + 99  # every one journalled, ids in a row
    assert after > last
