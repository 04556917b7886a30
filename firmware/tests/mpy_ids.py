# Runs on MicroPython: record ids across boots (mesofw.bootcount's floor and lease with the journal).
# argv[1]: an empty directory for the files. Prints observations as JSON.
import json
import os
import sys

from mesofw.bootcount import ID_LEASE, BootCount
from mesofw.journal import Journal
from mesoprotocol import spec

os.chdir(sys.argv[1])
out = {"lease": ID_LEASE}


def boot(jpath="journal"):
    # what App does at power-up
    b = BootCount()
    j = Journal(16, b.id_floor, jpath, lease=b.reserve)
    b.start(j.last_id)
    return b, j


def give(j, n):
    ids = []
    for k in range(n):
        rid = j.open(7, k, spec.KIND_SHOT, 1000, 0)
        j.close(0, 1000, 1000, 0)
        j.ack(rid)
        ids.append(rid)
    return ids


def erase(jpath="journal"):
    for name in os.listdir(jpath + ".d"):
        try:
            os.remove(jpath + ".d/" + name)
        except OSError:  # the folder NOW (the point in progress, the acknowledgements)
            for sub in os.listdir(jpath + ".d/" + name):
                os.remove(jpath + ".d/" + name + "/" + sub)
            os.rmdir(jpath + ".d/" + name)


seen = []
b, j = boot()
out["first_boot"] = [b.count, give(j, 3)]
seen += out["first_boot"][1]
b, j = boot()
out["second_boot"] = [b.count, give(j, 2)]
seen += out["second_boot"][1]
# more ids in one boot than a lease: a program reserves them first; then the journal is erased
j.reserve(ID_LEASE + 500)
seen += give(j, ID_LEASE + 500)
erase()
b, j = boot()
after_erase = give(j, 2)
seen += after_erase
out["after_erase"] = after_erase
out["unique_increasing"] = all(seen[i] < seen[i + 1] for i in range(len(seen) - 1))
out["max_before_erase"] = seen[-3]
# 1,000 boots: each spends at most a lease of ids (the old epoch spent 2^16: past 2^30 after 16,384 boots)
for _ in range(1000):
    b = BootCount()
    b.start(b.id_floor)
out["count_after_1000"] = b.count
b, j = boot()
out["id_after_1000_boots"] = give(j, 1)[0]
# a file of earlier firmware (the count alone): ids continue above its epoch count << 16
with open("boot_count", "w") as f:
    f.write("9")
erase()
b, j = boot()
out["legacy"] = [b.count, give(j, 1)[0]]
# alarms and program ends outside a program's reserve (E-stop while IDLE, an alarm after COMPLETE):
# more of them than a lease in one boot, then the journal is erased: their ids were leased too
b, j = boot()
given = []
for k in range(ID_LEASE + 100):
    rid = j.reserve_id() if k % 2 else 0  # an alarm raised while a point was open: its id first
    rid = j.add(spec.KIND_ALARM if k % 2 else spec.KIND_END, 7, 1, 0, 0, 0, 0, rid)
    j.ack(rid)
    given.append(rid)
erase()
b, j = boot()
out["alarms_then_erase"] = [min(given), max(given), give(j, 1)[0]]
print(json.dumps(out))
