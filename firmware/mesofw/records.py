# Record ids: unique and increasing across reboots (boot count in the high half).
# The boot count is written once per boot, never in the dosing loop.
import os

BOOT_FILE = "boot_count"


class RecordCounter:
    def __init__(self, path=BOOT_FILE):
        self.path = path
        try:
            with open(path) as f:
                count = int(f.read().strip() or 0)
        except (OSError, ValueError):
            count = 0
        self.boot_count = count
        self._next_epoch()

    def _next_epoch(self):
        # a new high half: at boot, and when 65535 ids of one epoch are used up
        self.boot_count = (self.boot_count + 1) & 0xFFFF
        with open(self.path + ".new", "w") as f:  # write-then-rename: a torn write keeps the old epoch
            f.write(str(self.boot_count))
        os.rename(self.path + ".new", self.path)
        self.n = 0

    def next_id(self):
        if self.n == 0xFFFF:
            self._next_epoch()
        self.n += 1
        return (self.boot_count << 16) | self.n
