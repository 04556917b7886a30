"""The journal on littlefs, the filesystem of the real boards, run on the MicroPython unix port
(mpy_journal_lfs.py): VfsLfs2 on a RAM block device that counts erases and bytes programmed.

littlefs rewrites a file from the modified block to its end: in the earlier single 384 KB file a
checkpoint near the start of the ring rewrote the whole file (94 blocks erased, 385 KB
programmed: seconds of flash time in the dosing loop). In 4 KB segments it rewrites one block.
"""

import pathlib

import pytest

HERE = pathlib.Path(__file__).parent
CELLS = 6000  # the pico's and the esp32s3's JOURNAL_CELLS
BLOCK = 4096


@pytest.fixture(scope="module")
def lfs(run_mpy):
    return run_mpy(HERE / "mpy_journal_lfs.py", CELLS, heap="4M")


def test_a_checkpoint_after_the_ring_wrapped_rewrites_one_block_not_the_journal(lfs):
    assert lfs["wrapped"] and lfs["overwrites"] == 0
    c = lfs["checkpoint"]
    print(f"\nlittlefs, {CELLS} cells, one checkpoint after the wrap: at most {c['max_erases']} blocks erased, "
          f"{c['max_programmed']} bytes programmed (mean {c['mean_erases']:.2f}, {c['mean_programmed']:.0f}); "
          f"boot scan {lfs['scan_ms']} ms")
    # NOW/point, inline in its folder's metadata log: a page programmed, and now and then the
    # log compacted (one erase). Before it, a checkpoint went into the cell: a block copied on
    # every one (1 erase and 3328 bytes each, up to 3 erases).
    assert c["max_erases"] <= 1 and c["max_programmed"] <= 3 * 256
    assert c["mean_erases"] <= 0.1


def test_a_dose_costs_one_block_copy_the_close(lfs):
    # open, checkpoints, close and the host's in-order ack of a 2 uL nappage shot and a 30 uL point.
    # Before NOW/: every one of those writes copied a block (measured on the earlier journal: 2 uL 6.8 erases, 17.8 KB; 30 uL 36, 97 KB).
    for name in ("shot_2ul", "point_30ul"):
        d = lfs[name]
        print(f"\n{name}: {d['mean_erases']:.2f} blocks erased (max {d['max_erases']}), "
              f"{d['mean_programmed']:.0f} bytes programmed per dose; littlefs reads {d['mean_reads']:.0f} "
              f"(max {d['max_reads']}), {d['mean_us']} us (max {d['max_us']}) on the unix port")
    shot, point = lfs["shot_2ul"], lfs["point_30ul"]
    assert shot["mean_erases"] <= 1.5 and shot["max_erases"] <= 3 and shot["mean_programmed"] <= 2 * BLOCK
    assert point["mean_erases"] <= 4 and point["mean_programmed"] <= 4 * BLOCK  # 31 checkpoints over seconds


@pytest.mark.req("SR-050")
def test_the_boot_scan_finds_everything_and_writes_nothing(lfs):
    # 8 points after the wrap, never acknowledged; opening a segment to read it costs no write
    unacked, head, tail, last_id, oldest = lfs["after_boot"]
    assert (unacked, head, tail, oldest[2]) == (8, 8, 0, 0)
    assert lfs["scan_writes"] == [0, 0]


@pytest.mark.req("SR-050")
def test_a_full_single_file_journal_is_moved_into_segments_on_littlefs(lfs):
    m = lfs["migrate"]
    print(f"\nmoving a {CELLS}-cell single-file journal into segments: {m['ms']} ms on the unix port, "
          f"{m['erases']} blocks erased, {m['programmed']} bytes programmed")
    assert m["state"] == lfs["after_boot"]
    assert m["files"] == ["journal.d", "old.d"] and m["segments"] == -(-CELLS // 64)
