# The boot counter and the record-id floor, in one small file written at every boot
# (write-then-rename: a torn write keeps the old one): "<boot_count> <id_floor>".
# Record ids must never repeat on a device (the host stores on (serial, record_id)), even if the
# journal is erased while this file survives. No id above id_floor has been given unless it is in
# the journal, so a boot continues above both. Each boot leases ID_LEASE ids ahead (and a program
# or prime that needs more extends the lease before it starts), so a boot spends at most ID_LEASE
# ids it does not give: ids stay below 2^30 - small ints on a 32-bit MCU - for a million boots
# plus 10^9 records. (Earlier firmware started each boot at boot_count << 16, past 2^30 after
# 16,384 boots; its file holds the count alone, and ids continue above count << 16.)
import os

from mesoprotocol.spec import BOOT_COUNT_MOD

FILE = "boot_count"
ID_LEASE = 1024


class BootCount:
    def __init__(self, path=FILE):
        self.path = path
        count = floor = 0
        try:
            with open(path) as f:
                words = f.read().split()
            count = int(words[0])
            floor = int(words[1]) if len(words) > 1 else count << 16
        except (OSError, ValueError, IndexError):
            pass
        self.count = (count + 1) % BOOT_COUNT_MOD  # names this boot (IDENTITY, ALARM): wraps after 2^30 boots
        self.id_floor = floor  # ids above it were never given, except those in the journal

    def start(self, last_id):
        # the journal is read (its ids continue above last_id >= id_floor): count this boot, lease ids
        self._save(max(last_id, self.id_floor) + ID_LEASE)

    def reserve(self, last_id, needed):
        # before a program or a prime gives up to `needed` ids after last_id: persist a floor above them
        if last_id + needed > self.id_floor:
            self._save(last_id + needed + ID_LEASE)

    def _save(self, floor):
        with open(self.path + ".new", "w") as f:
            f.write("%d %d" % (self.count, floor))
        os.rename(self.path + ".new", self.path)
        self.id_floor = floor
