"""Host frame codec: construct structures generated from mesoprotocol.spec."""

from __future__ import annotations

from dataclasses import dataclass, field

import construct as c

from mesoprotocol import spec

_SCALARS = {
    "B": c.Int8ul,
    "H": c.Int16ul,
    "I": c.Int32ul,
    "b": c.Int8sl,
    "h": c.Int16sl,
    "i": c.Int32sl,
}


def _field(name: str, code: str, default=None) -> c.Construct:
    if default is not None:  # a field newer than most callers (spec.FIELD_DEFAULTS)
        return name / c.Default(_SCALARS[code], default)
    if name in spec.RAW_FIELDS:  # key, mac: bytes, not text
        return name / c.Bytes(int(code[:-1]))
    if code.endswith("s"):
        return name / c.PaddedString(int(code[:-1]), "ascii")
    return name / _SCALARS[code]


PAYLOADS: dict[int, c.Struct] = {
    msg_type: c.Struct(*(_field(n, code, spec.FIELD_DEFAULTS.get(msg_type, {}).get(n)) for n, code in fields))
    for msg_type, (_, fields) in spec.MESSAGES.items()
}
NAMES: dict[int, str] = {t: m[0] for t, m in spec.MESSAGES.items()}
TYPES: dict[str, int] = {name: t for t, name in NAMES.items()}
FIELDS: dict[int, tuple[str, ...]] = {t: spec.layout(t)[1] for t in spec.MESSAGES}

_Body = c.Struct(
    "length" / c.Int8ul,
    "version" / c.Int8ul,
    "type" / c.Int8ul,
    "seq" / c.Int8ul,
    "payload" / c.Bytes(c.this.length),
)
Frame = c.Struct(
    "sync" / c.Const(bytes([spec.SYNC0, spec.SYNC1])),
    "body" / c.RawCopy(_Body),
    "crc" / c.Checksum(c.Int16ul, spec.crc16, c.this.body.data),
)


@dataclass
class Message:
    type: int
    seq: int
    fields: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return NAMES.get(self.type, f"0x{self.type:02X}")


@dataclass
class Rejected:
    """A frame with a good CRC that the receiver must NACK (reason is a NACK_* code)."""

    type: int
    seq: int
    reason: int
    length: int = field(default=-1, compare=False)  # the frame's LEN (BAD_LENGTH: what the sender laid out)

    @property
    def reason_name(self) -> str:
        return spec.NACK_NAMES[self.reason]


@dataclass
class Dropped:
    """Bytes discarded by the framer: 'CRC' or 'OVERSIZE'."""

    reason: str


def encode(msg_type: int, seq: int, **values) -> bytes:
    payload = PAYLOADS[msg_type].build(values)
    body = {"length": len(payload), "version": spec.PROTOCOL_VERSION, "type": msg_type, "seq": seq & 0xFF, "payload": payload}
    return Frame.build({"body": {"value": body}})


class FrameReader:
    """Stream decoder with resync: feed bytes, get Message / Rejected / Dropped results."""

    _HEAD = spec.HEADER_SIZE

    def __init__(self) -> None:
        self.buf = bytearray()

    def pending(self) -> int:
        return len(self.buf)

    def reset(self) -> None:
        self.buf.clear()

    def feed(self, data: bytes) -> list[Message | Rejected | Dropped]:
        self.buf += data
        out: list[Message | Rejected | Dropped] = []
        buf = self.buf
        while buf:
            start = buf.find(bytes([spec.SYNC0, spec.SYNC1]))
            if start < 0:
                # keep a trailing SYNC0: it may start the next frame
                del buf[: len(buf) - 1 if buf[-1] == spec.SYNC0 else len(buf)]
                break
            del buf[:start]
            if len(buf) < self._HEAD:
                break
            length = buf[2]
            if length > spec.MAX_PAYLOAD:
                out.append(Dropped("OVERSIZE"))
                del buf[:1]
                continue
            total = self._HEAD + length + spec.CRC_SIZE
            if len(buf) < total:
                break
            try:
                frame = Frame.parse(bytes(buf[:total]))
            except c.ChecksumError:
                out.append(Dropped("CRC"))
                del buf[:1]
                continue
            del buf[:total]
            out.append(_decode_body(frame.body.value))
        return out


_NACK_SIZE = PAYLOADS[spec.NACK].sizeof()


def _decode_body(body) -> Message | Rejected:
    # NACK's layout is the same in every protocol version, so a device of another version
    # can still say which version it speaks (NACK BAD_VERSION: limit = its version)
    nack = body.type == spec.NACK and body.length == _NACK_SIZE
    if body.version != spec.PROTOCOL_VERSION and not nack:
        return Rejected(body.type, body.seq, spec.NACK_BAD_VERSION)
    layout = PAYLOADS.get(body.type)
    if layout is None:
        return Rejected(body.type, body.seq, spec.NACK_UNKNOWN_TYPE)
    if layout.sizeof() != body.length:
        return Rejected(body.type, body.seq, spec.NACK_BAD_LENGTH, body.length)
    try:
        parsed = layout.parse(body.payload)
    except c.StringError:  # a char field that is not ASCII: not a message we can read
        return Rejected(body.type, body.seq, spec.NACK_BAD_VALUE)
    return Message(body.type, body.seq, {k: parsed[k] for k in FIELDS[body.type]})
