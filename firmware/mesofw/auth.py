# Command authentication (PROTOCOL.md, "Authentication"): a per-device key, an HMAC-SHA256 tag
# truncated to 8 bytes over VER TYPE and the payload before the tag, and a counter that must
# increase. The key is written by PAIR and never sent back. The counter's high-water mark is
# kept on flash a block ahead (one write per RESERVE commands), so a frame recorded before a
# reset is still refused after it. OPEN (signed with that counter) opens the one host session:
# its id is OPEN's counter, unique for ever; every other signed command names the session and
# counts within it, so a frame of another session, or of this one replayed, is refused.
import hashlib
import micropython
import os
import struct

from mesoprotocol import spec as S

KEY_FILE = "key"
COUNTER_FILE = "auth_counter"
RESERVE = 1024
_BLOCK = 64  # SHA-256 block size


def _save(path, data):
    with open(path + ".new", "wb") as f:  # write-then-rename: a torn write keeps the old file
        f.write(data)
    os.rename(path + ".new", path)


class Auth:
    def __init__(self, key_path=KEY_FILE, counter_path=COUNTER_FILE):
        self.key_path = key_path
        self.counter_path = counter_path
        self.inner = self.outer = None
        try:
            with open(key_path, "rb") as f:
                self._set_key(f.read())
        except OSError:
            pass
        try:
            with open(counter_path) as f:
                self.counter = int(f.read())
        except (OSError, ValueError):
            self.counter = 0
        self.reserved = self.counter  # counters up to here may have been accepted before a reset
        self.session = 0  # the open host session (0: none); a reset closes it
        self.session_counter = 0  # the last counter accepted in it
        self.head = bytearray((S.PROTOCOL_VERSION, 0))  # VER TYPE, what the tag covers before the payload

    def paired(self):
        return self.inner is not None

    def _set_key(self, key):
        if len(key) != S.KEY_SIZE:
            return
        k = key + bytes(_BLOCK - len(key))
        self.inner = bytes(b ^ 0x36 for b in k)
        self.outer = bytes(b ^ 0x5C for b in k)

    def mac(self, msg, more=None):
        # the tag of msg (+ more, when given: the same as of their concatenation, without making it)
        inner = hashlib.sha256(self.inner)
        inner.update(msg)
        if more is not None:
            inner.update(more)
        outer = hashlib.sha256(self.outer)
        outer.update(inner.digest())
        return outer.digest()[: S.MAC_SIZE]

    @micropython.native  # every signed frame (the host's POLL, ~10 a second while dosing), in the pass it completes
    def check(self, msg_type, payload, n_fields):
        # None if the frame is authentic and fresh (its counter is then used up), else the NACK's
        # (reason, field, value, limit): AUTH field 0 not paired, the counter's (replayed/old), the
        # mac's (forged); NO_SESSION: a session command outside the open session
        if self.inner is None:
            return (S.NACK_AUTH, 0, 0, 0)
        n = len(payload)
        counter = struct.unpack_from("<I", payload, n - S.AUTH_SIZE)[0]
        head = self.head
        head[1] = msg_type
        tag = self.mac(head, memoryview(payload)[: n - S.MAC_SIZE])  # VER TYPE payload: no copy of the frame
        diff = 0
        for i in range(S.MAC_SIZE):  # every byte compared: the time taken says nothing
            diff |= tag[i] ^ payload[n - S.MAC_SIZE + i]
        if diff:
            return (S.NACK_AUTH, n_fields, counter, 0)
        if msg_type != S.OPEN:
            session = struct.unpack_from("<I", payload, n - S.AUTH_SIZE - S.SESSION_SIZE)[0]
            if not self.session or session != self.session:
                return (S.NACK_NO_SESSION, n_fields - 2, session, 1 if self.session else 0)
            if counter <= self.session_counter:
                return (S.NACK_AUTH, n_fields - 1, counter, self.session_counter)
            self.session_counter = counter
            return None
        if counter <= self.counter:
            return (S.NACK_AUTH, n_fields - 1, counter, self.counter)
        self.counter = counter
        if counter >= self.reserved:
            self.reserved = min(counter + RESERVE, 0xFFFFFFFF)  # a u32 on the wire
            _save(self.counter_path, str(self.reserved).encode())
        return None

    def open_session(self):
        # the OPEN just accepted becomes the session: its id is OPEN's counter
        self.session = self.counter
        self.session_counter = 0

    def close_session(self):
        self.session = 0

    def pair(self, key):
        # a new key: frames signed with the old one fail their tag, so the counter starts again
        # (a device whose counter ran out is recovered by pairing it again)
        _save(self.key_path, bytes(key))
        self._set_key(bytes(key))
        self.counter = self.reserved = 0
        self.session = 0
        _save(self.counter_path, b"0")
