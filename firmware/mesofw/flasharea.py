# The journal's append area on a real board (pico, esp32s3): blocks of the board's own littlefs flash,
# reserved as files that are never written through littlefs again, programmed and erased directly.
#
# Why not a region beside littlefs: MicroPython's stock firmware mounts littlefs over its whole flash
# region at every boot (the frozen _boot.py) and formats it when the mount fails, and littlefs refuses a
# block device larger than the block count it was made with (measured with the RPI_PICO v1.29 uf2 on
# the emulated Pico: a littlefs of 336 of the region's 352 blocks was reformatted at boot, its files
# gone). A shrunk filesystem would need a custom firmware build.
# Why files work: a file of exactly one block (4096 B) is one data block with no skip-list pointers in
# it; littlefs's traversal names that block without reading it and never moves it while the file is
# not written. littlefs sees a file whose bytes change; nothing else changes for it.
# Set up by the firmware at boot (open_area), the first boot of a firmware with this module included:
# no reformat, the journal and every other file kept; a fresh chip the same way. A filesystem without
# room for the files boots without an area (every record into its cell, the old path).
#
# Each block's first entry is its header (MAGIC, the area's random tag, the block's index). At setup
# the files are written with it, and the device is scanned for it to learn each file's block; at every
# boot the header read through the file and read raw from that block must agree: the block is still
# the file's. The blocks are handed to AppendLog (appendlog.py) less their header entry, in a turning
# order: after a settle has erased the area, its next entries begin at the block after the last one erased
# (the turn kept in the map), so every block takes its share of the erases, not the first alone.
import os
import struct

import micropython

from mesofw.appendlog import ENTRY

FOLDER = "journal.area"  # beside the journal's folder: a file per block and the map
BLOCKS = 4  # 4 x 127 entries: ~70 nappage shots before the journal must settle (as the sim's area)
MAGIC = b"MESOAREA"
ROM_PAGE = 256  # the RP2040 boot ROM's program unit (FileBlocks)
_HEADER = "<8sII"  # MAGIC, tag, index (the rest of the entry erased)
_HEADER_LEN = 16
_ERASED = b"\xff" * ENTRY


@micropython.viper
def _put(page, at: int, src, n: int):
    # n bytes of src into page at `at` (no slice object: no allocation per entry)
    d = ptr8(page)
    s = ptr8(src)
    i = 0
    while i < n:
        d[at + i] = s[i]
        i += 1


@micropython.viper
def _wipe(page, at: int, n: int):
    d = ptr8(page)
    i = 0
    while i < n:
        d[at + i] = 0xFF
        i += 1


class FileBlocks:
    # AppendLog's block device over the reserved blocks: block i is device block blocks[i] past its header.
    # page: the flash's program unit as the device takes it. The RP2040's boot ROM programs whole 256-byte
    # pages from a page boundary (an entry alone would be programmed with whatever follows it in RAM), so
    # there an entry goes out as its page with every other byte 0xFF (programming a 1 leaves a bit as it is).
    # page == ENTRY: the device programs any range (ESP-IDF's esp_partition_write), the entry as it is.
    def __init__(self, dev, blocks, tag, page, turned=0, map_f=None):
        self.dev = dev
        self.blocks = blocks
        self.turned = turned  # AppendLog's block 0 is blocks[turned]
        self.map_f = map_f  # the map, kept open: a turn is a seek, a 4-byte write and a flush
        self.word = bytearray(4)
        self.size = dev.ioctl(5, 0)
        self.page = bytearray(b"\xff" * page) if page > ENTRY else None
        self.headers = [struct.pack(_HEADER, MAGIC, tag, i) + _ERASED[_HEADER_LEN:] for i in range(len(blocks))]

    def _at(self, block):
        return self.blocks[(block + self.turned) % len(self.blocks)]

    def readblocks(self, block, buf, offset=0):
        self.dev.readblocks(self._at(block), buf, offset + ENTRY)

    def writeblocks(self, block, buf, offset=0):
        self._program(self._at(block), buf, offset + ENTRY)

    def shut(self):
        if self.map_f:
            self.map_f.close()

    def turn(self, n):
        # called by AppendLog.erase once the whole area is erased (so a cut before the map is written loses
        # nothing: no entry to place); littlefs writes the map whole or not at all
        self.turned = (self.turned + n) % len(self.blocks)
        self.word[0] = self.turned
        if self.map_f:
            self.map_f.seek(4)
            self.map_f.write(self.word)
            self.map_f.flush()

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.blocks)
        if op == 5:
            return self.size - ENTRY  # AppendLog's slots: the header entry is not one
        if op == 6:  # erase, and the header back at once (a cut between: both reads erased, see check)
            i = (arg + self.turned) % len(self.blocks)
            self.dev.ioctl(6, self.blocks[i])
            self._program(self.blocks[i], self.headers[i], 0)
            return 0
        return 0

    def _program(self, dev_block, buf, at):
        page = self.page
        if page is None:
            self.dev.writeblocks(dev_block, buf, at)
            return
        n = len(buf)
        o = at % len(page)
        _put(page, o, buf, n)
        self.dev.writeblocks(dev_block, page, at - o)
        _wipe(page, o, n)

    def check(self, folder):
        # every block still its file's: the header read through littlefs and raw agree. Erased in both (a
        # cut between an erase and its header): the header programmed raw must then read through the file.
        via_file = bytearray(ENTRY)
        raw = bytearray(ENTRY)
        for i in range(len(self.blocks)):
            for attempt in (0, 1):
                with open("%s/%d" % (folder, i), "rb") as f:
                    f.readinto(via_file)
                self.dev.readblocks(self.blocks[i], raw, 0)
                if via_file == raw == self.headers[i]:
                    break
                if attempt or via_file != _ERASED or raw != _ERASED:
                    return False
                self._program(self.blocks[i], self.headers[i], 0)
        return True


def open_area(dev, page, folder=FOLDER, blocks=BLOCKS, feed=None):
    # the area over `dev` (the block device littlefs is mounted on: rp2.Flash(), the esp32 vfs partition),
    # set up if it is not there or not sound; None (and why) if it cannot be. feed(): the board's watchdog,
    # between the setup's file writes (each an erase or two: up to ~0.9 s at the flash's worst, WDT 2 s)
    try:
        with open(folder + "/map", "rb") as f:
            fields = struct.unpack(_map(blocks), f.read())  # the tag, the turn, each file's block
        area = FileBlocks(dev, list(fields[2:]), fields[0], page, fields[1] % blocks)
        if os.stat(folder + "/0")[6] == dev.ioctl(5, 0) and area.check(folder):
            area.map_f = open(folder + "/map", "r+b")
            return area, "kept"
    except (OSError, ValueError):
        pass  # none yet (or unreadable): made afresh, entries in an unsound area cannot be trusted anyway
    try:
        return _make(dev, page, folder, blocks, feed or _nothing), "made"
    except OSError as e:
        return None, "no room for the journal's append area (%s): records go straight to their cells" % e


def _map(blocks):
    return "<%dI" % (blocks + 2)


def _nothing():
    pass


def _make(dev, page, folder, blocks, feed):
    try:
        os.mkdir(folder)
    except OSError as e:
        if e.errno != 17:  # EEXIST
            raise
    for name in os.listdir(folder):
        feed()
        os.remove(folder + "/" + name)
    size = dev.ioctl(5, 0)
    tag = struct.unpack("<I", os.urandom(4))[0] & 0x3FFFFFFF  # a small int: no allocation on a 32-bit port
    for i in range(blocks):
        feed()
        with open("%s/%d" % (folder, i), "wb") as f:
            f.write(struct.pack(_HEADER, MAGIC, tag, i))
            rest = size - _HEADER_LEN
            while rest > 0:  # erased bytes: the block is ready for entries as littlefs leaves it
                n = min(rest, ENTRY)
                f.write(_ERASED[:n])
                rest -= n
    feed()
    # where littlefs put each file: its header found on the device (once, at setup)
    found = [-1] * blocks
    raw = bytearray(ENTRY)
    for b in range(dev.ioctl(4, 0)):
        dev.readblocks(b, raw, 0)
        if raw[:8] == MAGIC:
            _, t, i = struct.unpack(_HEADER, raw[:_HEADER_LEN])
            if t == tag and i < blocks:
                if found[i] >= 0:
                    raise OSError(5)  # two blocks with one header: not sure which is the file's
                found[i] = b
    if min(found) < 0:
        raise OSError(5)
    area = FileBlocks(dev, found, tag, page)
    if not area.check(folder):
        raise OSError(5)
    feed()
    with open(folder + "/map", "wb") as f:
        f.write(struct.pack(_map(blocks), tag, 0, *found))
    area.map_f = open(folder + "/map", "r+b")
    return area
