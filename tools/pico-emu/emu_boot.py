# boot.py for the EMULATED Pico only (bench/bench_pico_emu.py puts it in the image; never on a board).
# 1. rp2040js does not emulate flash erase/program, so the firmware's data files (boot_count,
#    settings, key, auth_counter, journal.d/) go to a littlefs on a RAM block device mounted at
#    /data, the working directory; code stays on flash. This HIDES flash timing: a checkpoint's
#    4 KB erase (~45 ms typ., up to ~400 ms on the Pico's QSPI flash, stalling the CPU) costs nothing
#    here, so no figure from this shim says anything about flash stalls.
# 2. A probe: per control-loop pass, emulated us from feed_watchdog() (a pass starts) to the end
#    of service(), the step drivers' share of it, and the steps handed to the drivers; written
#    every 100 passes as a "PROBE ..." text line on the USB CDC between the link's frames (the host's
#    frame reader resyncs past it; rp2040js 1.4.1 hangs in machine.UART's constructor, so no UART).
import os
import sys
import vfs
import time


class RAMBlockDev:
    def __init__(self, block_size, num_blocks):
        self.block_size = block_size
        self.data = bytearray(block_size * num_blocks)
        self.mv = memoryview(self.data)

    def readblocks(self, block_num, buf, offset=0):
        a = block_num * self.block_size + offset
        buf[:] = self.mv[a:a + len(buf)]

    def writeblocks(self, block_num, buf, offset=None):
        a = block_num * self.block_size + (offset or 0)
        self.mv[a:a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.block_size
        if op == 5:
            return self.block_size
        if op == 6:
            return 0


_bdev = RAMBlockDev(512, 160)
vfs.VfsLfs2.mkfs(_bdev)
vfs.mount(vfs.VfsLfs2(_bdev), '/data')
os.chdir('/data')
sys.path.append('/')
with open('/key', 'rb') as s, open('key', 'wb') as d:
    d.write(s.read())
with open('/main.py') as s, open('main.py', 'w') as d:  # the rp2 port runs main.py from the cwd
    d.write(s.read())
del s, d

import board  # noqa: E402

_out = sys.stdout.buffer
BUCKET_US = 50
_hist = [0] * 201  # pass time in 50 us buckets; the last holds >= 10 ms
_st = [0, 0, 0, 0, 0, 0]  # pass start, step-driver us this pass, passes, step-driver us total, steps plunger, steps needle
_feed = board.Board.feed_watchdog
_service = board.Board.service
_pstep = board.Board.plunger_step
_nstep = board.Board.needle_step


def _probe_feed(self):
    _st[0] = time.ticks_us()
    _st[1] = 0
    _feed(self)


def _probe_pstep(self, n):
    t = time.ticks_us()
    _pstep(self, n)
    _st[1] += time.ticks_diff(time.ticks_us(), t)
    _st[4] += n if n > 0 else -n


def _probe_nstep(self, n):
    t = time.ticks_us()
    _nstep(self, n)
    _st[1] += time.ticks_diff(time.ticks_us(), t)
    _st[5] += n if n > 0 else -n


def _probe_service(self, now_us):
    _service(self, now_us)
    d = time.ticks_diff(time.ticks_us(), _st[0])
    _hist[min(d // BUCKET_US, 200)] += 1
    _st[2] += 1
    _st[3] += _st[1]
    if _st[2] >= 100:
        parts = ['%d:%d' % (i, c) for i, c in enumerate(_hist) if c]
        _out.write('\nPROBE %d %d %d %d %s\n' % (_st[2], _st[3], _st[4], _st[5], ' '.join(parts)))
        for i in range(len(_hist)):
            _hist[i] = 0
        _st[2] = _st[3] = 0


board.Board.feed_watchdog = _probe_feed
board.Board.service = _probe_service
board.Board.plunger_step = _probe_pstep
board.Board.needle_step = _probe_nstep
