# mesofw.crc's tables in viper (machine-word integers, raw buffer access: no heap allocation,
# ~12x the table in Python). Imported by mesofw.crc only where the port has the native emitter.
import micropython
from mesofw.crc import T16, T32


@micropython.viper
def crc16(data, start: int, end: int) -> int:
    p = ptr8(data)
    t = ptr16(T16)
    crc = 0xFFFF
    i = start
    while i < end:
        crc = ((crc << 8) & 0xFFFF) ^ t[((crc >> 8) ^ p[i]) & 0xFF]
        i += 1
    return crc


@micropython.viper
def crc32_check(buf, off: int, n: int, store: int) -> int:
    p = ptr8(buf)
    t = ptr32(T32)
    crc = (uint(0xFFFF) << 16) | uint(0xFFFF)
    i = off
    e = off + n
    while i < e:
        crc = uint(t[int((crc ^ uint(p[i])) & uint(0xFF))]) ^ (crc >> 8)
        i += 1
    crc = crc ^ ((uint(0xFFFF) << 16) | uint(0xFFFF))
    if store:
        p[e] = int(crc & uint(0xFF))
        p[e + 1] = int((crc >> 8) & uint(0xFF))
        p[e + 2] = int((crc >> 16) & uint(0xFF))
        p[e + 3] = int((crc >> 24) & uint(0xFF))
        return 1
    stored = uint(p[e]) | (uint(p[e + 1]) << 8) | (uint(p[e + 2]) << 16) | (uint(p[e + 3]) << 24)
    return 1 if stored == crc else 0
