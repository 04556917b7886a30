# Serial link to the host: frames in, one reply per command, events out.
# A repeated SEQ+TYPE (host retransmission) gets the cached reply and is not executed again.
import micropython
import struct
from time import ticks_diff, ticks_ms
from mesoprotocol import spec
from mesofw import codec

_DELIVERY_FORMAT = spec.layout(spec.DELIVERY)[0]
_AUTH_FIELDS = {t: len(spec.MESSAGES[t][1]) for t in spec.AUTHENTICATED}  # the mac is the last field
_TRAILER = {t: 3 if t in spec.SESSION_COMMANDS else 2 for t in spec.AUTHENTICATED}  # [host_session] counter mac


class Link:
    def __init__(self, board, on_command, auth):
        # on_command(msg_type, values, signed) -> (reply_type, reply_values); values without the
        # signed trailer (host_session, counter, mac); signed: it passed the key, session and counter checks
        self.board = board
        self.on_command = on_command
        self.auth = auth
        self.reader = codec.FrameReader()
        # the most bytes one control pass takes from the host: a byte costs ~40 us on an RP2040 (stdin,
        # then the frame reader), and a retransmission brings MAX_FRAME bytes of filler; 32 bytes a
        # 1 ms pass is still ~3x what a 115200-baud UART delivers
        self.rx = bytearray(32)
        self.tx = bytearray(spec.MAX_FRAME)
        self.last_reply = bytearray(spec.MAX_FRAME)
        self.last_reply_len = 0
        self.last_key = -1  # (type << 8 | seq) of the last executed command
        self.state_of = lambda: 0  # the device state, for NACKs of malformed frames
        self.event_seq = 0
        # the last EVENT_RING event frames, by SEQ % EVENT_RING, for EVENTS (host missed some)
        self.ring = [bytearray(spec.MAX_FRAME) for _ in range(spec.EVENT_RING)]
        self.ring_len = bytearray(spec.EVENT_RING)
        self.events_sent = 0  # since boot, up to EVENT_RING: how far back the ring is valid
        self.rx_errors = 0
        self.rx_frames = 0
        self.last_byte_ms = ticks_ms()
        self._on_result = self._result  # bound once: no allocation per byte

    @micropython.native  # every pass
    def poll(self):
        n = self.board.host_read(self.rx)
        now = ticks_ms()
        if n:
            self.last_byte_ms = now
            self.reader.feed(memoryview(self.rx)[:n], self._on_result)
        elif self.reader.n and ticks_diff(now, self.last_byte_ms) > spec.INTERBYTE_TIMEOUT_MS:  # n: pending(), no call
            self.reader.reset()  # a partial frame went stale: drop it
            self.rx_errors += 1

    @micropython.native  # the pass a frame completes in
    def _result(self, result):
        r = self.reader
        if result == codec.DROPPED:
            self.rx_errors += 1
            return
        self.rx_frames += 1
        if result == codec.ERROR or r.msg_type >= 0x80:  # replies and events are not commands
            error = r.error if result == codec.ERROR else spec.NACK_UNKNOWN_TYPE
            # a host of another protocol version learns ours: value = its VER, limit = ours
            theirs, ours = (r.version, spec.PROTOCOL_VERSION) if error == spec.NACK_BAD_VERSION else (0, 0)
            self._send(self.tx, r.seq, spec.NACK, (r.msg_type, error, 0, self.state_of(), theirs, ours))
            return  # not cached: nothing was executed
        key = (r.msg_type << 8) | r.seq
        if key == self.last_key:
            self.board.host_write(self.last_reply, self.last_reply_len)
            return
        n_fields = _AUTH_FIELDS.get(r.msg_type)
        if n_fields:
            error = self.auth.check(r.msg_type, r.payload, n_fields)
            if error:  # forged, replayed, another session's or not paired: not executed, not cached
                self._send(self.tx, r.seq, spec.NACK,
                           (r.msg_type, error[0], error[1], self.state_of(), error[2], error[3]))
                return
        values = codec.decode_payload(r.msg_type, r.payload)
        if n_fields:
            values = values[: -_TRAILER[r.msg_type]]
        reply_type, reply_values = self.on_command(r.msg_type, values, n_fields is not None)
        if r.msg_type in spec.UNCACHED:
            # HELLO, STATUS, EVENTS are answered afresh (a cached STATUS could answer a new poll
            # reusing its SEQ); the key stays, so a command retransmitted after a poll is still
            # recognised. HELLO opens a connection: a new host never gets the last one's reply.
            if r.msg_type == spec.HELLO:
                self.last_key = -1
            self._send(self.tx, r.seq, reply_type, reply_values)
            return
        self.last_key = key
        self.last_reply_len = self._send(self.last_reply, r.seq, reply_type, reply_values)  # cached

    @micropython.native
    def _send(self, buf, seq, msg_type, values):
        n = codec.encode_into(buf, msg_type, seq, values)
        self.board.host_write(buf, n)
        return n

    def send_event(self, msg_type, values):
        slot = self.ring[self.event_seq % spec.EVENT_RING]
        self._sent(slot, codec.encode_into(slot, msg_type, self.event_seq, values))

    def send_delivery(self, record_id, session, point, kind, flags, programmed_nl, delivered_nl, depth_um, time_ms,
                      syringe, channel, epoch, vacuum_kpa):
        # the dosing loop's event, packed straight into its ring slot: no tuple, no copy, no allocation
        slot = self.ring[self.event_seq % spec.EVENT_RING]
        struct.pack_into(_DELIVERY_FORMAT, slot, spec.HEADER_SIZE, record_id, session, point, kind, flags,
                         programmed_nl, delivered_nl, depth_um, time_ms, syringe, channel, epoch, vacuum_kpa)
        self._sent(slot, codec.frame_into(slot, spec.DELIVERY, self.event_seq))

    def _sent(self, slot, n):
        self.ring_len[self.event_seq % spec.EVENT_RING] = n
        self.event_seq = (self.event_seq + 1) & 0xFF
        if self.events_sent < spec.EVENT_RING:
            self.events_sent += 1
        self.board.host_write(slot, n)

    def oldest_event(self):
        # the oldest event SEQ the ring still holds
        return (self.event_seq - self.events_sent) & 0xFF

    def resend_events(self, from_seq):
        # every event from from_seq on, again, in order; False if the ring no longer holds them
        behind = (self.event_seq - from_seq) & 0xFF
        if behind > self.events_sent:
            return False
        for k in range(behind):
            i = (from_seq + k) % spec.EVENT_RING
            self.board.host_write(self.ring[i], self.ring_len[i])
        return True
