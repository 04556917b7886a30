"""Serial link to a device: framed requests with retransmission, and an event queue.

Stop-and-wait: one command in flight. A command that times out is sent again
with the same sequence number; the device answers a repeat from its reply cache
without executing it twice (PROTOCOL.md, "Retransmission").
"""

from __future__ import annotations

import queue
import socket
import threading
import time

import serial
import serial.tools.list_ports

from mesoprotocol import spec

from . import codec



class LinkError(Exception):
    """The device did not answer, or the port failed."""


class PortNotFound(LinkError):
    def __init__(self, port: str):
        ports = [p.device for p in serial.tools.list_ports.comports()]
        listed = ", ".join(ports) if ports else "none found"
        super().__init__(f"serial port {port!r} does not exist or cannot be opened. Ports on this machine: {listed}. "
                         "For a simulated board use --sim, or `mesoinject sim` and its socket:// URL.")


class PortBusy(LinkError):
    def __init__(self, port: str):
        super().__init__(f"serial port {port!r} is in use by another program (another mesoinject, a test worker, "
                         "a terminal): close it, or give each test worker its own port (--mesoinject-port per worker)")


class LayoutMismatch(LinkError):
    """The device sends a message laid out otherwise than this host's spec: its firmware and this host were built
    from different revisions of the protocol (PROTOCOL.md 10: version 1 changes without a bump until release)."""

    def __init__(self, msg_type: int, length: int):
        name, expected = codec.NAMES[msg_type], codec.PAYLOADS[msg_type].sizeof()
        self.msg_type, self.length = msg_type, length
        super().__init__(
            f"the device sends {name} in {length} bytes where this mesoinject reads {expected}: its firmware and this "
            "mesoinject come from different revisions of the protocol. Nothing in those frames was stored or "
            "acknowledged: the device keeps its records and its alarm until a matching host takes them. Flash this "
            "mesoinject's firmware (`mesoinject flash --board NAME --port PORT`), or use the mesoinject the "
            "device's firmware came with")


# the reply each command gets besides a NACK naming it; the rest get an ACK naming them
REPLY_TO = {spec.HELLO: spec.IDENTITY, spec.STATUS: spec.STATUS_REPLY, spec.POLL: spec.STATUS_REPLY,
            spec.RECORDS: spec.RECORD}


def answers(reply: codec.Message, command: int) -> bool:
    """Whether this reply can be the answer to this command (its SEQ aside)."""
    if reply.type == spec.NACK:
        return reply.fields["command"] == command
    if reply.type == spec.ACK:
        return reply.fields["command"] == command and command not in REPLY_TO
    return REPLY_TO.get(command) == reply.type


def describe(reply: codec.Message) -> str:
    if reply.type in (spec.ACK, spec.NACK):
        return f"{reply.name} to {codec.NAMES.get(reply.fields['command'], hex(reply.fields['command']))}"
    return reply.name


MIN_RTO_S = 0.01  # retransmission timeout bounds (RFC 6298 estimator, Karn's rule)
# The least time a request keeps trying, whatever the round trip: a board's control loop can stall on
# its flash (a littlefs commit may erase two 4 KB blocks, 400 ms each at the datasheet's worst, with the
# CPU stalled on an RP2040), and a stall that long is not a lost link.
PATIENCE_S = 2.0
FLUSH = bytes(spec.MAX_FRAME)  # sent before a retransmission (PROTOCOL.md 3)


class Link:
    def __init__(self, port: str, *, baudrate: int = 115200, timeout: float = 0.25, retries: int = 5,
                 patience: float = PATIENCE_S, min_rto: float = MIN_RTO_S):
        # timeout: the first wait, before any round trip is measured, and the most a retransmission
        # timeout may grow to; later waits follow the measured round trip, doubling per retry.
        # retries: at least this many retransmissions, and more until `patience` seconds have passed.
        # min_rto: the least retransmission timeout; a board in an emulator running at a fraction of real
        # time jitters by whole seconds of wall time, and every retransmission costs it MAX_FRAME bytes to read.
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self.patience = patience
        self.min_rto = min_rto
        self.srtt: float | None = None  # smoothed round trip, s
        self.rttvar = 0.0
        try:
            # exclusive: a second program (another test worker, a terminal) on the same serial port gets a clear
            # refusal instead of a share of the bytes (POSIX flock; Windows ports are exclusive anyway; URLs
            # such as socket:// ignore it)
            self.serial = serial.serial_for_url(port, baudrate=baudrate, timeout=0.05, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as e:
            if port.startswith("socket://"):
                raise LinkError(f"cannot connect to {port}: {e}. Is the simulated board running?") from e
            if "exclusively lock" in str(e):
                raise PortBusy(port) from e
            raise PortNotFound(port) from e
        sock = getattr(self.serial, "_socket", None)
        if sock is not None:  # socket:// ports: pyserial leaves Nagle on, which holds small frames ~40 ms
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.serial.reset_input_buffer()  # stale bytes from before we opened
        self.reader = codec.FrameReader()
        self.events: queue.Queue[codec.Message] = queue.Queue()
        self.rx_dropped = 0
        self.event_gaps = 0  # events lost for good (older than the device's ring when asked for)
        self.event_duplicates = 0
        self.retransmits = 0
        self._seq = 0
        self._cached: tuple[int, int] | None = None  # TYPE and SEQ of the last command the device caches
        self._lock = threading.Lock()  # one request at a time
        self._drop_partial = False  # set by a retransmission: the read loop drops a partial frame
        self._event_lock = threading.Lock()
        self._reply: queue.Queue[codec.Message] = queue.Queue()
        self._waiting: tuple[int, int | None] | None = None  # SEQ and TYPE of the command awaiting its reply
        self.mismatched = 0  # replies with the awaited SEQ that answer another command (another host's?)
        self._last_mismatch = ""
        self._boot: int | None = None  # boot_count of the device whose events `_next_event` counts
        # events reach `events` once each and in order: SEQ `_next_event` is the next one due;
        # later ones wait in `_early` until the missing ones are sent again (EVENTS)
        self._next_event: int | None = None
        self._early: dict[int, codec.Message] = {}
        self._closed = False
        self.error: Exception | None = None
        self._misfits: dict[tuple[int, int], int] = {}  # (TYPE, LEN) of well-formed device frames in another layout
        self._thread = threading.Thread(target=self._read_loop, name="mesoinject-link", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed = True
        self._thread.join(timeout=1)
        self.serial.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, msg_type: int, **fields) -> codec.Message:
        """Send a command, return its reply (one of spec.REPLIES)."""
        with self._lock:
            self._seq = (self._seq + 1) & 0xFF
            if msg_type not in spec.UNCACHED:
                if (msg_type, self._seq) == self._cached:  # the device would answer from its cache
                    self._seq = (self._seq + 1) & 0xFF
                self._cached = (msg_type, self._seq)
            frame = codec.encode(msg_type, self._seq, **fields)
            first = time.monotonic()
            attempt = 0
            while attempt <= self.retries or time.monotonic() - first < self.patience:
                data = frame
                if attempt:
                    self.retransmits += 1
                    # a frame whose LEN byte was corrupted makes a reader wait for bytes that never
                    # belonged to it, swallowing the frames behind: filler (never a sync byte) completes
                    # and fails it on the device, and our own partial frame is dropped
                    data = FLUSH + frame
                    self._drop_partial = True
                sent = time.monotonic()
                reply = self._exchange(data, self._seq, min(self.rto() * 2**attempt, 2 * self.timeout), msg_type)
                if reply is not None:
                    if not attempt:  # Karn: a retransmitted exchange says nothing about the round trip
                        self._sample(time.monotonic() - sent)
                    return reply
                attempt += 1
            stray = (f" ({self.mismatched} replies with its SEQ answered another command, the last {self._last_mismatch}: "
                     "is another program using this port?)") if self.mismatched else ""
            raise LinkError(f"no reply to {codec.NAMES[msg_type]} from {self.port} after {attempt} tries in "
                            f"{time.monotonic() - first:.1f} s{stray}")

    def exchange(self, data: bytes, seq: int, msg_type: int | None = None) -> codec.Message | None:
        """Write raw bytes once and wait for the reply with this sequence number (and, given msg_type, one
        that answers that command): as long as send() would keep trying, its patience - a raw frame is the
        caller's own and is not retransmitted, so one slow reply on a loaded host must not read as none."""
        with self._lock:
            return self._exchange(data, seq, max(self.patience, self.timeout), msg_type)

    def rto(self) -> float:
        """The retransmission timeout now: srtt + 4 rttvar, within [min_rto, timeout]."""
        if self.srtt is None:
            return self.timeout
        return min(max(self.srtt + 4 * self.rttvar, self.min_rto), self.timeout)

    def _sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt

    def _exchange(self, data: bytes, seq: int, timeout: float, msg_type: int | None) -> codec.Message | None:
        if isinstance(self.error, LayoutMismatch):
            raise self.error
        if self.error:
            raise LinkError(f"link to {self.port} failed: {self.error}")
        while not self._reply.empty():  # a reply that came after its request gave up
            self._reply.get_nowait()
        self._waiting = (seq, msg_type)
        try:
            self._write(data)
            return self._reply.get(timeout=timeout)
        except queue.Empty:
            return None
        finally:
            self._waiting = None

    def _write(self, frame: bytes) -> None:
        try:
            self.serial.write(frame)
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"cannot write to {self.port}: {e}") from e

    def _read_loop(self) -> None:
        while not self._closed:
            try:
                data = self.serial.read(max(1, self.serial.in_waiting))
            except (serial.SerialException, OSError, TypeError) as e:
                if not self._closed:
                    self.error = e
                return
            if self._drop_partial:
                self._drop_partial = False
                self.reader.reset()  # a reply with a corrupted LEN must not swallow the next one
            if data:
                for item in self.reader.feed(data):
                    self._dispatch(item)

    def _dispatch(self, item) -> None:
        if not isinstance(item, codec.Message):
            self.rx_dropped += 1  # CRC, oversize, or a frame the device should never send
            if isinstance(item, codec.Rejected) and item.reason == spec.NACK_BAD_LENGTH and item.type >= 0x80:
                self._misfit(item)
            return
        if item.type in spec.REPLIES:
            waiting = self._waiting
            if waiting is None or item.seq != waiting[0]:
                return  # late, or for a command we no longer wait for
            if waiting[1] is not None and not answers(item, waiting[1]):
                # the right SEQ, but not an answer to our command (another host on the port, or a
                # reply to an earlier command): never taken for ours
                self.mismatched += 1
                self._last_mismatch = describe(item)
                return
            self._waiting = None  # a late duplicate of this reply is ignored
            self._reply.put(item)
            return
        with self._event_lock:
            if self._next_event is None:
                self._next_event = item.seq
            ahead = (item.seq - self._next_event) & 0xFF
            if ahead >= 128 or item.seq in self._early:
                self.event_duplicates += 1  # sent again, or a duplicated frame: already delivered
                return
            self._early[item.seq] = item
            while self._next_event in self._early:
                self.events.put(self._early.pop(self._next_event))
                self._next_event = (self._next_event + 1) & 0xFF

    def _misfit(self, item: codec.Rejected) -> None:
        # a reply or event type with a good CRC but another payload size: the device lays it out otherwise. Once
        # could be noise whose CRC matched by chance (1 in 65536); the same TYPE and LEN again (an event sent
        # again on EVENTS, a reply to a retransmission) is the firmware: every request from now on says so
        key = (item.type, item.length)
        self._misfits[key] = self._misfits.get(key, 0) + 1
        if self._misfits[key] >= 2 and self.error is None:
            self.error = LayoutMismatch(item.type, item.length)

    def missing_events(self, next_event_seq: int, boot_count: int) -> int | None:
        """Given the device's next event SEQ and boot (STATUS), the first SEQ not received, or None."""
        with self._event_lock:
            rebooted = self._boot is not None and boot_count != self._boot
            self._boot = boot_count
            if rebooted:
                # its event SEQs started again at 0: what we took for duplicates were its new
                # events: start over and ask for all of them
                self._next_event = 0
                self._early.clear()
            elif self._next_event is None:
                self._next_event = next_event_seq  # nothing seen yet: start here
            elif (next_event_seq - self._next_event) & 0xFF >= 128:
                # we are ahead of this reply: the reader took events the device sent after it
                return None
            return None if self._next_event == next_event_seq else self._next_event

    def skip_events(self, next_event_seq: int) -> None:
        """The device can no longer send the missing events: count them lost, carry on from here."""
        with self._event_lock:
            due = next_event_seq if self._next_event is None else self._next_event
            lost = (next_event_seq - due) & 0xFF
            for seq in sorted(self._early, key=lambda s: (s - due) & 0xFF):
                self.events.put(self._early.pop(seq))
                lost -= 1
            self.event_gaps += lost
            self._next_event = next_event_seq
