# The journal's append area: raw flash outside the filesystem, erased before it is needed, so a
# record written during a dose costs one page program (~0.6 ms) instead of littlefs's block copy
# (one 45-400 ms erase and 16 pages: the CPU stalled on an RP2040). The journal (journal.py) puts
# a point's opening, checkpoints and close here as 32-byte entries in write order, and moves the
# closed records into their ring cells later, off the dose (Journal.settle), then erases the area.
# A power cut leaves every entry programmed so far: the boot scan replays them (Journal._replay).
#
# bdev: the block device protocol littlefs uses (readblocks/writeblocks with an offset inside a
# block, ioctl 4 block count, 5 block size, 6 erase). Programs go only to erased bytes (NOR flash).
ENTRY = 32  # one entry: a journal copy (body and CRC)


class AppendLog:
    def __init__(self, bdev):
        self.dev = bdev
        self.block = bdev.ioctl(5, 0)
        self.blocks = bdev.ioctl(4, 0)
        self.per_block = self.block // ENTRY
        self.slots = self.blocks * self.per_block
        self.used = 0  # the next slot to program; every slot from here on is erased

    def room(self):
        return self.slots - self.used

    def append(self, view):
        # one entry programmed into the next erased slot: its slot, or -1 when the area is full
        slot = self.used
        if slot >= self.slots:
            return -1
        self.dev.writeblocks(slot // self.per_block, view, (slot % self.per_block) * ENTRY)
        self.used = slot + 1
        return slot

    def read(self, slot, view):
        self.dev.readblocks(slot // self.per_block, view, (slot % self.per_block) * ENTRY)

    def find_end(self, view):
        # at boot: past the last slot not erased (a slot a cut left half programmed counts as used,
        # so nothing is programmed over it before the next erase)
        self.used = 0
        for slot in range(self.slots - 1, -1, -1):
            self.read(slot, view)
            for b in view:
                if b != 0xFF:
                    self.used = slot + 1
                    return self.used
        return 0

    def erase(self):
        # every block used so far erased (after their records are in their cells): empty again
        n = (self.used + self.per_block - 1) // self.per_block
        for b in range(n):
            self.dev.ioctl(6, b)
        self.used = 0
        if n and hasattr(self.dev, "turn"):
            self.dev.turn(n)  # a device that spreads the wear: the next entries begin past the blocks just erased
