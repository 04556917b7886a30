# Runs on MicroPython: the delivery journal across simulated reboots, torn writes and a full ring.
# argv[1]: an empty directory to keep journal files in. Prints observations as JSON.
import json
import os
import sys

from mesofw import journal
from mesofw.journal import COPY, SEGMENT, Journal
from mesoprotocol import spec

d = sys.argv[1]
out = {}


def path(name):
    return d + "/" + name


def point(j, point, delivered, session=7, kind=spec.KIND_POINT):
    # a BD 3 mL on syringe channel 2: the syringe and the channel ride in the record
    rid = j.open(session, point, kind, 30000, 1000 + point, 2, 2)
    if rid:
        j.checkpoint(delivered // 2, 3000, 1001 + point)
        j.close(0, delivered, 3000, 1002 + point)
    return rid


def pending(j):
    return [j.read(i) for i in range(j.cells) if j.status(i) == 2]


# a journal survives a reboot; acknowledgements in any order; ids keep increasing
j = Journal(16, 5 << 16, path("a"))
ids = [point(j, n, 29990 + n) for n in range(3)]
j.shut()
j = Journal(16, 6 << 16, path("a"))  # next boot
out["reboot"] = {"ids": ids, "unacked": j.unacked, "oldest": list(j.oldest()), "free": j.free()}
out["ack"] = [j.ack(ids[1]), j.ack(ids[1]), j.ack(12345)]
out["after_ack"] = {"unacked": j.unacked, "oldest": j.oldest()[0], "next": point(j, 3, 30000)}
j.shut()

# power cut during a point: the open record comes back closed, partial, at its last checkpoint
j = Journal(16, 1 << 16, path("b"))
point(j, 0, 30000)
rid = j.open(7, 1, spec.KIND_POINT, 30000, 2000, 2, 2)  # channel 2: it survives the repair
j.checkpoint(12000, 3000, 2100, 37)  # 37 kPa the least vacuum held so far: it survives too
j.shut()
j = Journal(16, 2 << 16, path("b"))
out["power_lost"] = {"rid": rid, "count": j.power_lost, "records": [list(r) for r in pending(j)]}
j.shut()

# a torn write of the closing copy: the previous version (the last checkpoint) survives
j = Journal(16, 1 << 16, path("c"))
point(j, 0, 30000)
cell = j.head
rid = j.open(7, 1, spec.KIND_POINT, 30000, 2000)
j.checkpoint(20000, 3000, 2100)
j.close(0, 30000, 3000, 2200)
copy = j.cell[cell] & 1  # the newest copy: its generation's parity
j.f.seek(cell * 2 * COPY + copy * COPY + 10)
j.f.write(b"\xff" * 8)  # power failed half-way through the copy
j.shut()
j = Journal(16, 2 << 16, path("c"))
out["torn"] = {"rid": rid, "repaired": j.repaired, "records": [list(r) for r in pending(j)]}
j.shut()

# a torn checkpoint (NOW/point): the previous checkpoint survives; in-order acks (NOW/acked) hold
j = Journal(16, 1 << 16, path("p"))
done = point(j, 0, 30000)
j.ack(done)
rid = j.open(7, 1, spec.KIND_POINT, 30000, 2000)
j.checkpoint(12000, 3000, 2100)
j.checkpoint(20000, 3000, 2200)
j.point_f.seek((j.point_gen & 1) * COPY + 10)
j.point_f.write(b"\xff" * 8)  # power failed half-way through the newest checkpoint
j.shut()
j = Journal(16, 2 << 16, path("p"))
out["torn_point"] = {"rid": rid, "repaired": j.repaired, "records": [list(r) for r in pending(j)], "acked": done}
j.shut()

# in-order acks taken without writing NOW/acked (a burst): a power cut before flush_acks() sends those
# records again (never loses one); after flush_acks() they stay acknowledged across a reboot
j = Journal(16, 1 << 16, path("q"))
ids = [point(j, n, 30000) for n in range(3)]
writes = []
for rid in ids[:2]:
    gen = j.acked_gen
    j.ack(rid, False)
    writes.append(j.acked_gen != gen)
j.shut()
j = Journal(16, 2 << 16, path("q"))
cut = [r[0] for r in pending(j)]
for rid in ids[:2]:
    j.ack(rid, False)
j.flush_acks()
j.shut()
j = Journal(16, 3 << 16, path("q"))
out["deferred_acks"] = {"ids": ids, "wrote": writes, "after_cut": cut, "after_flush": [r[0] for r in pending(j)]}
j.shut()

# a torn first write at the end of the last segment: no record, nothing else lost
j = Journal(16, 1 << 16, path("e"))
point(j, 0, 30000)
j.shut()
with open(path("e") + ".d/0", "ab") as f:
    f.write(b"\x01\x02\x02\x01\x05")
j = Journal(16, 2 << 16, path("e"))
out["torn_tail"] = {"repaired": j.repaired, "unacked": j.unacked}
j.shut()

# a full ring refuses the next point until the host acknowledges; it wraps and survives reboots
j = Journal(4, 1 << 16, path("f"))
ids = [point(j, n, 30000) for n in range(5)]
out["full"] = {"ids": ids, "free": j.free()}
j.ack(ids[0])
j.ack(ids[1])
more = [point(j, n, 30000) for n in range(5, 8)]
j.shut()
j = Journal(4, 1 << 16, path("f"))
out["wrapped"] = {"more": more, "free": j.free(), "unacked": j.unacked, "oldest": j.oldest()[0],
                  "order": [r[0] for r in pending(j)], "next_ok": point(j, 9, 1) != 0}
j.shut()


# earlier firmware kept the journal in one file: at boot it is moved into the segments, byte for
# byte (a torn tail too), and removed; a move cut short by a power loss runs again
def segments(name):
    data = b""
    n = 0
    while True:
        try:
            with open("%s.d/%d" % (path(name), n), "rb") as f:
                data += f.read()
        except OSError:
            return data, n
        n += 1


def state(j):
    return {"unacked": j.unacked, "head": j.head, "tail": j.tail, "last_id": j.last_id, "repaired": j.repaired,
            "power_lost": j.power_lost, "free": j.free(), "records": [list(r) for r in pending(j)]}


j = Journal(150, 1 << 16, path("g"))  # two whole segments and 22 cells of a third
ids = [point(j, n, 30000 + n) for n in range(140)]
for rid in ids[:130] + ids[132:135]:
    j.ack(rid)
for i in range(j.cells):  # earlier firmware wrote every acknowledgement into its cell (this one: NOW/acked)
    if j.status(i) == journal.ACKED:
        r = j.read(i)
        j._write(i, journal.ACKED, r[4], r[3] | r[9] << 4, r[0], r[1], r[2], r[7], r[5], r[6], r[8])
j.open(7, 140, spec.KIND_POINT, 30000, 5000)  # cut by a power loss
j.checkpoint(12000, 3000, 5100)
# earlier firmware wrote the point in progress into its cell (this one: into NOW/point)
j._write(j.cur, journal.OPEN, 0, j.o_kind, j.o_id, j.o_session, j.o_point, 3000, j.o_programmed, 12000, 5100)
j.shut()
old, n = segments("g")
old += b"\x01\x02\x02\x01\x05"  # and a torn first write after it
for name in ("h", "k"):
    with open(path(name), "wb") as f:
        f.write(old)
with open(path("g") + ".d/%d" % (n - 1), "ab") as f:
    f.write(b"\x01\x02\x02\x01\x05")
os.mkdir(path("k") + ".d")  # k: a move cut short, after a later firmware had segments there
for seg, data in ((0, b"\xa5" * 100), (1, b"\x5a" * SEGMENT), (5, b"\x33" * SEGMENT)):
    with open(path("k") + ".d/%d" % seg, "wb") as f:
        f.write(data)
expected = Journal(150, 2 << 16, path("g"))
out["migrated"] = {"segments": n, "old_bytes": len(old), "expected": state(expected)}
expected.shut()
for name in ("h", "k"):
    j = Journal(150, 2 << 16, path(name))
    out["migrated"][name] = state(j)
    j.shut()
    out["migrated"][name + "_left"] = sorted(os.listdir(d))
    out["migrated"][name + "_same_bytes"] = segments(name) == segments("g")
    out["migrated"][name + "_files"] = sorted(n for n in os.listdir(path(name) + ".d") if n not in ("epoch", journal.NOW))  # the segments

# a segment lost in the middle (flash damage): the records in the segments after it still count,
# and the head goes after them, so none is overwritten
j = Journal(256, 1 << 16, path("hole"))
ids = [point(j, n, 30000) for n in range(150)]
j.shut()
os.remove(path("hole") + ".d/1")
j = Journal(256, 2 << 16, path("hole"))
out["hole"] = {"pending": [r[0] for r in pending(j)], "expected": ids[:64] + ids[128:], "head": j.head}
j.shut()

# an empty old file (a downgraded firmware made it): the segments stand
j = Journal(150, 1 << 16, path("down"))
ids = [point(j, n, 30000) for n in range(3)]
j.shut()
open(path("down"), "wb").close()
j = Journal(150, 2 << 16, path("down"))
out["downgrade"] = {"pending": [r[0] for r in pending(j)], "expected": ids, "old_left": "down" in os.listdir(d)}
j.shut()
print(json.dumps(out))
