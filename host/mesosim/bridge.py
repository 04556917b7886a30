"""The simulated board's USB serial, bridged: the board's pty to a second pty (a path any serial program
opens) and to socket://127.0.0.1:PORT (one client at a time), through a link that can be cut, stalled,
damaged and paced (linkfaults.py)."""

from __future__ import annotations

import collections
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable

from .linkfaults import LinkFaults
from .ports import loopback_server, raw_pty, read


class SerialBridge:
    """Bytes between the board (device_fd: its pty master) and the host side (pty and socket).

    "host" is the direction towards the host program, "device" towards the board.
    """

    def __init__(self, device_fd: int, cond: threading.Condition):
        self._device_fd = device_fd
        self._cond = cond  # held while bytes move, shared with the harness's state
        self._host_master, self._host_slave = raw_pty()
        os.set_blocking(self._host_master, False)
        self.pty_path = os.ttyname(self._host_slave)
        self._srv = loopback_server()
        self.url = "socket://127.0.0.1:%d" % self._srv.getsockname()[1]
        self._client: socket.socket | None = None
        self._sel: selectors.BaseSelector | None = None
        self.link_mode = "ok"  # ok | cut (bytes lost) | stall (bytes held until restored)
        self._stalled: list[tuple[str, bytes]] = []
        self.faults = LinkFaults()  # a clean link until set_faults()
        self._held: dict[str, collections.deque] = {"host": collections.deque(), "device": collections.deque()}
        self._line_free = {"host": 0.0, "device": 0.0}  # when the paced line has sent what it holds
        # a wire tap for benchmarks: called (time.time(), bytes) as the firmware's bytes leave the board
        self.on_device_bytes: Callable[[float, bytes], None] | None = None

    def register(self, sel: selectors.BaseSelector) -> None:
        self._sel = sel
        sel.register(self._host_master, selectors.EVENT_READ, self._from_host_pty)
        sel.register(self._srv, selectors.EVENT_READ, self._accept_client)

    @property
    def holding(self) -> bool:
        """Bytes are held back for later (the I/O loop must come back soon to release them)."""
        return bool(self._held["host"] or self._held["device"])

    def close(self) -> None:
        for sock in (self._client, self._srv):
            if sock:
                sock.close()
        os.close(self._host_master)
        os.close(self._host_slave)

    # ---- the link ------------------------------------------------------------------------
    def set_link(self, mode: str) -> None:
        if mode not in ("ok", "cut", "stall"):
            raise ValueError(mode)
        with self._cond:  # held while flushing: nothing newer can overtake the stalled bytes
            if mode == "ok":
                for where, data in self._stalled:
                    self.deliver(where, data)
                self._stalled = []
            self.link_mode = mode

    def set_faults(self, faults: LinkFaults | None) -> None:
        with self._cond:
            self.faults = faults or LinkFaults()

    # ---- bytes ---------------------------------------------------------------------------
    def from_device(self, data: bytes) -> None:
        """What the board wrote to its serial port."""
        if data and self.on_device_bytes:
            self.on_device_bytes(time.time(), data)
        if data and self._link_passes("host", data):
            self.deliver("host", data)

    def _to_device(self, data: bytes) -> None:
        if data and self._link_passes("device", data):
            self.deliver("device", data)

    def _link_passes(self, where: str, data: bytes) -> bool:
        with self._cond:
            if self.link_mode == "stall":
                self._stalled.append((where, data))
            return self.link_mode == "ok"

    def deliver(self, where: str, data: bytes) -> None:
        """data on towards where, through the link's faults and pacing."""
        with self._cond:
            if not self.faults.active and not self._held[where]:
                self._write_to(where, data)
                return
            pieces, hold = self.faults.apply(data)
            held = self._held[where]
            now = time.monotonic()
            due = now + hold
            if held:  # bytes behind a held-back write wait for it: a link never reorders
                due = max(due, held[-1][0])
            for piece in pieces:
                if self.faults.baud:  # the line is busy until the previous bytes are out
                    due = max(due, self._line_free[where]) + len(piece) * 10 / self.faults.baud
                    self._line_free[where] = due
                if held or due > now:  # behind held-back bytes, or held back itself
                    held.append((due, piece))
                else:
                    self._write_to(where, piece)

    def release_held(self) -> None:
        with self._cond:
            now = time.monotonic()
            for where, held in self._held.items():
                while held and held[0][0] <= now:
                    self._write_to(where, held.popleft()[1])

    def _write_to(self, where: str, data: bytes) -> None:
        if where == "device":
            os.write(self._device_fd, data)
            return
        try:
            os.write(self._host_master, data)
        except BlockingIOError:
            pass  # nobody is reading the pty: bytes fall on the floor as on a real UART
        if self._client:
            try:
                self._client.sendall(data)
            except OSError:
                self._drop_client()

    # ---- the host side: pty and socket:// ------------------------------------------------
    def _from_host_pty(self) -> None:
        self._to_device(read(self._host_master))

    def _accept_client(self) -> None:
        assert self._sel is not None
        conn, _ = self._srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._drop_client()  # one host at a time, the newest wins (a re-plugged cable)
        self._client = conn
        self._sel.register(conn, selectors.EVENT_READ, lambda: self._from_client(conn))

    def _from_client(self, conn: socket.socket) -> None:
        if conn is not self._client:  # dropped earlier in this same select round
            return
        try:
            data = conn.recv(4096)
        except OSError:
            data = b""
        if data:
            self._to_device(data)
        else:
            self._drop_client()

    def _drop_client(self) -> None:
        if self._client:
            assert self._sel is not None
            self._sel.unregister(self._client)
            self._client.close()
            self._client = None
