"""Writes frames.json, the golden vectors both codecs must match byte for byte.

Built with plain struct and binascii.crc_hqx (CRC-16/CCITT-FALSE), independently
of both codecs. Re-run only when the protocol version changes; a test checks the
committed file is what this script produces.

    python protocol/vectors/generate.py
"""

import binascii
import hashlib
import hmac
import json
import pathlib
import struct
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from mesoprotocol import spec  # noqa: E402

OUT = pathlib.Path(__file__).with_name("frames.json")
TEST_KEY = bytes(range(0xA0, 0xA0 + spec.KEY_SIZE))  # the key the authenticated vectors are signed with


def frame(msg_type, seq, payload, version=spec.PROTOCOL_VERSION):
    body = bytes([len(payload), version, msg_type, seq]) + payload
    crc = binascii.crc_hqx(body, 0xFFFF)
    return bytes([spec.SYNC0, spec.SYNC1]) + body + struct.pack("<H", crc)


def message(msg_type, seq, **fields):
    fmt, names = spec.layout(msg_type)
    values = [fields[n].encode().ljust(int(code[:-1]), b"\0") if isinstance(fields[n], str) else fields[n]
              for n, (_, code) in zip(names, spec.MESSAGES[msg_type][1])]
    return frame(msg_type, seq, struct.pack(fmt, *values))


TEST_SESSION = 0x00012346  # the host session the session commands' vectors are signed in (OPEN's counter)


def ok(name, msg_type, seq, counter=1, **fields):
    if msg_type in spec.AUTHENTICATED:  # signed with TEST_KEY, by the stdlib's hmac
        if msg_type in spec.SESSION_COMMANDS:
            fields = dict(fields, host_session=TEST_SESSION)
        fields = dict(fields, counter=counter, mac=bytes(spec.MAC_SIZE))
        payload = message(msg_type, seq, **fields)[spec.HEADER_SIZE:-spec.CRC_SIZE]
        msg = bytes([spec.PROTOCOL_VERSION, msg_type]) + payload[: -spec.MAC_SIZE]
        fields["mac"] = hmac.new(TEST_KEY, msg, hashlib.sha256).digest()[: spec.MAC_SIZE]
    shown = {k: v.hex() if isinstance(v, bytes) else v for k, v in fields.items()}  # raw fields as hex
    return {"name": name, "hex": message(msg_type, seq, **fields).hex(), "encode": True,
            "results": [{"frame": spec.MESSAGES[msg_type][0], "seq": seq, "fields": shown}]}


def bad(name, data, *results):
    return {"name": name, "hex": data.hex(), "results": list(results)}


def nack(msg_type, seq, reason):
    return {"nack": spec.NACK_NAMES[reason], "type": msg_type, "seq": seq}


CONFIG_POINT = dict(technique=1, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=3000,
                    volume_nl=30000, count=20, cadence_mhz=0, flow_nl_s=50000, channel=1, session=0x5E55_0001,
                    session_cap_nl=0)
CONFIG_NAPPAGE = dict(technique=2, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=1500,
                      volume_nl=2000, count=40, cadence_mhz=6000, flow_nl_s=50000, channel=2, session=0xA55A_0D0A,
                      session_cap_nl=600000)
IDENTITY = dict(protocol=1, fw_major=0, fw_minor=1, fw_patch=0, board="sim", serial="SIM-0001",
                syringe=1, cal_ppm=1012345, reset_cause=0, max_point_nl=50000, max_shot_nl=10000,
                max_session_nl=5000000, max_depth_um=4000, max_cadence_mhz=10000,
                max_flow_nl_s=100000, link_timeout_ms=500, max_vacuum_kpa=60, boot_count=0x2A5A0D03, journal_free=5998, build=0xA663DE8F,
                paired=1, auth_counter=0x00012345, journal_epoch=0x2A5A0D03, journal_area=508)
STATUS = dict(state=5, alarm=0, trigger=1, technique=1, done=7, planned=20, delivered_nl=210000,
              syringe_left_nl=780000, depth_um=3000, rx_errors=2, time_ms=123456, unacked=1, next_event_seq=0xA5,
              boot_count=0x2A5A0D03, overruns=0x0A0D, worst_pass_us=412345, lag_ms=1234)
DELIVERY = dict(record_id=0x00030007, session=0x5E55_0001, point=7, kind=1, flags=0, programmed_nl=30000,
                delivered_nl=29998, depth_um=3000, time_ms=123456, syringe=1, channel=1, epoch=0x2A5A0D03)
PARTIAL = dict(record_id=0x00030008, session=0x5E55_0001, point=8, kind=1, flags=3, programmed_nl=30000,
               delivered_nl=12345, depth_um=3000, time_ms=124000, syringe=2, channel=2, epoch=0x2A5A0D03)


def vectors():
    good_status = message(spec.STATUS, 9)
    cases = [
        ok("HELLO", spec.HELLO, 0),
        ok("CONFIGURE point-by-point", spec.CONFIGURE, 1, **CONFIG_POINT),
        ok("CONFIGURE nappage", spec.CONFIGURE, 2, **CONFIG_NAPPAGE),
        ok("PRIME 10 uL", spec.PRIME, 3, volume_nl=10000),
        ok("ARM", spec.ARM, 4),
        ok("PAUSE", spec.PAUSE, 5),
        ok("RESUME", spec.RESUME, 6),
        ok("ABORT", spec.ABORT, 7),
        ok("STATUS", spec.STATUS, 255),
        ok("SETTINGS", spec.SETTINGS, 8, max_point_nl=40000, max_shot_nl=5000, max_session_nl=2000000,
           max_depth_um=3000, max_cadence_mhz=8000, max_flow_nl_s=60000, link_timeout_ms=1000, max_vacuum_kpa=40),
        ok("CALIBRATE", spec.CALIBRATE, 9, syringe=1, area_ppm=1030225),
        ok("RECORDS first", spec.RECORDS, 10, ack_id=0),
        ok("EVENTS", spec.EVENTS, 12, from_seq=0xFE),
        ok("REPL", spec.REPL, 13, counter=0xFFFFFFFF),
        ok("PAIR", spec.PAIR, 14, key=bytes(range(0x5A, 0x5A + spec.KEY_SIZE))),
        ok("RECORDS ack", spec.RECORDS, 11, ack_id=0x00030007),
        ok("OPEN", spec.OPEN, 15, counter=TEST_SESSION),
        ok("POLL", spec.POLL, 16, counter=2),
        ok("CLOSE", spec.CLOSE, 17, counter=3),
        ok("LINE_TEST", spec.LINE_TEST, 18, counter=4),
        ok("LINE_RESULT ok", spec.LINE_RESULT, 19, outcome=spec.LINE_OK, syringe=2, lag_us=1280, compliance_pl=3245,
           creep_permille=142, creep_ms=480, step_kpa16=31 * 16 + 5, peak_kpa=41),
        ok("LINE_RESULT open", spec.LINE_RESULT, 20, outcome=spec.LINE_OPEN, syringe=1, lag_us=0, compliance_pl=0,
           creep_permille=0, creep_ms=0, step_kpa16=0, peak_kpa=3),
        ok("NACK line test bad state", spec.NACK, 18, command=spec.LINE_TEST, reason=spec.NACK_BAD_STATE, field=0,
           state=spec.STATE_PRIMED, value=spec.STATE_PRIMED, limit=1 << spec.STATE_CONFIGURED),
        ok("NACK other host", spec.NACK, 15, command=spec.OPEN, reason=spec.NACK_OTHER_HOST, field=0,
           state=spec.STATE_ARMED, value=120, limit=500),
        ok("RECORD pending", spec.RECORD, 11, **DELIVERY, vacuum_kpa=41, pending=2),
        ok("RECORD none left", spec.RECORD, 12, **{k: 0 for k in DELIVERY}, vacuum_kpa=0, pending=0),
        ok("NACK journal full", spec.NACK, 3, command=spec.ARM, reason=spec.NACK_JOURNAL_FULL, field=0,
           state=spec.STATE_PRIMED, value=12, limit=21),
        ok("ACK", spec.ACK, 1, command=spec.CONFIGURE, state=spec.STATE_CONFIGURED),
        ok("NACK depth limit", spec.NACK, 1, command=spec.CONFIGURE, reason=spec.NACK_LIMIT, field=5,
           state=0, value=5000, limit=3800),
        ok("NACK large value", spec.NACK, 2, command=spec.CONFIGURE, reason=spec.NACK_LIMIT, field=6,
           state=0, value=0xFFFFFFFF, limit=50000),
        ok("IDENTITY", spec.IDENTITY, 0, **IDENTITY),
        ok("STATUS_REPLY", spec.STATUS_REPLY, 9, **STATUS),
        ok("DELIVERY complete point", spec.DELIVERY, 10, **DELIVERY, vacuum_kpa=0),
        ok("DELIVERY partial point", spec.DELIVERY, 11, **dict(PARTIAL, flags=spec.FLAG_PARTIAL | spec.FLAG_CONTACT_LOST),
           vacuum_kpa=42),
        ok("ALARM link lost", spec.ALARM, 12, code=spec.ALARM_LINK_LOST, state=spec.STATE_FAULT,
           detail=512, time_ms=99999, record_id=0x00030009, epoch=0x2A5A0D03, boot_count=3),
        ok("ALARM reset, not journalled", spec.ALARM, 14, code=spec.ALARM_RESET, state=spec.STATE_FAULT,
           detail=-1, time_ms=12, record_id=0, epoch=0x2A5A0D03, boot_count=0x3FFFFFFF),
        ok("RECORD alarm", spec.RECORD, 15, record_id=0x0003000A, session=0x5E55_0001, point=spec.ALARM_ESTOP,
           kind=spec.KIND_ALARM, flags=0, programmed_nl=0, delivered_nl=60000, depth_um=2500, time_ms=130000,
           syringe=0, channel=0, epoch=0x2A5A0D03, vacuum_kpa=0, pending=1),
        ok("RECORD end", spec.RECORD, 16, record_id=0x0003000B, session=0x5E55_0001, point=spec.END_COMPLETE,
           kind=spec.KIND_END, flags=0, programmed_nl=20, delivered_nl=600000, depth_um=0, time_ms=140000,
           syringe=0, channel=0, epoch=0x2A5A0D03, vacuum_kpa=0, pending=1),
        ok("STATE armed->delivering", spec.STATE, 13, old=4, new=5, time_ms=5000),
        ok("NACK channel", spec.NACK, 17, command=spec.ARM, reason=spec.NACK_CHANNEL, field=0, state=2, value=2,
           limit=1),
        ok("NACK syringe", spec.NACK, 14, command=spec.CONFIGURE, reason=spec.NACK_SYRINGE, field=2,
           state=0, value=1, limit=10700),
        ok("ALARM syringe", spec.ALARM, 15, code=spec.ALARM_SYRINGE, state=spec.STATE_FAULT, detail=0, time_ms=4242,
           record_id=0x0003000C, epoch=0x2A5A0D03, boot_count=0x0D0A),
        # every byte value survives the link (0x03, 0x0A, 0x0D, 0xA5...)
        ok("DELIVERY awkward bytes", spec.DELIVERY, 0x0A, record_id=0x0D0A035A, session=0x5AA5_0300, point=0xA55A, kind=1,
           flags=0, programmed_nl=0xFFFFFFFF, delivered_nl=0x00A55A00, depth_um=0x0D0A, time_ms=0x03030303, syringe=0x0A,
           channel=0x03, epoch=0x0A0D5AA5, vacuum_kpa=0x5A),
    ]
    corrupt = bytearray(good_status)
    corrupt[-1] ^= 0x01
    flipped = bytearray(bytes.fromhex(ok("", spec.CONFIGURE, 1, **CONFIG_POINT)["hex"]))
    flipped[10] ^= 0x40
    cases += [
        bad("bad CRC", bytes(corrupt), {"dropped": "CRC"}),
        bad("bit flip in payload", bytes(flipped), {"dropped": "CRC"}),
        bad("oversize length", bytes([spec.SYNC0, spec.SYNC1, spec.MAX_PAYLOAD + 1, 1, 8, 0]) + good_status,
            {"dropped": "OVERSIZE"}, {"frame": "STATUS", "seq": 9, "fields": {}}),
        bad("unknown type", frame(0x3E, 4, b""), nack(0x3E, 4, spec.NACK_UNKNOWN_TYPE)),
        bad("wrong payload length", frame(spec.PRIME, 5, b"\x10\x27"), nack(spec.PRIME, 5, spec.NACK_BAD_LENGTH)),
        bad("wrong version", frame(spec.STATUS, 6, b"", version=2), nack(spec.STATUS, 6, spec.NACK_BAD_VERSION)),
        bad("garbage then a frame", bytes.fromhex("00ffa5a5135a37") + good_status,
            {"frame": "STATUS", "seq": 9, "fields": {}}),
        bad("truncated frame then a frame", good_status[:5] + good_status,
            {"dropped": "CRC"}, {"frame": "STATUS", "seq": 9, "fields": {}}),
        bad("frame split by a corrupt frame", good_status + bytes(corrupt) + good_status,
            {"frame": "STATUS", "seq": 9, "fields": {}}, {"dropped": "CRC"},
            {"frame": "STATUS", "seq": 9, "fields": {}}),
        bad("incomplete frame waits", good_status[:-1]),
    ]
    return cases


def render():
    doc = {"protocol_version": spec.PROTOCOL_VERSION,
           "about": "Golden frames. Each case: the bytes fed to a fresh reader, and the results it must give in order. "
                    "Raw byte fields (key, mac) are hex; authenticated commands are signed with test_key.",
           "test_key": TEST_KEY.hex(),
           "cases": vectors()}
    return json.dumps(doc, indent=1) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
