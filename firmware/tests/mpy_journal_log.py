# Runs on MicroPython: the journal with an append area (appendlog.py) - littlefs on one RAM NOR
# flash for the cells, a second RAM flash as the raw area - across simulated power cuts: after a
# shot's close, mid-point, mid-settle (cells written, area not yet erased), and a torn close entry.
# A power cut here: every file left as it is (shut, no settle), a new Journal on the same flash.
# Prints observations as JSON.
import json
import vfs

from mesofw.appendlog import AppendLog
from mesofw.journal import Journal
from mesoprotocol import spec
from ramflash import BLOCK, ERASED, RAMFlash

CELLS = 256


fs_flash = RAMFlash(64)
area = RAMFlash(2)  # 256 entries
vfs.VfsLfs2.mkfs(fs_flash, progsize=256)
vfs.mount(vfs.VfsLfs2(fs_flash, progsize=256), "/lfs")
PATH = "/lfs/journal"
out = {}


def boot():
    return Journal(CELLS, 1 << 16, PATH, log=AppendLog(area))


def shot(j, n, volume=2000, close=True):
    # as the device journals a nappage shot: open, checkpoints (every volume/4), close
    j.open(7, n, spec.KIND_SHOT, volume, 100 + n)
    for k in range(4):
        j.checkpoint(k * volume // 4, 1000, 101 + n)
    if close:
        j.close(0, volume, 1000, 102 + n)
    return j.o_id


def records(j):
    # every unacknowledged record, oldest first
    rs = []
    i = j.tail
    for _ in range(j.unacked):
        while j.status(i) != 2:
            i = (i + 1) % CELLS
        rs.append(list(j.read(i)))
        i = (i + 1) % CELLS
    return rs


def cut(j):
    j.shut()
    return boot()


j = boot()
j.reserve(100)
# what a burst of shots costs the flash: only page programs in the area, nothing in littlefs
e, p, ae = fs_flash.erases, fs_flash.programs, area.erases
ids = [shot(j, n) for n in range(10)]
out["burst"] = {"fs_erases": fs_flash.erases - e, "fs_programs": fs_flash.programs - p,
                "area_erases": area.erases - ae, "area_entries": j.log.used, "pending": j.pending}
out["before_cut"] = records(j)

# a power cut right after the shots' closes, before any settle: each one back once, as closed
j = cut(j)
out["after_cut"] = {"records": records(j), "ids": ids, "pending": j.pending, "area_used": j.log.used,
                    "power_lost": j.power_lost, "area_erased": area.data[: 2 * BLOCK] == ERASED * 2}
for r in records(j):
    j.ack(r[0])
j.flush_acks()

# a cut while a shot is open (two checkpoints in): closed partial at its last checkpoint, once
j.open(7, 50, spec.KIND_SHOT, 2000, 500)
j.checkpoint(0, 1000, 501)
j.checkpoint(900, 1000, 502)
rid = j.o_id
j = cut(j)
out["open_cut"] = {"rid": rid, "records": records(j), "power_lost": j.power_lost}
for r in records(j):
    j.ack(r[0])
j.flush_acks()

# a cut between a settle's cell writes and its erase: the records are in both, counted once
ids = [shot(j, 60 + n) for n in range(3)]
erase = j.log.erase
j.log.erase = lambda: None  # the cut comes before the erase
j.settle()
j.log.erase = erase
j = cut(j)
out["settle_cut"] = {"ids": ids, "records": records(j)}
for r in records(j):
    j.ack(r[0])
j.flush_acks()

# a close torn by the cut (its entry half programmed): the shot's last checkpoint stands, partial
shot(j, 70)
slot = j.log.used - 1
a = slot * 32 + 10
area.data[a : a + 22] = ERASED[:22]  # the entry's tail never programmed
j = cut(j)
out["torn_close"] = {"records": records(j), "repaired": j.repaired}
for r in records(j):
    j.ack(r[0])
j.flush_acks()

# the host reads and acknowledges records not settled yet (in order and out of order), then a settle
ids = [shot(j, 80 + n) for n in range(3)]
out["pending_read"] = j.read(j.tail)[:7]
out["acks"] = [j.ack(ids[1], False), j.ack(ids[0], False)]
j.flush_acks()
j.settle()
j = cut(j)
out["acked_then_settled"] = {"unacked": j.unacked, "records": records(j), "pending": j.pending}
for r in records(j):
    j.ack(r[0])
j.flush_acks()

# the bound: the area short of a dose's entries says so; settled, it has room again
j.settle()
n = 0
while not j.short_of(8):
    shot(j, 100 + n)
    n += 1
out["bound"] = {"shots_before_short": n, "slots": j.log.slots}
before = records(j)
j.settle()
out["bound"]["after_settle"] = [j.short_of(8), j.log.used, j.pending]
j = cut(j)
out["bound"]["same_after_cut"] = records(j) == before
out["overwrites"] = [fs_flash.overwrites, area.overwrites]
print(json.dumps(out))
