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
    # the segment's block copied on write, and now and then the folder's metadata compacted
    assert c["max_erases"] <= 3 and c["max_programmed"] <= 3 * BLOCK
    assert c["mean_erases"] <= 1.5


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
