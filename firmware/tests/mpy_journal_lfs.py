# Runs on MicroPython: the journal on littlefs (VfsLfs2, the filesystem of the pico and esp32s3
# boards) over a RAM block device that counts erases and bytes programmed, to measure what one
# checkpoint costs the flash once the ring has wrapped, and how long the boot scan takes.
# argv[1]: cells (the boards have 6000). Prints observations as JSON.
import json
import os
import sys
import vfs
from time import ticks_diff, ticks_ms, ticks_us

from mesofw import journal
from mesofw.journal import Journal
from mesoprotocol import spec
from ramflash import RAMFlash

BLOCKS = 352  # 1.4 MB: the filesystem of a 2 MB Pico
cells = int(sys.argv[1])


flash = RAMFlash(BLOCKS)
vfs.VfsLfs2.mkfs(flash, progsize=256)  # as the rp2 port formats and mounts its flash
vfs.mount(vfs.VfsLfs2(flash, progsize=256), "/lfs")
PATH = "/lfs/journal"
out = {"cells": cells}

# fill the ring once, each point acknowledged as it closes (the host in sync): the head wraps to 0
j = Journal(cells, 1 << 16, PATH)
t = ticks_ms()
for n in range(cells - 80):
    j.open(7, n, spec.KIND_POINT, 30000, n)
    j.close(0, 30000, 3000, n)
    j.ack(j.last_id)
out["fill_ms"] = ticks_diff(ticks_ms(), t)


def cost(fn, *args):
    e, p, r = flash.erases, flash.programmed, flash.reads
    t = ticks_us()
    fn(*args)
    return flash.erases - e, flash.programmed - p, ticks_diff(ticks_us(), t), flash.reads - r


def dose(volume_nl, n):
    # a dose as the device journals it (device._start, _checkpoint): open, a checkpoint as the
    # dispense starts (the record's time inside its needle entry), then every JOURNAL_CHECKPOINT_NL
    # and at least 4 times a dose; close; the host's ack
    step = min(spec.JOURNAL_CHECKPOINT_NL, volume_nl // 4)
    j.open(7, n, spec.KIND_SHOT, volume_nl, n)
    at = 0
    while at < volume_nl:
        j.checkpoint(at, 3000, n)
        at += step
    j.close(0, volume_nl, 3000, n)
    j.ack(j.last_id)


for name, volume, count in (("shot_2ul", 2000, 60), ("point_30ul", 30000, 20)):
    costs = [cost(dose, volume, n) for n in range(count)]
    out[name] = {"doses": count, "max_erases": max(c[0] for c in costs),
                 "mean_erases": sum(c[0] for c in costs) / count, "mean_programmed": sum(c[1] for c in costs) / count,
                 "max_us": max(c[2] for c in costs), "mean_us": sum(c[2] for c in costs) // count,
                 "max_reads": max(c[3] for c in costs), "mean_reads": sum(c[3] for c in costs) / count}
out["wrapped"] = j.head == 0 and j.unacked == 0 and j.free() == cells  # the last 80 cells: those doses


# points near the start of the ring after the wrap: every checkpoint's cost, and the worst
erases = []
programmed = []
for n in range(8):
    j.open(7, n, spec.KIND_POINT, 30000, n)
    for k in range(1, 9):  # a 30 uL point checkpoints about every 1 uL, more than this
        e, p = cost(j.checkpoint, k * 1000, 3000, k)[:2]
        erases.append(e)
        programmed.append(p)
    j.close(0, 30000, 3000, n)
out["checkpoint"] = {"cells": [0, 7], "writes": len(erases), "max_erases": max(erases),
                     "max_programmed": max(programmed), "mean_erases": sum(erases) / len(erases),
                     "mean_programmed": sum(programmed) / len(programmed)}

out["overwrites"] = flash.overwrites


def state(j):
    return [j.unacked, j.head, j.tail, j.last_id, j.oldest()]


# the boot scan of the full journal: 8 records unacknowledged, nothing lost; it writes nothing
j.shut()
e, p = flash.erases, flash.programmed
t = ticks_ms()
j = Journal(cells, 2 << 16, PATH)
out["scan_ms"] = ticks_diff(ticks_ms(), t)
out["scan_writes"] = [flash.erases - e, flash.programmed - p]
out["after_boot"] = state(j)
j.shut()

if hasattr(journal, "Segments"):
    # a board flashed over earlier firmware: its single file (here the same bytes) is moved
    # into segments at the first boot; the journal comes back as it was
    buf = bytearray(journal.SEGMENT)
    j = Journal(cells, 2 << 16, PATH)
    for i in range(cells):  # earlier firmware wrote every acknowledgement into its cell (this one: NOW/acked)
        if j.status(i) == journal.ACKED:
            r = j.read(i)
            j._write(i, journal.ACKED, r[4], r[3] | r[9] << 4, r[0], r[1], r[2], r[7], r[5], r[6], r[8])
    j.shut()
    with open("/lfs/old", "wb") as dst:
        for name in sorted((n for n in os.listdir(PATH + ".d") if n.isdigit()), key=int):  # the segments, not the epoch
            with open(PATH + ".d/" + name, "rb") as src:
                dst.write(memoryview(buf)[: src.readinto(buf)])
            os.remove(PATH + ".d/" + name)  # the board has only the old file
    e, p = flash.erases, flash.programmed
    t = ticks_ms()
    j = Journal(cells, 2 << 16, "/lfs/old")
    out["migrate"] = {"ms": ticks_diff(ticks_ms(), t), "erases": flash.erases - e,
                      "programmed": flash.programmed - p, "state": state(j),
                      "files": sorted(os.listdir("/lfs")), "segments": len([n for n in os.listdir("/lfs/old.d") if n.isdigit()])}  # not the epoch file
    j.shut()
print(json.dumps(out))
