# The simulated board's data flash: the journal's folder is a littlefs (VfsLfs2, as on the pico
# and esp32s3 boards) on a NOR-flash image whose erase and program take their datasheet time.
# On an RP2040 code runs from the same QSPI flash, so the CPU stalls while it is busy: here the
# firmware process is blocked for that long. The world does not stop meanwhile: the trigger,
# E-stop and other inputs the harness changes are taken (and stamped) as they happen, though
# the firmware sees them only once the flash is done (board.Board._serve_ctrl via `world`).
# The image is a file on the board's VfsPosix root, written through as littlefs programs it,
# so a power cut leaves what a real chip would: every page programmed so far. (A write is a
# write(2) straight to the OS, which keeps it when the harness kills the process for a power cut;
# no flush: on the unix port that is an fsync, milliseconds of the host's disk on a loaded machine.)
# The host's own I/O is counted inside the flash's time (the busy clock starts at the call), not on top.
import vfs
from time import ticks_add, ticks_diff, ticks_us

BLOCK = 4096  # erase block (sector) of the RP2040's and the ESP32-S3's QSPI flash
PAGE = 256  # program page
BLOCKS = 160  # 640 KB: 6000 journal cells (94 segments) with room for littlefs to copy on write
# The journal's append area after the filesystem (mesofw/appendlog.py): raw blocks littlefs never sees,
# as a real board would set aside a partition. 4 blocks = 512 entries: ~70 nappage shots of 1-2 uL
# (open, ~5 checkpoints, close) before the device must settle them into their cells between shots.
LOG_BLOCKS = 4
ENTRY = 32  # the append area's entry (appendlog.ENTRY)
TYPICAL_ERASE_MS = 45  # W25Q16JV sector erase: 45 ms typical, 400 ms worst case
TYPICAL_PAGE_US = 600  # page program: 0.4-0.8 ms (3 ms worst case)
# Timed by default (typical figures; a profile's flash_erase_ms/flash_page_us override them, 0: untimed):
# no figure comes from a RAM disk. A nappage shot costs page programs in the append area (~7 x 0.6 ms);
# the block copies and erases come when the journal settles, off the dose (bench_cadence).
ERASE_MS = TYPICAL_ERASE_MS
PAGE_US = TYPICAL_PAGE_US
IMAGE = "/flash.img"


class Flash:
    # littlefs's extended block-device protocol (offset given: program or read within a block;
    # ioctl 6: erase). No allocation per call: the image file and the block number's maths only.
    def __init__(self, path, erase_ms, page_us, world):
        self.erase_us = erase_ms * 1000
        self.page_us = page_us
        self.world = world  # world(until_us, erasing): the inputs keep changing until then (the CPU is stalled)
        self.timed = False  # formatting at the factory costs no one anything
        self.erases = 0
        self.busy_us = 0  # flash time so far: the firmware stood still this long
        self.reads = 0  # littlefs's read calls (a traversal of the whole filesystem costs thousands)
        self.io_us = 0  # time in the image file's own I/O (the host machine's disk, not the flash's timing)
        try:
            self.f = open(path, "r+b")
        except OSError:
            self.f = open(path, "w+b")
        self.ff = b"\xff" * BLOCK
        n = self.f.seek(0, 2) // BLOCK  # an image of earlier firmware has no append area yet: erased blocks added
        while n < BLOCKS + LOG_BLOCKS:
            self.f.write(self.ff)
            n += 1
        self.f.flush()
        self.log_area = Area(self, BLOCKS, LOG_BLOCKS)

    def _busy(self, t0, us, erasing):
        # busy until us after t0 (the call: the image file's I/O since then is inside that time)
        if self.timed and us:
            self.busy_us += us
            self.world(ticks_add(t0, us), erasing)

    def readblocks(self, block, buf, offset=0):
        self.reads += 1
        self.f.seek(block * BLOCK + offset)
        self.f.readinto(buf)

    def writeblocks(self, block, buf, offset=None):
        if offset is None:  # the basic protocol: whole blocks, erased first
            for b in range(len(buf) // BLOCK):
                self.ioctl(6, block + b)
            offset = 0
        t = ticks_us()
        self.f.seek(block * BLOCK + offset)
        self.f.write(buf)
        self.io_us += ticks_diff(ticks_us(), t)
        self._busy(t, (len(buf) + PAGE - 1) // PAGE * self.page_us, False)

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return BLOCKS
        if op == 5:  # block size
            return BLOCK
        if op == 6:  # erase: the content goes first (a cut mid-erase leaves it erased or worse)
            self.erases += 1
            t = ticks_us()
            self.f.seek(arg * BLOCK)
            self.f.write(self.ff)
            self.io_us += ticks_diff(ticks_us(), t)
            self._busy(t, self.erase_us, True)
            return 0
        return 0


class Area:
    # raw blocks of the same flash outside littlefs (the journal's append area), timed like the rest. A
    # program onto bytes not erased is refused: NOR flash would AND them (a firmware bug, made loud here).
    def __init__(self, flash, first, count):
        self.flash = flash
        self.first = first
        self.count = count
        self.check = bytearray(ENTRY)  # what is there before a program: read into it, no allocation per entry

    def readblocks(self, block, buf, offset=0):
        self.flash.readblocks(self.first + block, buf, offset)

    def writeblocks(self, block, buf, offset=0):
        if len(buf) != ENTRY:
            raise OSError(22)  # EINVAL: the journal programs one entry at a time
        view = self.check
        self.flash.readblocks(self.first + block, view, offset)
        for b in view:
            if b != 0xFF:
                raise OSError(5)  # EIO: programmed over data
        self.flash.writeblocks(self.first + block, buf, offset)

    def ioctl(self, op, arg):
        if op == 4:
            return self.count
        if op == 5:
            return BLOCK
        if op == 6:
            return self.flash.ioctl(6, self.first + arg)
        return 0


def mount(folder, erase_ms, page_us, world):
    # the littlefs at /<folder>, formatted on first use (or when it cannot be mounted, as the rp2
    # port's _boot.py does); returns the Flash for its counters
    flash = Flash(IMAGE, erase_ms, page_us, world)
    # (the stubs type a block device as an abstract class; littlefs calls these three methods)
    try:
        fs = vfs.VfsLfs2(flash, progsize=PAGE)  # type: ignore[abstract, arg-type]
    except OSError:
        vfs.VfsLfs2.mkfs(flash, progsize=PAGE)  # type: ignore[arg-type]
        fs = vfs.VfsLfs2(flash, progsize=PAGE)  # type: ignore[abstract, arg-type]
    vfs.mount(fs, "/" + folder)
    flash.timed = True
    return flash

