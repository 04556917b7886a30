"""The device's delivery journal, run on the MicroPython unix port (mpy_journal.py)."""

import pathlib

import pytest

from mesoprotocol import spec

HERE = pathlib.Path(__file__).parent


@pytest.fixture(scope="module")
def j(run_mpy, tmp_path_factory):
    return run_mpy(HERE / "mpy_journal.py", tmp_path_factory.mktemp("journal"))


@pytest.mark.req("SR-050", "SR-057")
def test_records_survive_a_reboot_and_ids_keep_increasing(j):
    r = j["reboot"]
    assert r["ids"] == [(5 << 16) + 1, (5 << 16) + 2, (5 << 16) + 3]
    assert r["unacked"] == 3 and r["free"] == 13
    # record_id session point kind flags programmed delivered depth time syringe channel (vacuum_kpa)
    assert r["oldest"][:11] == [(5 << 16) + 1, 7, 0, spec.KIND_POINT, 0, 30000, 29990, 3000, 1002, 2, 2]
    assert r["oldest"][11] == 0  # closed without a vacuum (a switch head)
    assert j["after_ack"]["next"] == (6 << 16) + 1  # the new boot's epoch


@pytest.mark.req("SR-051", "SR-055")
def test_acknowledgement_is_idempotent_and_out_of_order(j):
    assert j["ack"] == [True, False, False]  # once; again: nothing; unknown id: nothing
    assert j["after_ack"]["unacked"] == 2
    assert j["after_ack"]["oldest"] == (5 << 16) + 1


@pytest.mark.req("SR-053", "SR-171")
def test_power_cut_mid_point_is_recorded_as_partial_at_its_last_checkpoint(j):
    r = j["power_lost"]
    assert r["count"] == 1
    last = r["records"][-1]
    assert last[0] == r["rid"]
    assert last[4] == spec.FLAG_PARTIAL | spec.FLAG_POWER_LOST
    assert last[6] == 12000
    assert (last[2], last[10]) == (1, 2)  # its point and syringe channel kept through the repair
    assert (last[5], last[11]) == (30000, 37)  # its programmed dose and the least vacuum held until the cut
    assert len(r["records"]) == 2  # the complete point before it is untouched


@pytest.mark.req("SR-055")
def test_torn_write_keeps_the_previous_version(j):
    r = j["torn"]
    assert r["repaired"] == 1
    last = r["records"][-1]
    # the close never completed (the host never heard of it): the checkpoint before it stands
    assert last[0] == r["rid"] and last[6] == 20000
    assert last[4] & spec.FLAG_POWER_LOST
    assert len(r["records"]) == 2


@pytest.mark.req("SR-055")
def test_torn_tail_is_dropped_and_nothing_else_lost(j):
    assert j["torn_tail"] == {"repaired": 1, "unacked": 1}


@pytest.mark.req("SR-058")
def test_full_ring_refuses_until_acknowledged_and_wraps(j):
    full = j["full"]
    assert full["ids"][4] == 0 and all(full["ids"][:4]) and full["free"] == 0
    w = j["wrapped"]
    assert w["more"][:2] == [full["ids"][3] + 1, full["ids"][3] + 2] and w["more"][2] == 0
    assert w["unacked"] == 4 and w["free"] == 0 and not w["next_ok"]
    # the four unacknowledged after the wrap: the two oldest never acknowledged, the two new
    assert sorted(w["order"]) == [full["ids"][2], full["ids"][3]] + w["more"][:2]
    assert w["oldest"] == full["ids"][2]


@pytest.mark.req("SR-050")
def test_a_single_file_journal_of_earlier_firmware_is_moved_into_segments(j):
    m = j["migrated"]
    assert m["segments"] == 3 and m["old_bytes"] == 141 * 64 + 5  # 140 points and one cut short
    e = m["expected"]  # the same bytes in segments, booted as they are
    assert e["unacked"] == 8 and e["power_lost"] == 1 and e["repaired"] == 1
    assert [r[0] for r in e["records"]] == [(1 << 16) + n for n in (131, 132, 136, 137, 138, 139, 140, 141)]
    for name in ("h", "k"):  # h: the old file alone; k: also a move cut short and a stale segment
        assert m[name] == e
        assert m[name + "_same_bytes"] and m[name + "_files"] == ["0", "1", "2"]
        assert name not in m[name + "_left"] and name + ".d" in m[name + "_left"]


@pytest.mark.req("SR-055")
def test_a_segment_lost_in_the_middle_hides_no_record_behind_it(j):
    hole = j["hole"]
    assert hole["pending"] == hole["expected"]  # segment 1's 64 records are gone with it; the rest count
    assert hole["head"] == 150  # after the newest: nothing is overwritten


@pytest.mark.req("SR-055")
def test_an_empty_old_journal_file_leaves_the_segments_alone(j):
    assert j["downgrade"]["pending"] == j["downgrade"]["expected"] and not j["downgrade"]["old_left"]


@pytest.mark.req("SR-050")
def test_a_torn_checkpoint_keeps_the_previous_one_and_acks_in_order_hold(j):
    # the point in progress lives in NOW/point (two copies, as a cell); the torn newest copy is
    # ignored and the point comes back partial at the checkpoint before; the point before it,
    # acknowledged in order (NOW/acked, its cell still CLOSED), is not sent again
    r = j["torn_point"]
    assert r["repaired"] == 1
    assert len(r["records"]) == 1
    rid, _, point, _, flags, programmed, delivered, _, t, _, _, _ = r["records"][0]  # ..., syringe, channel, vacuum
    assert (rid, point, programmed, delivered, t) == (r["rid"], 1, 30000, 12000, 2100)
    assert flags & spec.FLAG_PARTIAL and flags & spec.FLAG_POWER_LOST


@pytest.mark.req("SR-050", "SR-054")
def test_acks_deferred_during_a_burst_resend_after_a_power_cut_and_hold_once_flushed(j):
    # during a dose or burst the device takes the host's in-order ack in RAM (no flash time between
    # shots) and writes NOW/acked when its loop is next idle: a power cut before that only sends the
    # records again (the host stores each once: SR-054), and none is lost
    r = j["deferred_acks"]
    assert r["wrote"] == [False, False]
    assert r["after_cut"] == r["ids"]
    assert r["after_flush"] == r["ids"][2:]
