# Whose drug fills the head's path, kept on flash: a reboot must not forget that channel A's drug is
# in the head when channel B is primed next (two drugs, never mixed; PROTOCOL.md 9c). Written only
# when it changes (a flushing prime's start and a prime's end, never in a dose), write-then-rename
# as bootcount.py: a torn write keeps the old value.
import os

FILE = "head_path"


def load(path=FILE):
    # 0 (dry, or never written) or the channel, or device.PATH_MIXED
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def save(channel, path=FILE):
    with open(path + ".new", "w") as f:
        f.write(str(channel))
    os.rename(path + ".new", path)
