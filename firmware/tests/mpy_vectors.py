# Runs on MicroPython: feeds every golden vector to the firmware codec, prints JSON results.
import binascii
import json
import sys

from mesofw import codec
from mesoprotocol import spec
from mesoprotocol import names  # the codes' names: spec.py re-exports them on CPython only

for _name in dir(names):
    if _name.endswith("_NAMES"):
        setattr(spec, _name, getattr(names, _name))


def value(v):
    return v.rstrip(b"\0").decode() if isinstance(v, bytes) else v


def decode(data, byte_by_byte):
    reader = codec.FrameReader()
    results = []

    def on_result(kind):
        if kind == codec.DROPPED:
            results.append({"dropped": reader.error})
        elif kind == codec.ERROR:
            results.append({"nack": spec.NACK_NAMES[reader.error], "type": reader.msg_type, "seq": reader.seq})
        else:
            names = spec.layout(reader.msg_type)[1]
            values = codec.decode_payload(reader.msg_type, reader.payload)
            fields = {}
            for name, v in zip(names, values):
                fields[name] = binascii.hexlify(v).decode() if name in spec.RAW_FIELDS else value(v)
            results.append({"frame": spec.MESSAGES[reader.msg_type][0], "seq": reader.seq, "fields": fields})

    if byte_by_byte:
        for i in range(len(data)):
            reader.feed(data[i : i + 1], on_result)
    else:
        reader.feed(data, on_result)
    return results


TYPES = {}
for t, m in spec.MESSAGES.items():
    TYPES[m[0]] = t

out = []
for case in json.load(open(sys.argv[1]))["cases"]:
    data = binascii.unhexlify(case["hex"])
    encoded = None
    if case.get("encode"):
        r = case["results"][0]
        t = TYPES[r["frame"]]
        vals = []
        for name in spec.layout(t)[1]:
            v = r["fields"][name]
            if name in spec.RAW_FIELDS:
                v = binascii.unhexlify(v)
            vals.append(v.encode() if isinstance(v, str) else v)
        encoded = binascii.hexlify(codec.encode(t, r["seq"], vals)).decode()
    out.append({"name": case["name"], "whole": decode(data, False), "bytes": decode(data, True), "encoded": encoded})
print(json.dumps(out))
