# The boot counter: written once per boot (write-then-rename: a torn write keeps the old count).
# Record ids start each boot at boot_count << 16, so they keep increasing even if the
# journal is erased while this file survives.
import os

FILE = "boot_count"


def next_boot(path=FILE):
    try:
        with open(path) as f:
            count = int(f.read().strip() or 0)
    except (OSError, ValueError):
        count = 0
    count = (count + 1) & 0xFFFF
    with open(path + ".new", "w") as f:
        f.write(str(count))
    os.rename(path + ".new", path)
    return count
