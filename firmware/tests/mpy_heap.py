# Runs on MicroPython with the target's heap: RAM after boot and during a nappage burst, and the
# heap allocated per shot in steady state, for the real App (journal, link, device, dosing), and
# per POLL (the controlling host's signed heartbeat: the device checks its HMAC).
# The board is an integer-only stand-in (the simulator's physical model allocates floats in the
# same heap, so it cannot be measured there). argv[1]: a directory for the flash files; argv[2] "boot":
# stop after boot and a prime (what fits, in a second: firmware/tests/test_heap_fit_mpy.py); "area":
# the board has a journal append area (its records during the burst: page programs there).
import gc
import json
import os
import sys
from time import ticks_us

os.chdir(sys.argv[1])
from mesofw import app, codec  # noqa: E402
from mesoprotocol import spec  # noqa: E402
from standin import StandInBoard  # noqa: E402


class FileArea:
    # argv[2] == "area": the journal's append area (appendlog.py) as the simulator has it, over a file
    # (RAM would take the heap being measured); 4 blocks of 4 KB, erased
    def __init__(self):
        self.f = open("area.img", "w+b")
        self.erased = b"\xff" * 4096  # one block's erase, made once: a 4 KB piece of the measured heap
        for _ in range(4):
            self.f.write(self.erased)

    def readblocks(self, block, buf, offset=0):
        self.f.seek(block * 4096 + offset)
        self.f.readinto(buf)

    def writeblocks(self, block, buf, offset=0):
        self.f.seek(block * 4096 + offset)
        self.f.write(buf)

    def ioctl(self, op, arg):
        if op == 6:
            self.f.seek(arg * 4096)
            self.f.write(self.erased)
        return 4 if op == 4 else 4096 if op == 5 else 0


class Board(StandInBoard):
    NAME = "heap"
    JOURNAL_CELLS = 6000  # the real boards' journal, whatever the simulator is set to
    inbox = b""
    area = FileArea() if sys.argv[2:] == ["area"] else None

    def journal_log(self):
        return self.area

    def host_read(self, buf):
        n = len(self.inbox)
        if n:
            buf[:n] = self.inbox
            self.inbox = b""
        return n


gc.collect()
base = gc.mem_alloc()
board = Board()
a = app.App(board)
dev = a.device
dev.boot(0)
gc.collect()
out = {"heap": gc.mem_alloc() + gc.mem_free(), "after_boot": gc.mem_alloc(), "firmware": gc.mem_alloc() - base}
cfg = (spec.TECHNIQUE_NAPPAGE, 1, 1, 4000, 1000, 2000, 300, 10000, 100000, 0, 1, 7, 600000)  # capped at its total
dev.handle(spec.ABORT, (), ticks_us())
dev.handle(spec.CONFIGURE, cfg, ticks_us())
dev.handle(spec.PRIME, (2000,), ticks_us())
while dev.dose.active():
    dev.tick(ticks_us())
if sys.argv[2:] == ["boot"]:
    gc.collect()
    out["after_prime"] = gc.mem_alloc()
    print(json.dumps(out))
    sys.exit(0)
# the controlling host: paired, its session open (a real OPEN frame), POLLs signed ahead of
# the measurement
a.auth.pair(bytes(range(1, spec.KEY_SIZE + 1)))


def signed(msg_type, seq, fields):
    frame = bytearray(codec.encode(msg_type, seq, fields + (bytes(spec.MAC_SIZE),)))
    end = len(frame) - spec.CRC_SIZE
    tag = a.auth.mac(bytes((spec.PROTOCOL_VERSION, msg_type)) + bytes(frame[spec.HEADER_SIZE : end - spec.MAC_SIZE]))
    frame[end - spec.MAC_SIZE : end] = tag
    codec.frame_into(frame, msg_type, seq)
    return bytes(frame)


board.inbox = signed(spec.OPEN, 0, (1,))
a.link.poll()
assert a.auth.session == 1, "the OPEN was refused"
dev.handle(spec.ARM, (), ticks_us())
dev.tick(ticks_us())  # the trigger seen released once after arming
board.trig = True


def shots_until(n):
    while dev.done < n:
        a.link.poll()
        dev.link_seen()  # the controlling host's heartbeat, as its POLL would
        dev.tick(ticks_us())


shots_until(10)
gc.collect()
out["mid_burst"] = gc.mem_alloc()
before = 0  # bound first: a new global would grow the module's dict inside the measurement
gc.disable()
before = gc.mem_alloc()
shots_until(60)
out["bytes_per_shot"] = (gc.mem_alloc() - before) / 50
gc.enable()
out["shots"] = dev.done
out["area_entries"] = a.journal.log.used if a.journal.log else -1  # the burst's records not settled yet
# one POLL per shot, between shots in the burst: what the HMAC check, decode and reply allocate
polls = [signed(spec.POLL, 1 + i, (1, 1 + i)) for i in range(50)]
for i in range(10):
    board.inbox = polls[i]
    a.link.poll()
# 40 POLLs, each measured alone with the collector off and collected after: 40 at once (1.4 KB each
# on the 64-bit port) would need 56 KB free, which the target's heap need not have
allocated = 0
for i in range(10, 50):
    board.inbox = polls[i]
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    a.link.poll()
    shots_until(dev.done + 1)
    allocated += gc.mem_alloc() - before
    gc.enable()
out["bytes_per_poll_and_shot"] = allocated / 40
gc.enable()
assert a.auth.session_counter == 50, "a POLL was refused"
print(json.dumps(out))
