# Delivery journal on the board's flash: a record is written here before the host hears of it,
# and stays until the host says it has stored it (RECORDS ack_id).
#
# A ring of fixed cells used in order, one per record: tail = oldest unacknowledged, head = next
# to write; the ring is full when head reaches an unacknowledged cell (never overwritten).
# Each cell holds two copies of its record and every write goes to the older copy with the next
# generation number, so a write torn by a power cut leaves the previous version intact.
# RAM: one byte per cell (status and generation); everything else is read back from the flash.
# Storage: a folder of segment files of SEGMENT_CELLS cells, 4 KB = one erase block of the
# RP2040's and the ESP32-S3's flash. littlefs (those boards' filesystem) rewrites a file from a
# modified block to its end, so a write in one 384 KB file cost up to 94 block erases; in a
# segment it costs one block. Earlier firmware's single file is moved into the segments at boot.
# Flash cost (littlefs copies a file's block on every write into it: one erase, ~4 KB programmed,
# 45 ms typical on the Pico's flash) is kept to one cell write per shot: the close. The point in
# progress (OPEN at its start, then its checkpoints) is written to a small file of its own (NOW/point)
# and the host's in-order acknowledgements to another (NOW/acked: every CLOSED record with an id up to
# it is acknowledged; an out-of-order one is written into its cell). Files that small live inside
# littlefs's metadata log: a write programs a page and erases a block only now and then (its own
# folder keeps that log short). Both hold two copies like a cell, so a torn write keeps the previous.
# A point found open at boot (NOW/point newer than every cell; or an OPEN cell of earlier firmware)
# was cut by power loss and is closed, partial, at its last checkpoint into the cell it had (the head).
# Alarms and program ends are journalled too (KIND_ALARM, KIND_END: one write, closed at once), so
# they reach the host's store as surely as the deliveries.
# With an append area (appendlog.py: raw flash the board sets aside, erased ahead of use), a
# point's opening, checkpoints and close, alarms, ends and out-of-order acks are programmed there
# instead (one page each, no erase: nappage keeps its cadence with the flash timed), and the closed
# records are moved into their cells later, off the dose (settle(): one block copy per segment
# touched, then the area erased). A record is on flash the moment it closes either way, so a power
# cut loses nothing: the boot replays the area (records newer than every cell go to the head in id
# order; a point still open is closed partial). Unsettled records are bounded by the area's size:
# the device settles between doses when short_of() says it runs short (the plunger still, one shot late).
# The epoch: a random number drawn when the journal folder is created and kept in it. A flash
# erased (the same serial, record ids from 1 again) gets a new one, so (epoch, record id) never
# names an earlier record; a journal of firmware from before epochs keeps epoch 0.
import os
import struct
from array import array

from mesoprotocol import spec as S
from mesofw.crc import crc32_check

EPOCH_FILE = "epoch"  # in the segments' folder: erased with them
EPOCH_MASK = 0x3FFFFFFF  # a small int on a 32-bit port: packing it never allocates
FILE = "journal"  # earlier firmware's single file; the segments are FILE + ".d"/0, /1, ...
ENOENT = 2  # errno: no such file
EEXIST = 17
COPY = 32  # bytes per copy; a cell is two copies
SEGMENT_CELLS = 64
SEGMENT = SEGMENT_CELLS * 2 * COPY  # bytes per segment file: 4096, one flash erase block
_BODY = "<BBBBIIHHIII"  # gen status flags kind | record_id session point depth_um | programmed delivered time_ms
# kind's low nibble is the KIND_*, its high nibble the syringe measured (0 in earlier firmware's records)
# point's top two bits are the syringe channel (0 in earlier firmware's records, alarms, ends): points,
# shots (MAX_SHOTS), head and alarm codes all stay below 1 << POINT_BITS
POINT_BITS = 14
_POINT = (1 << POINT_BITS) - 1
# a delivery's programmed_nl's top bits are the least vacuum the dose held (kPa, < 64: MAX_VACUUM_KPA 60;
# 0 in earlier firmware's records). A dose is at most MAX_PRIME_NL, far below 1 << 24; the packed value
# stays under 1 << 30, a small int on a 32-bit port.
VACUUM_SHIFT = 24
_PROGRAMMED = (1 << VACUUM_SHIFT) - 1
_BODY_SIZE = 28  # then the CRC-32 (zlib's) of the body, little-endian

SETTLE_CELLS = 16  # cells rebuilt and written at once by settle() (one block copy each run)
NOW = "now"  # folder in the segments' folder: the point in progress and the acknowledged-through id
EMPTY = 0
OPEN = 1
CLOSED = 2  # unacknowledged
ACKED = 3
_GEN = 0x3F  # generations count mod 64; a copy holds the generations of its own parity


class Segments:
    # The journal's bytes by absolute offset over segment files. Two are kept open (the head's,
    # where points are written, and the tail's, which the host reads and acknowledges), so a
    # file is opened (an allocation and a folder lookup) only when the head or the tail moves
    # to another segment.
    def __init__(self, folder):
        self.folder = folder
        self.files = [None, None]  # type: list
        self.segs = [-1, -1]
        self.writable = [False, False]
        self.used = 0  # the slot used last; the other is replaced first
        self.pos = 0  # where the next read or write goes, from the start of segment 0

    def seek(self, pos):
        self.pos = pos

    def _at(self, write):
        # the file of the segment holding self.pos, positioned there; None if it does not exist.
        # Read-only unless written: on littlefs, closing a file opened for writing commits its
        # metadata (its mtime) even if nothing was written.
        seg = self.pos // SEGMENT
        k = 0 if self.segs[0] == seg else 1 if self.segs[1] == seg else -1
        if k < 0 or write and not self.writable[k]:
            if k < 0:
                k = 1 - self.used
            self._close(k)
            name = "%s/%d" % (self.folder, seg)
            try:
                f = open(name, "r+b" if write else "rb")
            except OSError as e:
                if e.errno != ENOENT:  # a flash or filesystem error is not an empty segment
                    raise
                if not write:
                    return None
                f = open(name, "w+b")
            self.files[k] = f
            self.segs[k] = seg
            self.writable[k] = write
        self.used = k
        f = self.files[k]
        f.seek(self.pos - seg * SEGMENT)
        return f

    def readinto(self, buf):
        # a read never spans two segments (cells do not); 0 in a segment never written
        f = self._at(False)
        n = f.readinto(buf) if f else 0
        self.pos += n
        return n

    def write(self, buf):
        n = self._at(True).write(buf)
        self.pos += n
        return n

    def flush(self):
        f = self.files[self.used]
        if f:
            f.flush()

    def _close(self, k):
        f = self.files[k]
        if f:
            f.close()
        self.files[k] = None
        self.segs[k] = -1

    def close(self):
        self._close(0)
        self._close(1)

    def migrate(self, old, feed):
        # a single-file journal of earlier firmware: its bytes into the segments, then removed.
        # Cut short by a power loss, it runs again from the start at the next boot.
        try:
            src = open(old, "rb")
        except OSError:
            return
        buf = bytearray(SEGMENT)
        seg = 0
        n = SEGMENT
        while n == SEGMENT:
            if feed:
                feed()
            n = src.readinto(buf)
            if not n and not seg:  # empty (a downgraded firmware's new file): the segments stand
                break
            if n:
                with open("%s/%d" % (self.folder, seg), "wb") as f:
                    f.write(memoryview(buf)[:n])
                seg += 1
        src.close()
        for name in os.listdir(self.folder) if seg else ():  # past the old file's end: a cut-short move's
            if name.isdigit() and int(name) >= seg:
                os.remove("%s/%s" % (self.folder, name))
        os.remove(old)


class Journal:
    def __init__(self, cells, first_id=0, path=FILE, feed=None, lease=None, log=None):
        # first_id: record ids continue above it even if the journal was erased (bootcount's floor);
        # lease(last_id, needed): persist that ids up to last_id + needed may be given (reserve);
        # path: the segments are in the folder path + ".d" (a file at path: see Segments.migrate);
        # feed(): called while the boot scan runs (the board's watchdog); log: an AppendLog (appendlog.py)
        # or None (every record straight into its cell, the point in progress in NOW/point)
        self.cells = cells
        self.cell = bytearray(cells)  # status << 6 | generation of the newest copy
        self.buf = bytearray(2 * COPY)
        self.copy_view = memoryview(self.buf)[:COPY]  # made once: no allocation per write
        self.head = 0
        self.tail = 0
        self.unacked = 0
        self.last_id = 0
        self.repaired = 0  # torn or corrupt copies seen at boot
        self.power_lost = 0  # points closed at boot because power failed during them
        self.cur = -1  # the cell of the point in progress, and its fixed fields:
        self.o_id = self.o_session = self.o_point = self.o_kind = self.o_programmed = 0
        self.point_gen = 0  # generations of NOW/point and NOW/acked (copies as a cell's)
        self.acked_gen = 0
        self.acked_id = 0  # CLOSED records up to this id are acknowledged (the host acks in order)
        self.acks_due = False  # acked_id moved since NOW/acked was written (ack(persist=False))
        try:
            os.mkdir(path + ".d")
        except OSError as e:
            if e.errno != EEXIST:
                raise
        self.f = Segments(path + ".d")
        self.f.migrate(path, feed)
        self.point_f = self._hot(path + ".d/" + NOW, "point")
        self.acked_f = self._hot(path + ".d/" + NOW, "acked")
        self.feed = feed
        self.lease = lease
        self.log = log
        # records closed into the append area and not yet in their cells: cells pend_start.. (pending of
        # them, in ring order), and each one's newest entry (its slot); one segment's cells rebuilt at a time
        self.pending = 0
        self.pend_start = 0
        self.pend_slot = array("H", bytes(2 * log.slots if log else 0))
        self.seg_buf = bytearray(SETTLE_CELLS * 2 * COPY if log else 0)  # 1 KB: the sim's heap is tight
        self.log_full = 0  # checkpoints skipped, a record written straight to its cell: the area was full
        self._scan()
        self.epoch = self._epoch(path + ".d/" + EPOCH_FILE)
        self.last_id = max(self.last_id, first_id)

    def shut(self):
        # every file closed (a test's simulated power cut; on littlefs a file left open is closed
        # by the garbage collector, which cannot call the block device)
        self.f.close()
        self.point_f.close()
        self.acked_f.close()

    @staticmethod
    def _hot(folder, name):
        # one of NOW's files, kept open: a write is a seek, a write and a flush (no allocation)
        try:
            os.mkdir(folder)
        except OSError as e:
            if e.errno != EEXIST:
                raise
        try:
            return open(folder + "/" + name, "r+b")
        except OSError as e:
            if e.errno != ENOENT:
                raise
        return open(folder + "/" + name, "w+b")

    def _newest(self, n):
        # the newest valid copy in self.buf (n bytes read) or -1; torn or corrupt copies counted
        best = -1
        gen = 0
        for c in (0, 1):
            off = c * COPY
            if off + COPY > n:
                break
            if not crc32_check(self.buf, off, _BODY_SIZE, 0):
                if any(self.buf[off : off + COPY]):
                    self.repaired += 1
                continue
            g = self.buf[off]
            if best < 0 or (g - gen) & _GEN < 32:
                best = c
                gen = g
        return best

    def _hot_read(self, f):
        # NOW/point or NOW/acked: (generation, status, record_id) of its newest copy into self.buf, or None
        f.seek(0)
        best = self._newest(f.readinto(self.buf) or 0)
        if best < 0:
            return None
        if best:
            self.buf[:COPY] = self.buf[COPY:]
        return self.buf[0], self.buf[1], struct.unpack_from("<I", self.buf, 4)[0]

    def _epoch(self, name):
        try:
            with open(name) as f:
                return int(f.read())
        except (OSError, ValueError):
            pass
        epoch = 0  # records already here: a journal from before epochs, whose records the host has as 0
        if not self.last_id:
            while not epoch:
                epoch = struct.unpack("<I", os.urandom(4))[0] & EPOCH_MASK
        with open(name + ".new", "w") as f:  # write-then-rename: a torn write keeps no half epoch
            f.write(str(epoch))
        os.rename(name + ".new", name)
        return epoch

    # ---- boot: find head, tail and the unacknowledged records; repair -------------------------
    def _scan(self):
        f = self.f
        h = self._hot_read(self.acked_f)
        if h:
            self.acked_gen = h[0]
            self.acked_id = h[2]
        newest = -1
        nxt = 0
        while nxt < self.cells:
            i = nxt
            nxt += 1
            if self.feed and not i % SEGMENT_CELLS:
                self.feed()
            f.seek(i * 2 * COPY)
            n = f.readinto(self.buf)
            if n < 2 * COPY:
                if n:
                    self.repaired += 1  # a torn first write at the end of a segment
                else:  # a segment never written, or lost: its cells are empty; later ones still count
                    nxt = (i // SEGMENT_CELLS + 1) * SEGMENT_CELLS
                continue
            best = self._newest(n)
            if best < 0:
                continue
            gen = self.buf[best * COPY]
            status = self.buf[best * COPY + 1]
            rid = struct.unpack_from("<I", self.buf, best * COPY + 4)[0]
            if status == CLOSED and rid <= self.acked_id:
                status = ACKED  # acknowledged in order (NOW/acked)
            self.cell[i] = status << 6 | gen
            if newest < 0 or rid > self.last_id:
                newest = i
                self.last_id = rid
        self.head = (newest + 1) % self.cells if newest >= 0 else 0
        h = self._hot_read(self.point_f)
        if h:
            self.point_gen = h[0]
            if h[1] == OPEN and h[2] > self.last_id:  # newer than every cell: cut by power loss
                _, _, flags, kind, rid, session, point, depth, programmed, delivered, t = struct.unpack_from(_BODY, self.buf)
                i = self.head
                self._write(i, CLOSED, flags | S.FLAG_PARTIAL | S.FLAG_POWER_LOST, kind, rid, session, point, depth,
                            programmed, delivered, t)
                self.last_id = rid
                self.head = (i + 1) % self.cells
                self.power_lost += 1
        if self.log:
            self._replay()
        cell = self.cell
        for i in range(self.cells):
            status = cell[i] >> 6
            if status == OPEN:  # power failed during this point
                r = self.read(i)
                self._write(i, CLOSED, r[4] | S.FLAG_PARTIAL | S.FLAG_POWER_LOST, r[3] | r[9] << 4, r[0], r[1], r[2] | r[10] << POINT_BITS, r[7],
                            r[5] | r[11] << VACUUM_SHIFT, r[6], r[8])
                self.power_lost += 1
                status = CLOSED
            if status == CLOSED:
                self.unacked += 1
        self.tail = self.head
        self._advance_tail()

    def _replay(self):
        # the append area's records newer than every cell (closed, or still open when power went) go
        # to the head in id order, as they would have at settle(); then settle() itself. Entries of
        # records already in their cells (a cut between a settle's cell writes and its erase) are skipped.
        log = self.log
        if not log.find_end(self.copy_view):
            return
        newest = {}  # record id -> slot of its last entry (boot: allocating is fine)
        for slot in range(log.used):
            log.read(slot, self.copy_view)
            if not crc32_check(self.buf, 0, _BODY_SIZE, 0):
                if any(b != 0xFF for b in self.copy_view):
                    self.repaired += 1  # torn by a cut: the record's previous entry stands
                continue
            rid = struct.unpack_from("<I", self.buf, 4)[0]
            if rid > self.last_id:
                newest[rid] = slot
        for rid in sorted(newest):
            i = self.head
            if not self.pending:
                self.pend_start = i
            self.pend_slot[self.pending] = newest[rid]
            self.pending += 1
            log.read(newest[rid], self.copy_view)
            if self.buf[1] == OPEN:
                self.power_lost += 1  # closed partial by _settle_cells
            status = ACKED if rid <= self.acked_id else CLOSED
            self.cell[i] = status << 6 | (self.cell[i] & _GEN)
            self.head = (i + 1) % self.cells
            self.last_id = rid
        self.settle()

    def status(self, i):
        return self.cell[i] >> 6

    def _advance_tail(self):
        # tail: the first unacknowledged cell at or after the head, in ring order
        if not self.unacked:
            self.tail = self.head
            return
        i = self.tail
        while self.cell[i] >> 6 != CLOSED:
            i = (i + 1) % self.cells
        self.tail = i

    # ---- writing --------------------------------------------------------------------------
    def free(self):
        # records that can be written before an unacknowledged one would be reached
        if not self.unacked:
            return self.cells
        return (self.tail - self.head) % self.cells

    def reserve(self, needed):
        # before a program or prime that opens up to `needed` records (not in the dosing loop): ARM's
        # points left + 1 cover its points and its END or one alarm; reserve_id() and add() lease
        # their own id too, for the alarms outside a program (one more after COMPLETE, E-stop at IDLE)
        if self.lease:
            self.lease(self.last_id, needed)

    def open(self, session, point, kind, programmed_nl, time_ms, syringe=0, channel=0):
        # a point starts: its record id, or 0 when the journal has no room (it must not be given)
        if self.unacked and self.head == self.tail:
            return 0
        self.cur = self.head
        self.last_id += 1
        self.o_id = self.last_id  # one by one: a 5-way assignment builds a tuple
        self.o_session = session
        self.o_point = point | channel << POINT_BITS
        self.o_kind = kind | syringe << 4
        self.o_programmed = programmed_nl
        self.checkpoint(0, 0, time_ms)
        return self.last_id

    def checkpoint(self, delivered_nl, depth_um, time_ms, vacuum_kpa=0):
        # NOW/point, not the cell: a page programmed, not a block copied (the cell is written at close);
        # with an append area, an entry there (short_of() kept room for the dose's; skipped if not).
        # vacuum_kpa: the least vacuum held so far (a power cut keeps it with the partial point)
        if self.log:
            self._pack(0, OPEN, 0, self.o_kind, self.o_id, self.o_session, self.o_point, depth_um,
                       self.o_programmed | vacuum_kpa << VACUUM_SHIFT, delivered_nl, time_ms)
            if self.log.append(self.copy_view) < 0:
                self.log_full += 1
            return
        self.point_gen = gen = (self.point_gen + 1) & _GEN
        self._pack(gen, OPEN, 0, self.o_kind, self.o_id, self.o_session, self.o_point, depth_um,
                   self.o_programmed | vacuum_kpa << VACUUM_SHIFT, delivered_nl, time_ms)
        self._put(self.point_f, (gen & 1) * COPY)

    def close(self, flags, delivered_nl, depth_um, time_ms, vacuum_kpa=0):
        i = self.cur
        if not self._defer(i, CLOSED, flags, self.o_kind, self.o_id, self.o_session, self.o_point, depth_um,
                           self.o_programmed | vacuum_kpa << VACUUM_SHIFT, delivered_nl, time_ms):
            self._write(i, CLOSED, flags, self.o_kind, self.o_id, self.o_session, self.o_point, depth_um,
                        self.o_programmed | vacuum_kpa << VACUUM_SHIFT, delivered_nl, time_ms)
        self.cur = -1
        self._written(i)

    def reserve_id(self):
        # the id of a record written later by add(), once the open point closes (an alarm raised
        # during it); 0 if the journal has no cell left for it after that point
        if self.free() < (2 if self.cur >= 0 else 1):
            return 0
        self.reserve(1)  # a flash write only when the lease runs out (an alarm path, not a dose's)
        self.last_id += 1
        return self.last_id

    def add(self, kind, session, code, value, delivered_nl, depth_um, time_ms, record_id=0):
        # an alarm or a program's end, closed in one write: its record id (record_id: one reserved),
        # or 0 when the journal is full or a point is open (records go in the ring in id order)
        if self.cur >= 0 or self.unacked and self.head == self.tail:
            return 0
        i = self.head
        if not record_id:
            self.reserve(1)
            self.last_id += 1
            record_id = self.last_id
        if not self._defer(i, CLOSED, 0, kind, record_id, session, code, depth_um, value, delivered_nl, time_ms):
            self._write(i, CLOSED, 0, kind, record_id, session, code, depth_um, value, delivered_nl, time_ms)
        self._written(i)
        return record_id

    def _written(self, i):
        self.unacked += 1
        if self.unacked == 1:
            self.tail = i
        self.head = (i + 1) % self.cells

    def _pack(self, gen, status, flags, kind, record_id, session, point, depth_um, programmed_nl, delivered_nl,
              time_ms):
        struct.pack_into(_BODY, self.buf, 0, gen, status, flags, kind, record_id, session, point, depth_um,
                         programmed_nl, delivered_nl, time_ms)
        crc32_check(self.buf, 0, _BODY_SIZE, 1)  # in place: no 32-bit result object

    def _put(self, f, pos):
        f.seek(pos)
        f.write(self.copy_view)
        f.flush()

    def _write(self, i, status, flags, kind, record_id, session, point, depth_um, programmed_nl, delivered_nl,
               time_ms):
        gen = (self.cell[i] + 1) & _GEN
        self._pack(gen, status, flags, kind, record_id, session, point, depth_um, programmed_nl, delivered_nl, time_ms)
        self._put(self.f, i * 2 * COPY + (gen & 1) * COPY)
        self.cell[i] = status << 6 | gen

    def _defer(self, i, status, flags, kind, record_id, session, point, depth_um, programmed_nl, delivered_nl,
               time_ms):
        # a record closing at the head (cell i) into the append area: False if there is none or it is full
        # (then the cell is written now, as without one; nothing else is deferred until settle() empties it)
        if not self.log:
            return False
        self._pack(0, status, flags, kind, record_id, session, point, depth_um, programmed_nl, delivered_nl, time_ms)
        slot = self.log.append(self.copy_view)
        if slot < 0:
            self.log_full += 1
            return False
        if not self.pending:
            self.pend_start = i
        self.pend_slot[self.pending] = slot
        self.pending += 1
        self.cell[i] = status << 6 | (self.cell[i] & _GEN)  # the cell's own copies keep their generation
        return True

    def _pending_slot(self, i):
        # the append area's slot holding cell i's record, or -1 if the cell itself has it
        k = (i - self.pend_start) % self.cells
        return self.pend_slot[k] if k < self.pending else -1

    def short_of(self, entries):
        # before a dose: True if the append area could not take this many entries (the bound on unsettled
        # records): the caller settles first, the plunger still (it costs settle()'s flash time)
        return self.log is not None and self.cur < 0 and self.log.room() < min(entries, self.log.slots)

    def settle_due(self):
        # the append area past half full: settle while idle even between a program's points or bursts
        return self.log is not None and self.log.used > self.log.slots // 2

    def settle(self):
        # the append area's records into their cells, then the area erased (off the dose: the loop idle,
        # or between doses: short_of()). One block copy per SETTLE_CELLS cells or segment touched (the cells rebuilt in RAM, written at once), then
        # an erase per area block used. A cut before the erase leaves the records in both: the boot keeps
        # the cells' (ids not above the cells' newest are skipped), so nothing is counted twice.
        log = self.log
        if not log or self.cur >= 0 or not log.used:
            return
        n = self.pending
        buf = self.seg_buf
        mv = memoryview(buf)
        k = 0
        while k < n:
            i = (self.pend_start + k) % self.cells
            m = min(n - k, SEGMENT_CELLS - i % SEGMENT_CELLS, SETTLE_CELLS)
            size = m * 2 * COPY
            self.f.seek(i * 2 * COPY)
            for b in range(self.f.readinto(mv[:size]), size):  # past a segment's end: never written
                buf[b] = 0
            for c in range(m):
                j = i + c
                log.read(self.pend_slot[k + c], self.copy_view)
                if self.buf[1] == OPEN:  # still open when power went (boot, _replay): closed partial
                    self.buf[2] |= S.FLAG_PARTIAL | S.FLAG_POWER_LOST
                gen = (self.cell[j] + 1) & _GEN
                status = self.cell[j] >> 6  # ACKED if the host has it already (in order, or out of order)
                self.buf[0] = gen
                self.buf[1] = status
                crc32_check(self.buf, 0, _BODY_SIZE, 1)
                off = c * 2 * COPY + (gen & 1) * COPY
                buf[off : off + COPY] = self.copy_view
                self.cell[j] = status << 6 | gen
            self.f.seek(i * 2 * COPY)
            self.f.write(mv[:size])
            self.f.flush()
            k += m
        self.pending = 0
        self.pend_start = self.head
        log.erase()

    def flush_acks(self):
        # NOW/acked up to date with the in-order acknowledgements taken without writing it (ack(persist=False))
        if self.acks_due:
            self.acked_gen = gen = (self.acked_gen + 1) & _GEN
            self._pack(gen, ACKED, 0, 0, self.acked_id, 0, 0, 0, 0, 0, 0)
            self._put(self.acked_f, (gen & 1) * COPY)
            self.acks_due = False

    # ---- the host's side: read the oldest, acknowledge --------------------------------------
    def read(self, i):
        # (record_id, session, point, kind, flags, programmed_nl, delivered_nl, depth_um, time_ms, syringe, channel,
        #  vacuum_kpa); an alarm's or end's programmed_nl is its detail, whole (vacuum 0)
        slot = self._pending_slot(i) if self.pending else -1
        if slot >= 0:  # closed into the append area, not settled yet
            self.log.read(slot, self.copy_view)
        else:
            f = self.f
            f.seek(i * 2 * COPY + (self.cell[i] & 1) * COPY)
            if f.readinto(self.copy_view) != COPY:  # never a stale buffer taken for this record
                raise OSError(ENOENT)
        _, _, flags, kind, rid, session, point, depth, programmed, delivered, t = struct.unpack_from(_BODY, self.buf)
        vacuum = 0
        if 0 < kind & 15 <= S.KIND_PRIME:  # a delivery (DELIVERY_KINDS: 1..4)
            vacuum = programmed >> VACUUM_SHIFT
            programmed &= _PROGRAMMED
        return (rid, session, point & _POINT, kind & 15, flags, programmed, delivered, depth, t, kind >> 4,
                point >> POINT_BITS, vacuum)

    def oldest(self):
        # the oldest unacknowledged record, or None
        return self.read(self.tail) if self.unacked else None

    def ack(self, record_id, persist=True):
        # the host has committed this record; False if it is not an unacknowledged one here.
        # persist False (an in-order ack during a nappage burst): NOW/acked is written by flush_acks()
        # later, off the burst; a power cut before it only sends those records again, and the host
        # stores a record once (device serial, epoch, record id), so no flash time is spent on it now
        if not self.unacked:
            return False
        i = self.tail
        while True:  # usually the tail itself: the host acknowledges in order
            if self.cell[i] >> 6 == CLOSED:
                r = self.read(i)
                if r[0] == record_id:
                    break
            i = (i + 1) % self.cells
            if i == self.head:
                return False
        if i == self.tail:  # in order: NOW/acked, not the cell (every older CLOSED one is acknowledged)
            self.acked_id = record_id
            self.acks_due = True
            if persist:
                self.flush_acks()
            self.cell[i] = ACKED << 6 | (self.cell[i] & _GEN)
        elif self.pending and self._pending_slot(i) >= 0:
            # not in its cell yet: settle() writes it ACKED (a cut before that sends it again; the host stores it once)
            self.cell[i] = ACKED << 6 | (self.cell[i] & _GEN)
        else:
            self._write(i, ACKED, r[4], r[3] | r[9] << 4, r[0], r[1], r[2] | r[10] << POINT_BITS, r[7],
                        r[5] | r[11] << VACUUM_SHIFT, r[6], r[8])
        self.unacked -= 1
        self._advance_tail()
        return True
