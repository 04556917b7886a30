# Runs on MicroPython: the journal's append area on a real board's flash (flasharea.py) - blocks of the
# littlefs's own device reserved as files - on a RAM NOR flash that programs as the RP2040's boot ROM
# does (whole 256-byte pages from a page boundary; anything else counted) and ANDs what it programs.
# Prints observations as JSON.
import json
import os
import vfs

import micropython

from mesofw import flasharea
from mesofw.appendlog import AppendLog
from mesofw.journal import Journal
from mesoprotocol import spec
from ramflash import ERASED, RAMFlash

PAGE = 256


dev = RAMFlash(48, PAGE)
vfs.VfsLfs2.mkfs(dev, progsize=PAGE)
vfs.mount(vfs.VfsLfs2(dev, progsize=PAGE), "/lfs")
os.chdir("/lfs")
out = {}

# a board with a journal from firmware without an area: a point journalled into its cell
j = Journal(64, 1 << 16)
old_id = j.open(7, 1, spec.KIND_POINT, 20000, 100)
j.close(0, 20000, 1000, 101)
j.shut()
with open("other", "wb") as f:
    f.write(b"kept" * 300)

feeds = [0]


def feed():
    feeds[0] += 1


area, how = flasharea.open_area(dev, PAGE, feed=feed)
out["first"] = how
out["feeds"] = feeds[0]
log = AppendLog(area)
j = Journal(64, 1 << 16, log=log)
out["old_kept"] = j.oldest()[0] == old_id
# a point during a dose: open, checkpoints, close - programs in the area only, and no allocation
e0, p0 = dev.erases, dev.programs
micropython.heap_lock()
rid = j.open(7, 2, spec.KIND_POINT, 20000, 200)
for k in range(4):
    j.checkpoint(k * 5000, 1000, 201 + k)
j.close(0, 19990, 1000, 210)
micropython.heap_unlock()
out["dose"] = {"erases": dev.erases - e0, "programs": dev.programs - p0, "used": log.used}
j.shut()

# a reboot: the area kept (same blocks), the point replayed from it
blocks = list(area.blocks)
area, how = flasharea.open_area(dev, PAGE)
j = Journal(64, 1 << 16, log=AppendLog(area))
ids = []
i = j.tail
while len(ids) < j.unacked:
    ids.append(j.read(i)[0])
    i = (i + 1) % j.cells
out["reboot"] = {"how": how, "same_blocks": area.blocks == blocks, "ids": ids, "rid": rid, "old": old_id}
# the settle (off the dose) erased only the area's blocks among the device's erases since
# the next point through the area, then the settle off the dose: it erases the area's block it used
j.open(7, 3, spec.KIND_POINT, 20000, 300)
j.close(0, 20000, 1000, 301)
e0 = len(dev.erased_blocks)
used = j.log.used
turned = area.turned
j.settle()
out["settle"] = {"erased": dev.erased_blocks[e0:], "area": area.blocks, "before": used, "after": j.log.used,
                 "turned": [turned, area.turned]}
# the next point's entries begin in the next block (the wear spread), and a reboot finds them there
rid3 = j.open(7, 4, spec.KIND_POINT, 20000, 400)
j.close(0, 20000, 1000, 401)
head = bytearray(32)
dev.readblocks(area.blocks[area.turned], head, 32)  # its first entry slot, past the header
out["next_block_used"] = head != b"\xff" * 32
j.shut()
area.shut()
area, how = flasharea.open_area(dev, PAGE)
j = Journal(64, 1 << 16, log=AppendLog(area))
out["turned_reboot"] = {"how": how, "turned": area.turned, "newest": j.read((j.tail + j.unacked - 1) % j.cells)[0],
                        "rid": rid3}
j.shut()
area.shut()

# a cut between an erase and its header: both reads erased, the header put back, the area kept
dev.ioctl(6, area.blocks[1])
area, how = flasharea.open_area(dev, PAGE)
out["cut_header"] = {"how": how, "same_blocks": area.blocks == blocks}

# a map that points at a block that is not the file's (a file replaced by hand): made afresh
with open(flasharea.FOLDER + "/map", "rb") as f:
    m = bytearray(f.read())
m[8] = (m[8] + 1) % 48  # the first file's block (after the tag and the turn), wrong
with open(flasharea.FOLDER + "/map", "wb") as f:
    f.write(m)
area, how = flasharea.open_area(dev, PAGE)
out["stale_map"] = how
with open("other", "rb") as f:
    out["other_kept"] = f.read() == b"kept" * 300
out["unaligned"] = dev.unaligned

# a filesystem with no room for the area: none, and why
small = RAMFlash(8, PAGE)
vfs.VfsLfs2.mkfs(small, progsize=PAGE)
vfs.mount(vfs.VfsLfs2(small, progsize=PAGE), "/small")
os.chdir("/small")
try:
    for n in range(8):  # one-block files until littlefs has no room
        with open("fill%d" % n, "wb") as f:
            f.write(ERASED)
except OSError:
    pass
area, how = flasharea.open_area(small, PAGE)
out["no_room"] = [area is None, how]
print(json.dumps(out))
