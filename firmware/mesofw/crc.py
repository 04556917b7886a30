# Checksums without heap allocation: CRC-16/CCITT-FALSE of frames (spec.crc16 is its definition)
# and the journal's CRC-32 (zlib's), both by 256-entry table, in viper where the port compiles it.
# binascii.crc32 is not used: on a 32-bit MCU its result is a heap object 3 times in 4 (>= 2^30).
# crc16(data, start, end) -> int; crc32_check(buf, off, n, store) -> 1/0: the CRC-32 of
# buf[off:off+n] stored little-endian at buf[off+n:off+n+4] (store=1), or compared with it.
T16 = bytearray(512)  # CCITT table, uint16 little-endian
T32 = bytearray(1024)  # zlib table, uint32 little-endian
for _i in range(256):
    _c = _i << 8
    for _ in range(8):
        _c = ((_c << 1) ^ 0x1021) & 0xFFFF if _c & 0x8000 else (_c << 1) & 0xFFFF
    T16[2 * _i] = _c & 0xFF
    T16[2 * _i + 1] = _c >> 8
    _lo = _i  # zlib's reflected CRC in two 16-bit halves: small ints on every port
    _hi = 0
    for _ in range(8):
        _odd = _lo & 1
        _lo = (_lo >> 1) | ((_hi & 1) << 15)
        _hi >>= 1
        if _odd:  # ^ 0xEDB88320
            _lo ^= 0x8320
            _hi ^= 0xEDB8
    T32[4 * _i] = _lo & 0xFF
    T32[4 * _i + 1] = _lo >> 8
    T32[4 * _i + 2] = _hi & 0xFF
    T32[4 * _i + 3] = _hi >> 8


def crc16_py(data, start, end):
    t = T16
    crc = 0xFFFF
    for i in range(start, end):
        k = ((crc >> 8) ^ data[i]) << 1
        crc = ((crc << 8) & 0xFFFF) ^ t[k] ^ (t[k + 1] << 8)
    return crc


def crc32_check_py(buf, off, n, store):
    t = T32
    lo = hi = 0xFFFF
    for i in range(off, off + n):
        k = ((lo ^ buf[i]) & 0xFF) << 2
        lo = (((hi & 0xFF) << 8) | (lo >> 8)) ^ t[k] ^ (t[k + 1] << 8)
        hi = (hi >> 8) ^ t[k + 2] ^ (t[k + 3] << 8)
    lo ^= 0xFFFF
    hi ^= 0xFFFF
    e = off + n
    if store:
        buf[e] = lo & 0xFF
        buf[e + 1] = lo >> 8
        buf[e + 2] = hi & 0xFF
        buf[e + 3] = hi >> 8
        return 1
    return 1 if buf[e] | buf[e + 1] << 8 == lo and buf[e + 2] | buf[e + 3] << 8 == hi else 0


try:  # a port built without the native emitter cannot compile crc_viper: the table in Python
    from mesofw.crc_viper import crc16, crc32_check
except (ImportError, SyntaxError):
    crc16 = crc16_py
    crc32_check = crc32_check_py
