"""Property-based tests (hypothesis) over both codecs.

- the host codec (construct, host/mesoinject/codec.py) and the firmware codec
  (struct, firmware/mesofw/codec.py: plain MicroPython-compatible Python, imported
  here under CPython; firmware/tests/mpy_fuzz.py runs it on the MicroPython unix port)
- every message type in spec.MESSAGES round-trips with field values drawn from their
  whole struct ranges, and both codecs (and an independent struct + binascii encoder)
  produce the same bytes
- any byte string fed to either frame reader, whole or in any chunks, gives results
  (frame / NACK / dropped) and never raises; both readers give the same results
- a valid frame after any garbage is found (resync)
"""

from __future__ import annotations

import binascii
import pathlib
import struct
import sys

import construct
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mesoinject import codec as host
from mesoprotocol import spec

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "firmware"))
from mesofw import codec as fw  # noqa: E402

TYPES = sorted(spec.MESSAGES)
NAMES = {t: m[0] for t, m in spec.MESSAGES.items()}
RANGES = {"B": (0, 0xFF), "H": (0, 0xFFFF), "I": (0, 0xFFFFFFFF),
          "b": (-0x80, 0x7F), "h": (-0x8000, 0x7FFF), "i": (-0x80000000, 0x7FFFFFFF)}
SYNC = bytes([spec.SYNC0, spec.SYNC1])
RAW = tuple(getattr(spec, "RAW_FIELDS", ()))  # byte strings of their full size (key, mac), not text

# examples per property (per message type for the per-type ones): the file runs in seconds
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PER_TYPE = settings(PROPS, max_examples=50)


def field_values(name, code):
    if name in RAW:
        return st.binary(min_size=int(code[:-1]), max_size=int(code[:-1]))
    if code.endswith("s"):  # char[n]: ASCII, NUL-padded on the wire, NUL-stripped on decode
        return st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=int(code[:-1]))
    low, high = RANGES[code]
    return st.integers(low, high)


def message_fields(msg_type):
    return st.fixed_dictionaries({name: field_values(name, code) for name, code in spec.MESSAGES[msg_type][1]})


def fw_values(msg_type, fields):
    return tuple(fields[n].encode() if isinstance(fields[n], str) else fields[n] for n in spec.layout(msg_type)[1])


def reference_frame(msg_type, seq, payload, version=spec.PROTOCOL_VERSION, length=None):
    # independent of both codecs: plain bytes, binascii.crc_hqx (CRC-16/CCITT-FALSE)
    body = bytes([len(payload) if length is None else length, version, msg_type, seq]) + payload
    return SYNC + body + struct.pack("<H", binascii.crc_hqx(body, 0xFFFF))


# ---- results of both readers in one shape (the shape of frames.json) ---------------------
def host_results(items):
    out = []
    for item in items:
        if isinstance(item, host.Message):
            out.append({"frame": item.name, "seq": item.seq, "fields": item.fields})
        elif isinstance(item, host.Rejected):
            out.append({"nack": item.reason_name, "type": item.type, "seq": item.seq})
        else:
            assert isinstance(item, host.Dropped), item
            out.append({"dropped": item.reason})
    return out


def host_reads_any_version(reader):
    # the host's own rule: a NACK of any protocol version is read (its layout never changes),
    # so a device of another version can say which one it speaks; the firmware NACKs it
    return (reader.error == spec.NACK_BAD_VERSION and reader.msg_type == spec.NACK
            and len(reader.payload) == fw.payload_size(spec.NACK))


def fw_feed(reader, data, out):
    # the firmware reader reports through a callback; its payload view is valid only there
    def on_result(kind):
        if kind == fw.DROPPED:
            out.append({"dropped": reader.error})
        elif kind == fw.ERROR and not host_reads_any_version(reader):
            out.append({"nack": spec.NACK_NAMES[reader.error], "type": reader.msg_type, "seq": reader.seq})
        else:
            assert kind in (fw.FRAME, fw.ERROR), kind
            values = fw.decode_payload(reader.msg_type, reader.payload)
            fields = {}
            for name, v in zip(spec.layout(reader.msg_type)[1], values):
                if isinstance(v, bytes) and name not in RAW:
                    v = v.rstrip(b"\0")
                    if max(v, default=0) > 0x7F:
                        # not ASCII: the host codec rejects such a frame (BAD_VALUE) rather than
                        # decode it; the firmware hands the bytes on (it never receives char fields)
                        out.append({"nack": "BAD_VALUE", "type": reader.msg_type, "seq": reader.seq})
                        return
                    v = v.decode()
                fields[name] = v
            out.append({"frame": NAMES[reader.msg_type], "seq": reader.seq, "fields": fields})

    reader.feed(data, on_result)
    return out


def fw_results(data):
    return fw_feed(fw.FrameReader(), data, [])


# ---- streams worth decoding: frames with any header, damaged frames, garbage --------------
@st.composite
def any_frame(draw):
    """A frame with a good CRC and any header: known or unknown type, any version, any length."""
    msg_type = draw(st.one_of(st.sampled_from(TYPES), st.integers(0, 255)))
    if msg_type in spec.MESSAGES and draw(st.booleans()):
        payload = draw(st.binary(min_size=fw.payload_size(msg_type), max_size=fw.payload_size(msg_type)))
    else:
        payload = draw(st.binary(max_size=spec.MAX_PAYLOAD))
    version = draw(st.sampled_from([spec.PROTOCOL_VERSION] * 4 + [0, 2, 255]))
    return reference_frame(msg_type, draw(st.integers(0, 255)), payload, version)


@st.composite
def damaged(draw, frames):
    frame = bytearray(draw(frames))
    how = draw(st.sampled_from(["flip", "truncate", "length", "insert", "delete"]))
    i = draw(st.integers(0, len(frame) - 1))
    if how == "flip":
        frame[i] ^= 1 << draw(st.integers(0, 7))
    elif how == "truncate":
        del frame[i:]
    elif how == "length":
        frame[2] = draw(st.integers(0, 255))
    elif how == "insert":
        frame.insert(i, draw(st.integers(0, 255)))
    else:
        del frame[i]
    return bytes(frame)


pieces = st.one_of(any_frame(), damaged(any_frame()), st.binary(max_size=24), st.just(SYNC),
                   st.just(bytes([spec.SYNC0])))
streams = st.lists(pieces, max_size=8).map(b"".join)


def chunked(data, cuts):
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


# ---- round trips, byte-identical encoders ---------------------------------------------------
@pytest.mark.req("SR-033")
@pytest.mark.parametrize("msg_type", TYPES, ids=[NAMES[t] for t in TYPES])
@PER_TYPE
@given(data=st.data())
def test_host_round_trip(msg_type, data):
    fields = data.draw(message_fields(msg_type))
    seq = data.draw(st.integers(0, 255))
    frame = host.encode(msg_type, seq, **fields)
    assert len(frame) == spec.HEADER_SIZE + fw.payload_size(msg_type) + spec.CRC_SIZE
    assert host.FrameReader().feed(frame) == [host.Message(msg_type, seq, fields)]


@pytest.mark.req("SR-033")
@pytest.mark.parametrize("msg_type", TYPES, ids=[NAMES[t] for t in TYPES])
@PER_TYPE
@given(data=st.data())
def test_firmware_round_trip(msg_type, data):
    fields = data.draw(message_fields(msg_type))
    seq = data.draw(st.integers(0, 255))
    frame = fw.encode(msg_type, seq, fw_values(msg_type, fields))
    got = []
    reader = fw.FrameReader()
    reader.feed(frame, lambda kind: got.append((kind, reader.msg_type, reader.seq,
                                                fw.decode_payload(reader.msg_type, reader.payload))))
    expected = tuple(v.ljust(int(code[:-1]), b"\0") if isinstance(v, bytes) else v
                     for v, (_, code) in zip(fw_values(msg_type, fields), spec.MESSAGES[msg_type][1]))
    assert got == [(fw.FRAME, msg_type, seq, expected)]
    assert reader.pending() == 0


@pytest.mark.req("SR-033")
@pytest.mark.parametrize("msg_type", TYPES, ids=[NAMES[t] for t in TYPES])
@PER_TYPE
@given(data=st.data())
def test_both_codecs_encode_identical_bytes(msg_type, data):
    fields = data.draw(message_fields(msg_type))
    seq = data.draw(st.integers(0, 255))
    values = fw_values(msg_type, fields)
    reference = reference_frame(msg_type, seq, struct.pack(spec.layout(msg_type)[0], *values))
    assert host.encode(msg_type, seq, **fields) == reference
    assert fw.encode(msg_type, seq, values) == reference


@pytest.mark.parametrize("msg_type", [t for t in TYPES if spec.MESSAGES[t][1]], ids=lambda t: NAMES[t])
@PER_TYPE
@given(data=st.data())
def test_host_encoder_refuses_out_of_range_values_with_its_own_error(msg_type, data):
    fields = data.draw(message_fields(msg_type))
    name, code = data.draw(st.sampled_from(spec.MESSAGES[msg_type][1]))
    if name in RAW:  # not its exact size
        fields[name] = data.draw(st.binary(max_size=int(code[:-1]) + 8).filter(lambda b: len(b) != int(code[:-1])))
    elif code.endswith("s"):
        fields[name] = data.draw(st.text(st.characters(min_codepoint=1, max_codepoint=127),
                                         min_size=int(code[:-1]) + 1, max_size=int(code[:-1]) + 8))
    else:
        low, high = RANGES[code]
        fields[name] = data.draw(st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1)))
    with pytest.raises(construct.ConstructError):
        host.encode(msg_type, 0, **fields)


# ---- any bytes: results, never an exception; both readers agree ------------------------------
@pytest.mark.req("SR-030")
@PROPS
@given(data=st.one_of(st.binary(max_size=200), streams))
def test_any_bytes_give_results_never_an_exception(data):
    results = host_results(host.FrameReader().feed(data))  # raises nothing: a Message, Rejected or Dropped each
    assert fw_results(data) == results


@pytest.mark.req("SR-030")
@PROPS
@given(data=streams, cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_results_do_not_depend_on_how_bytes_arrive(data, cuts):
    whole = fw_results(data)
    host_reader, fw_reader, host_out, fw_out = host.FrameReader(), fw.FrameReader(), [], []
    for chunk in chunked(data, cuts):
        host_out += host_results(host_reader.feed(chunk))
        fw_feed(fw_reader, chunk, fw_out)
    assert host_out == whole
    assert fw_out == whole
    assert host_reader.pending() == fw_reader.pending()


@pytest.mark.req("SR-031")
@PROPS
@given(msg_type=st.one_of(st.sampled_from(TYPES), st.integers(0, 255)), seq=st.integers(0, 255),
       version=st.sampled_from([spec.PROTOCOL_VERSION, 0, 2, 255]), data=st.data())
def test_a_good_crc_frame_is_classified_as_the_spec_says(msg_type, seq, version, data):
    # exactly one result; NACK reasons in the order of PROTOCOL.md section 2, step 4
    size = fw.payload_size(msg_type) if msg_type in spec.MESSAGES else 0
    payload = data.draw(st.one_of(st.binary(min_size=size, max_size=size), st.binary(max_size=spec.MAX_PAYLOAD)))
    frame = reference_frame(msg_type, seq, payload, version)
    foreign_nack = msg_type == spec.NACK and len(payload) == size  # read in any version (host_reads_any_version)
    if version != spec.PROTOCOL_VERSION and not foreign_nack:
        expected = {"nack": "BAD_VERSION", "type": msg_type, "seq": seq}
    elif msg_type not in spec.MESSAGES:
        expected = {"nack": "UNKNOWN_TYPE", "type": msg_type, "seq": seq}
    elif len(payload) != size:
        expected = {"nack": "BAD_LENGTH", "type": msg_type, "seq": seq}
    else:
        expected = None  # the message (or BAD_VALUE: a char field that is not ASCII)
    for results in (host_results(host.FrameReader().feed(frame)), fw_results(frame)):
        assert len(results) == 1
        if expected is not None:
            assert results == [expected]
        else:
            assert results[0].get("frame") == NAMES[msg_type] or results[0] == {
                "nack": "BAD_VALUE", "type": msg_type, "seq": seq}


@pytest.mark.req("SR-030")
@PROPS
@given(frame=any_frame(), bit=st.integers(0, 7), data=st.data())
def test_a_bit_flip_after_the_sync_pair_is_never_delivered(frame, bit, data):
    # CRC-16 catches every single-bit error: the frame is dropped (or, with a lie in LEN,
    # dropped or still waiting), never delivered or NACKed
    i = data.draw(st.integers(2, len(frame) - 1))
    bad = bytearray(frame)
    bad[i] ^= 1 << bit
    for results in (host_results(host.FrameReader().feed(bytes(bad))), fw_results(bytes(bad))):
        assert all("dropped" in r for r in results), results
        if i > 2:
            assert results[0] == {"dropped": "CRC"}


# ---- resync ---------------------------------------------------------------------------
@pytest.mark.req("SR-030")
@PROPS
@given(garbage=st.binary(max_size=120).map(lambda b: b.replace(bytes([spec.SYNC0]), b"")),
       msg_type=st.sampled_from(TYPES), data=st.data())
def test_a_frame_after_sync_free_garbage_is_the_only_result(garbage, msg_type, data):
    fields = data.draw(message_fields(msg_type))
    frame = host.encode(msg_type, 7, **fields)
    assert host.FrameReader().feed(garbage + frame) == [host.Message(msg_type, 7, fields)]
    assert fw_results(garbage + frame)[-1]["frame"] == NAMES[msg_type]
    assert len(fw_results(garbage + frame)) == 1


messages = st.sampled_from(TYPES).flatmap(lambda t: st.tuples(st.just(t), message_fields(t)))


@pytest.mark.req("SR-030")
@PROPS
@given(garbage=st.one_of(st.binary(max_size=150), streams), msg=messages)
@example(garbage=bytes([spec.SYNC0, spec.SYNC1, spec.MAX_PAYLOAD, 1, 1, 0]), msg=(spec.HELLO, {}))
@example(garbage=bytes([spec.SYNC0, spec.SYNC1, spec.MAX_PAYLOAD + 1]), msg=(spec.HELLO, {}))
@example(garbage=bytes([spec.SYNC0]), msg=(spec.STATUS, {}))
def test_reader_resyncs_to_valid_frames_after_any_garbage(garbage, msg):
    # Garbage may leave a partial frame (LEN up to MAX_PAYLOAD) that swallows what follows
    # until MAX_FRAME bytes are there; a bad CRC drops one byte and rescans, so every frame
    # inside is still found. Garbage, then the frame repeated past MAX_FRAME bytes: every
    # copy is delivered, the last result is the frame, and nothing is left waiting. One
    # exception the 16-bit CRC allows: garbage ending in a frame head whose CRC happens to
    # match with the first copy's opening bytes (1 in 65,536, and hypothesis finds it) is a
    # frame, and takes that copy with it; every later copy is still found.
    msg_type, fields = msg
    frame = host.encode(msg_type, 42, **fields)
    copies = spec.MAX_FRAME // len(frame) + 2
    stream = garbage + frame * copies
    host_reader, fw_reader = host.FrameReader(), fw.FrameReader()
    want = {"frame": NAMES[msg_type], "seq": 42, "fields": fields}
    for out, reader in ((host_results(host_reader.feed(stream)), host_reader),
                        (fw_feed(fw_reader, stream, []), fw_reader)):
        assert out[-1] == want
        assert out[-(copies - 1):] == [want] * (copies - 1)
        assert out[-copies] == want or spans_first_copy(garbage, frame)
        assert reader.pending() == 0


def spans_first_copy(garbage: bytes, frame: bytes) -> bool:
    """The garbage's last frame head, completed by the first copy's bytes, is a valid frame."""
    stream = garbage + frame
    for start in range(len(garbage)):
        if stream[start:start + 2] == bytes([spec.SYNC0, spec.SYNC1]) and start + spec.HEADER_SIZE <= len(stream):
            end = start + spec.HEADER_SIZE + stream[start + 2] + spec.CRC_SIZE
            results = host.FrameReader().feed(stream[start:end]) if len(garbage) < end <= len(stream) else []
            if results and not isinstance(results[0], host.Dropped):
                return True
    return False


# ---- regressions found by these properties ---------------------------------------------------
def test_host_reader_rejects_a_non_ascii_char_field_and_keeps_the_rest():
    # was: construct.StringError escaped FrameReader.feed, losing the frames before it in the
    # same read and killing the host link's reader thread
    fmt, names = spec.layout(spec.IDENTITY)
    values = [b"\xffsim" if code.endswith("s") else 1 for _, code in spec.MESSAGES[spec.IDENTITY][1]]
    bad = reference_frame(spec.IDENTITY, 3, struct.pack(fmt, *values))
    status = host.encode(spec.STATUS, 4)
    items = host.FrameReader().feed(status + bad + status)
    assert items == [host.Message(spec.STATUS, 4, {}), host.Rejected(spec.IDENTITY, 3, spec.NACK_BAD_VALUE),
                     host.Message(spec.STATUS, 4, {})]
