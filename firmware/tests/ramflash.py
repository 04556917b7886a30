# Runs on MicroPython: a NOR flash in RAM behind littlefs's extended block device protocol (offset given:
# program or read within a block; ioctl 6: erase), for the journal's tests. A program ANDs its bytes into
# the flash, as NOR does; one that would have to turn a programmed byte into another is an overwrite (a
# filesystem or journal bug). Given a page, a program not of whole pages from a page boundary is counted
# too (the RP2040's boot ROM programs whole 256-byte pages).

import micropython

BLOCK = 4096  # the erase block of the RP2040's and the ESP32-S3's flash
ERASED = b"\xff" * BLOCK


@micropython.viper
def _read(dst: ptr8, src: ptr8, a: int, n: int):
    i = 0
    while i < n:
        dst[i] = src[a + i]
        i += 1


@micropython.viper
def _program(dst: ptr8, a: int, src: ptr8, n: int) -> int:
    # ANDs src into dst[a:a+n]; 1 if a programmed byte would have had to become another (0xFF leaves it)
    clash = 0
    i = 0
    while i < n:
        old = dst[a + i]
        new = src[i]
        if old != 0xFF and new != 0xFF and new != old:
            clash = 1
        dst[a + i] = old & new
        i += 1
    return clash


class RAMFlash:
    # no allocation in a read or a program: the firmware's tests lock the heap around them
    def __init__(self, blocks, page=0):
        self.blocks = blocks
        self.page = page
        self.data = bytearray(ERASED * blocks)
        self.erases = 0
        self.erased_blocks = []
        self.programs = 0
        self.programmed = 0  # bytes
        self.overwrites = 0
        self.unaligned = 0
        self.reads = 0  # read calls: littlefs traverses the whole filesystem when its block allocator wraps

    def readblocks(self, block, buf, offset=0):
        self.reads += 1
        a = block * BLOCK + offset
        _read(buf, self.data, a, len(buf))

    def writeblocks(self, block, buf, offset=None):
        if offset is None:  # the basic protocol: whole blocks, erased first
            for b in range(len(buf) // BLOCK):
                self.ioctl(6, block + b)
            offset = 0
        n = len(buf)
        if self.page and (offset % self.page or n % self.page):
            self.unaligned += 1
        a = block * BLOCK + offset
        self.programs += 1
        self.programmed += n
        self.overwrites += _program(self.data, a, buf, n)

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.blocks
        if op == 5:  # block size
            return BLOCK
        if op == 6:  # erase
            self.erases += 1
            self.erased_blocks.append(arg)
            a = arg * BLOCK
            self.data[a : a + BLOCK] = ERASED
        return 0
