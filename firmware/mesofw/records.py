# Record ids: unique and increasing across reboots (boot count in the high half).
# The boot count is written once per boot, never in the dosing loop.
BOOT_FILE = "boot_count"


class RecordCounter:
    def __init__(self, path=BOOT_FILE):
        try:
            with open(path) as f:
                count = int(f.read().strip() or 0)
        except (OSError, ValueError):
            count = 0
        self.boot_count = (count + 1) & 0xFFFF
        with open(path, "w") as f:
            f.write(str(self.boot_count))
        self.n = 0

    def next_id(self):
        self.n += 1
        return (self.boot_count << 16) | (self.n & 0xFFFF)
