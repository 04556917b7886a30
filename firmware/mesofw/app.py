# Firmware entry point: wires board, link and device, and runs the control loop.
# One loop, 1 ms ticks on absolute deadlines while anything moves; idle it sleeps
# until host input or the next 5 ms check.
import gc
import micropython
from time import ticks_add, ticks_diff, ticks_us, sleep_us
from mesoprotocol import spec
from mesoprotocol.spec import STATE_DELIVERING  # read every pass: one lookup, not two (device.py)
from mesofw import appendlog, auth, bootcount, device, journal, link, safemode

FW_VERSION = (0, 2, 0)  # 0.2: the journal in block-sized segment files (migrated at boot)
TICK_US = 1000
IDLE_WAIT_MS = 5
_NO_RECORD = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)  # the record (with its syringe and channel), the epoch, vacuum


class App:
    def __init__(self, board):
        self.board = board
        boot = bootcount.BootCount()
        self.boot_count = boot.count
        # the needle goes home first (a power cut may have left it in the skin); then the journal
        # is read and repaired, which can take a while on a real board's flash
        needle_play = device.home_needle(board)
        # the board's append area if it sets one aside (raw flash outside littlefs: a record costs a page
        # program, not a block copy; journal.py), else every record straight into its cell
        area = board.journal_log() if hasattr(board, "journal_log") else None
        gc.collect()  # the journal's buffers want a few KB in one piece: what boot and homing left, freed first
        self.journal = journal.Journal(board.JOURNAL_CELLS, boot.id_floor, feed=board.feed_watchdog, lease=boot.reserve,
                                       log=appendlog.AppendLog(area) if area else None)
        boot.start(self.journal.last_id)  # the boot counted, and ids leased past the journal's
        self.auth = auth.Auth()
        self.link = link.Link(board, self.command, self.auth)
        self.device = device.Device(board, self.link.send_event, self.journal, self.link.send_delivery)
        self.device.dose.needle_play = needle_play
        self.link.state_of = lambda: self.device.state
        self.build = safemode.build_id()
        self.to_repl = False
        # a loop that falls behind says so (STATUS_REPLY): control passes while anything moves that
        # took longer than their tick (a flash write, a collection, a host burst), and the longest pass
        self.overruns = 0
        self.worst_pass_us = 0

    def command(self, msg_type, values, signed):
        # only the controlling host's session feeds the link watchdog: an anonymous poll, or a
        # second host's OPEN, never keeps an armed device alive (PROTOCOL.md 8, 11)
        if signed and msg_type != spec.OPEN:
            self.device.link_seen()
        if msg_type == spec.HELLO:
            self.device.hello_seen()
            return (spec.IDENTITY, self.identity())
        if msg_type == spec.STATUS or msg_type == spec.POLL:
            return (spec.STATUS_REPLY, self.device.status(self.link.rx_errors, self.link.event_seq, self.boot_count,
                                                          self.overruns, self.worst_pass_us))
        if msg_type == spec.OPEN:
            return self.open_session()
        if msg_type == spec.CLOSE:
            self.auth.close_session()
            return (spec.ACK, (msg_type, self.device.state))
        if msg_type == spec.RECORDS:
            return (spec.RECORD, self.records(values[0]))
        if msg_type == spec.PAIR:
            if not self.device.pairing_open():
                return (spec.NACK, (msg_type, spec.NACK_NOT_PAIRING, 0, self.device.state, 0, 0))
            self.auth.pair(values[0])
            self.device.close_pairing()  # one key per pairing
            return (spec.ACK, (msg_type, self.device.state))
        if msg_type == spec.EVENTS:
            if not self.link.resend_events(values[0]):  # older than the ring: lost for good
                return (spec.NACK, (msg_type, spec.NACK_LIMIT, 1, self.device.state, values[0],
                                    self.link.oldest_event()))
            return (spec.ACK, (msg_type, self.device.state))
        if msg_type == spec.REPL and not self.device.pairing_open():  # firmware replaced: physical presence
            return (spec.NACK, (msg_type, spec.NACK_NOT_PAIRING, 0, self.device.state, 0, 0))
        reply = self.device.handle(msg_type, values, ticks_us())
        if msg_type == spec.REPL and reply[0] == spec.ACK:
            self.to_repl = True  # once the ACK is out (run)
        return reply

    def open_session(self):
        # one controlling host: a live session is kept until its host has been silent for
        # link_timeout_ms outside the watched states (in them its silence ends in LINK_LOST first)
        dev = self.device
        silent = dev.host_silent_ms()
        if self.auth.session and not dev.host_gone(silent):
            return (spec.NACK, (spec.OPEN, spec.NACK_OTHER_HOST, 0, dev.state, silent,
                                dev.settings[spec.SET_LINK_TIMEOUT]))
        self.auth.open_session()
        dev.link_seen()
        return (spec.ACK, (spec.OPEN, dev.state))

    def identity(self):
        b = self.board
        head = (spec.PROTOCOL_VERSION, FW_VERSION[0], FW_VERSION[1], FW_VERSION[2], b.NAME, b.serial_number(),
                self.device.syringe, self.device.cal_ppm(), b.reset_cause())
        return head + tuple(self.device.settings) + (self.boot_count, min(self.journal.free(), 0xFFFF), self.build,
                                                  1 if self.auth.paired() else 0, self.auth.counter,
                                                  self.journal.epoch, self.journal.log.slots if self.journal.log else 0)

    def records(self, ack_id):
        # the host has committed ack_id (0: nothing yet); answer with the oldest record it has not
        j = self.journal
        if ack_id:
            # idempotent: an id already acknowledged changes nothing; during a dose or burst the in-order
            # ack is written when the loop is next idle (run): no flash time between shots
            j.ack(ack_id, not self.device.busy())
        oldest = j.oldest()  # RECORD: the journal's fields, the epoch between them and the vacuum
        return (oldest[:11] + (j.epoch, oldest[11]) if oldest else _NO_RECORD) + (min(j.unacked, 0xFFFF),)

    @micropython.native  # the loop itself in machine code: every pass runs it
    def run(self):
        board = self.board
        dev = self.device
        link = self.link
        dose = dev.dose
        dev.boot(board.reset_cause(), self.boot_count)
        deadline = ticks_us()
        ticking = False  # the last pass ran on the 1 ms tick (something moved)
        while True:
            start = ticks_us()
            board.feed_watchdog()
            link.poll()
            if self.to_repl:
                safemode.request_repl(board)
            now = ticks_us()
            dev.tick(now)
            board.service(now)
            busy = dose.phase != 0 or dev.line_on or dev.state == STATE_DELIVERING  # dev.busy() without its call
            if busy or ticking:
                # from when the pass was due (its tick), not from when it began: a pass that began late
                # (the CPU taken away: a flash stall, a collection; on the simulator, a loaded host) is
                # behind schedule as much as one that ran long
                took = ticks_diff(ticks_us(), deadline if ticking else start)
                if took > TICK_US:
                    self.overruns += 1
                if took > self.worst_pass_us:
                    self.worst_pass_us = took
            ticking = busy
            if busy:
                deadline = ticks_add(deadline, TICK_US)
                wait = ticks_diff(deadline, ticks_us())
                if wait > 0:
                    sleep_us(wait)
                elif wait < -10 * TICK_US:
                    deadline = ticks_us()  # fell far behind (GC, host burst): re-anchor
            else:
                # the append area's records into their cells once a program is over (not while ARMED between
                # points or bursts, where the next trigger pull would wait for it, unless the area is half full)
                if dev.state != spec.STATE_ARMED or self.journal.settle_due():
                    self.journal.settle()
                self.journal.flush_acks()  # acks taken during the burst (records())
                board.wait_input(IDLE_WAIT_MS)
                deadline = ticks_us()


def main():
    import gc

    import board

    gc.collect()  # what compiling the modules left behind, before the journal's large buffers
    App(board.Board()).run()
