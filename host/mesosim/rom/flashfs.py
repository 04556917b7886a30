# The simulated board's flash as MicroPython sees it at /: the board's folder on the host (VfsPosix),
# with the two things a board's littlefs gives and the host's file system does not: file sizes in
# os.ilistdir (mpremote ls) and a flash-sized os.statvfs (mpremote df), instead of the host disk's.
# MicroPython, never on the flash: the harness mounts it once main.py returns, for the REPL (process.py).
import vfs

BLOCK = 4096  # erase block of the RP2040's QSPI flash
BLOCKS = 352  # 1408 KB: the littlefs a 2 MB Pico gives MicroPython (mcu/README.md)


class Flash:
    def __init__(self, folder):
        self._fs = vfs.VfsPosix(folder)

    def __repr__(self):  # what mpremote df names the file system by
        return "<SimFlash>"

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def __getattr__(self, name):  # open, stat, remove, rename, mkdir, rmdir, chdir, getcwd: the host's
        return getattr(self._fs, name)

    def ilistdir(self, path):
        base = path.rstrip("/") + "/" if path not in ("", ".") else ""
        for entry in self._fs.ilistdir(path):
            size = 0 if entry[1] == 0x4000 else self._fs.stat(base + entry[0])[6]
            yield (entry[0], entry[1], entry[2], size)

    def statvfs(self, path):
        used = min(self._used("/"), BLOCK * BLOCKS)
        free = BLOCKS - used // BLOCK
        return (BLOCK, BLOCK, BLOCKS, free, free, 0, 0, 0, 0, 255)

    def _used(self, path):
        # blocks taken, as a littlefs counts them roughly: each file rounded up to blocks, a block per folder
        used = BLOCK
        base = path.rstrip("/") + "/"
        for entry in self._fs.ilistdir(path):
            if entry[1] == 0x4000:
                used += self._used(base + entry[0])
            else:
                used += (self._fs.stat(base + entry[0])[6] + BLOCK - 1) // BLOCK * BLOCK
        return used
