"""The journal's append area on the emulated Pico (flasharea.py over rp2.Flash(), the block device the
stock firmware mounts littlefs on; tools/pico-emu/flash.mjs erases and programs as the chip's boot ROM
does, in datasheet time with the core stalled). A board with a journal of earlier firmware gets the area
at boot, the journal kept; a point during a dose costs page programs and no erase; the erase comes at
the settle, off the dose; after a reboot the point is there, replayed from the area.

Erases and programs are counted by the emulator between the script's MARK lines (its "flash" events),
not by the firmware. Skips (with what to do) where the binaries, node or rp2040js are missing.
"""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pico-emu"))
import picoemu  # noqa: E402

# First boot: earlier firmware's path (no area) journals point 1; then, as the new firmware boots, the
# area is set up and point 2 is journalled through it; then the settle (what the loop does when idle).
# Second boot: the area kept, both points there (the boot replays the area into the cells).
SCRIPT = r"""
import rp2
from mesofw import appendlog, bootcount, flasharea, journal
from mesoprotocol import spec as S
b = bootcount.BootCount()
if b.count == 1:
    j = journal.Journal(64, b.id_floor, lease=b.reserve)
    b.start(j.last_id)
    old = j.open(7, 1, S.KIND_POINT, 20000, 100)
    j.close(0, 20000, 2000, 101)
    j.shut()
    print('OLD', old)
area, how = flasharea.open_area(rp2.Flash(), flasharea.ROM_PAGE)
print('AREA', how, ' '.join(str(x) for x in area.blocks))
j = journal.Journal(64, b.id_floor, lease=b.reserve, log=appendlog.AppendLog(area))
if b.count == 1:
    print('MARK dose')
    rid = j.open(7, 2, S.KIND_POINT, 20000, 1234)
    j.checkpoint(10000, 2000, 1300)
    j.close(0, 19990, 2000, 1400)
    print('MARK closed')
    print('NEW', rid, j.log.used)
    j.settle()
    print('MARK settled', j.log.used)
else:
    b.start(j.last_id)
    print('IDS', ' '.join(str(j.read((j.tail + k) % j.cells)[0]) for k in range(j.unacked)))
    print('LAST', j.read((j.tail + j.unacked - 1) % j.cells))
j.shut()
"""


def _line(run: picoemu.Run, word: str) -> list[str]:
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith(word + " ")]
    assert lines, f"no {word} line:\n{run.stdout}\n{run.stderr}\n{run.error}"
    return lines[-1].split()[1:]


def _ops_between(run: picoemu.Run, first: str, last: str) -> list[dict]:
    # the emulator's flash operations after "MARK first" and before "MARK last", in order
    out, inside = [], False
    for e in run.events:
        if e.get("event") == "mark":
            inside = e["name"] == first if e["name"] in (first, last) else inside
        elif e.get("event") == "flash" and inside:
            out.append(e)
    return out


@pytest.mark.req("SR-166", "SR-167", "SR-168")
def test_a_point_journalled_through_the_append_area_costs_no_erase_and_survives_a_reboot(pico_fs, tmp_path):
    flash = tmp_path / "flash.img"
    flash.write_bytes(pico_fs.read_bytes())
    first = picoemu.run_script(SCRIPT, flash, tmp_path, flash=picoemu.Flash(save=flash, events=True), timeout_s=200)
    assert first.code == 0, f"{first.error}\n{first.stdout}\n{first.stderr}"
    how, *blocks = _line(first, "AREA")
    assert how == "made"
    base = picoemu.FS_OFFSET  # the events give flash offsets (the ROM functions' address argument)
    area = {base + int(b) * 4096 for b in blocks}
    # during the dose: one page program per entry (open, checkpoint, close), all in the area, no erase
    dose = _ops_between(first, "dose", "closed")
    assert [op["op"] for op in dose] == ["program"] * 3, dose
    assert all(op["addr"] - op["addr"] % 4096 in area for op in dose), dose
    # the settle, off the dose: the area's block erased
    settle = _ops_between(first, "closed", "settled")
    assert any(op["op"] == "erase" and op["addr"] in area for op in settle), settle
    assert first.flash["unaligned_programs"] == 0 and first.flash["xip_violations"] == 0, first.flash

    second = picoemu.run_script(SCRIPT, flash, tmp_path, flash=picoemu.Flash(save=flash), timeout_s=200)
    assert second.code == 0, f"{second.error}\n{second.stdout}\n{second.stderr}"
    assert _line(second, "AREA") == ["kept", *blocks]
    old, (new, _used) = _line(first, "OLD")[0], _line(first, "NEW")
    assert _line(second, "IDS") == [old, new]  # the earlier firmware's record kept, the new one once
    assert "19990" in " ".join(_line(second, "LAST"))
