# Runs on MicroPython: the firmware's CRCs (viper where the port compiles it, and the table in
# Python) against their definitions (spec.crc16, binascii.crc32) and the golden frames; and what a
# journal write allocates (0: on a 32-bit port binascii.crc32's results >= 2^30 were heap objects).
# argv[1]: frames.json; argv[2]: a directory for the journal's flash files.
import binascii
import gc
import json
import os
import random
import struct
import sys

from mesofw import crc, journal
from mesoprotocol import spec

out = {"viper": crc.crc16 is not crc.crc16_py, "bad": [], "frames": 0, "random": 0}
with open(sys.argv[1]) as f:
    cases = json.load(f)["cases"]
for c in cases:
    if c.get("encode"):  # a well-formed frame: its own CRC at the end
        b = binascii.unhexlify(c["hex"])
        want = b[-2] | b[-1] << 8
        for name, f16 in (("viper", crc.crc16), ("py", crc.crc16_py)):
            if f16(b, 2, len(b) - 2) != want:
                out["bad"].append([name, c["name"]])
        out["frames"] += 1
random.seed(1)
for n in list(range(40)) + [100, 255]:
    b = bytearray(random.getrandbits(8) for _ in range(n + 4))
    for name, f16, f32 in (("viper", crc.crc16, crc.crc32_check), ("py", crc.crc16_py, crc.crc32_check_py)):
        if f16(b, 0, n) != spec.crc16(b, 0, n):
            out["bad"].append([name, "crc16", n])
        f32(b, 0, n, 1)
        if bytes(b[n:]) != struct.pack("<I", binascii.crc32(b[:n])) or not f32(b, 0, n, 0):
            out["bad"].append([name, "crc32", n])
        b[n // 2] ^= 0x10
        if n and f32(b, 0, n, 0):
            out["bad"].append([name, "crc32 missed a flipped bit", n])
        b[n // 2] ^= 0x10
    out["random"] += 1

os.chdir(sys.argv[2])
j = journal.Journal(64)
j.open(7, 0, spec.KIND_SHOT, 1000, 5)
buf = bytearray(32)
alloc = {}
for name, call in (("crc16", lambda: crc.crc16(buf, 0, 30)), ("crc16_py", lambda: crc.crc16_py(buf, 0, 30)),
                   ("crc32", lambda: crc.crc32_check(buf, 0, 28, 1)),
                   ("crc32_py", lambda: crc.crc32_check_py(buf, 0, 28, 1)),
                   ("checkpoint", lambda: j.checkpoint(500, 1000, 0x3FFFFFF0))):
    call()
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for i in range(20):
        buf[0] = i  # a different CRC every time: most of them >= 2^30
        call()
    alloc[name] = gc.mem_alloc() - before
    gc.enable()
out["alloc"] = alloc
print(json.dumps(out))
