# Firmware frame codec: bytes <-> (type, seq, payload) with resync, built on struct.
# Layouts come from mesoprotocol.spec; nothing about the wire is defined here.
import struct
from mesoprotocol import spec
from mesofw.crc import crc16  # spec.crc16's results by table (viper where the port has it)

# FrameReader.feed() results
FRAME = 0  # a complete frame with a good CRC and a known, well-formed message
ERROR = 1  # a frame whose CRC is good but which must be NACKed (reason in .error)
DROPPED = 2  # bytes discarded: bad CRC or oversize length (reason in .error)

_FORMATS = {}
for _t in spec.MESSAGES:
    _fmt = spec.layout(_t)[0]
    _FORMATS[_t] = (_fmt, struct.calcsize(_fmt))


def payload_size(msg_type):
    return _FORMATS[msg_type][1]


def encode_into(buf, msg_type, seq, values):
    # Pack a frame into buf (>= MAX_FRAME bytes); returns the frame length.
    struct.pack_into(_FORMATS[msg_type][0], buf, spec.HEADER_SIZE, *values)
    return frame_into(buf, msg_type, seq)


def frame_into(buf, msg_type, seq):
    # Header and CRC around the payload already at buf[HEADER_SIZE:]; returns the frame length.
    # Allocates nothing (encode_into's *values does): for the dosing loop's events.
    size = _FORMATS[msg_type][1]
    buf[0] = spec.SYNC0
    buf[1] = spec.SYNC1
    buf[2] = size
    buf[3] = spec.PROTOCOL_VERSION
    buf[4] = msg_type
    buf[5] = seq & 0xFF
    end = spec.HEADER_SIZE + size
    crc = crc16(buf, 2, end)
    buf[end] = crc & 0xFF
    buf[end + 1] = crc >> 8
    return end + spec.CRC_SIZE


def encode(msg_type, seq, values):
    buf = bytearray(spec.MAX_FRAME)
    return bytes(buf[: encode_into(buf, msg_type, seq, values)])


def decode_payload(msg_type, payload):
    return struct.unpack(_FORMATS[msg_type][0], payload)


class FrameReader:
    # Accumulates bytes; yields one result per complete frame or discarded run.
    # After a bad CRC it rescans from the byte after the bad frame's sync, so a
    # good frame hidden inside garbage is never lost.

    def __init__(self):
        self.buf = bytearray(spec.MAX_FRAME * 2)
        self.n = 0
        self.msg_type = 0
        self.seq = 0
        self.version = 0
        self.payload = memoryview(self.buf)[0:0]
        self.error = 0  # type: int | str  # NACK_* for ERROR, or one of the DROP_* names for DROPPED

    def pending(self):
        return self.n

    def reset(self):
        self.n = 0

    def feed(self, data, callback):
        # callback(result) for each result; self.* describe the current frame.
        # The bytes are copied in a run and scanned once per run, not once per byte (on an RP2040
        # a 24-byte frame cost 5.1 ms scanned per byte): _scan leaves only undecided bytes, so
        # scanning late gives the same results in the same order. A full buffer is scanned first,
        # then loses its oldest byte, as when every byte was scanned.
        buf = self.buf
        size = len(buf)
        i = 0
        m = len(data)
        while i < m:
            if self.n == size:
                self._scan(callback)
                if self.n == size:
                    self._shift(1)
            n = self.n
            k = min(size - n, m - i)
            buf[n : n + k] = data[i : i + k]  # one slice a run of bytes: allocated per frame, not per pass
            self.n = n + k
            i += k
        self._scan(callback)

    def _shift(self, k):
        # drop the first k bytes of the buffer
        buf = self.buf
        n = self.n - k
        buf[0:n] = buf[k : self.n]
        self.n = n

    def _scan(self, callback):
        buf = self.buf
        while self.n:
            if buf[0] != spec.SYNC0 or (self.n > 1 and buf[1] != spec.SYNC1):
                skip = 1
                while skip < self.n and buf[skip] != spec.SYNC0:
                    skip += 1
                self._shift(skip)
                continue
            if self.n < spec.HEADER_SIZE:
                return
            length = buf[2]
            if length > spec.MAX_PAYLOAD:
                self.error = "OVERSIZE"
                self._shift(1)
                callback(DROPPED)
                continue
            total = spec.HEADER_SIZE + length + spec.CRC_SIZE
            if self.n < total:
                return
            end = spec.HEADER_SIZE + length
            crc = buf[end] | (buf[end + 1] << 8)
            if crc16(buf, 2, end) != crc:
                self.error = "CRC"
                self._shift(1)
                callback(DROPPED)
                continue
            self.version = buf[3]
            self.msg_type = buf[4]
            self.seq = buf[5]
            self.payload = memoryview(buf)[spec.HEADER_SIZE : end]
            fmt = _FORMATS.get(self.msg_type)
            if self.version != spec.PROTOCOL_VERSION:
                self.error = spec.NACK_BAD_VERSION
                result = ERROR
            elif fmt is None:
                self.error = spec.NACK_UNKNOWN_TYPE
                result = ERROR
            elif fmt[1] != length:
                self.error = spec.NACK_BAD_LENGTH
                result = ERROR
            else:
                result = FRAME
            callback(result)
            self._shift(total)
