"""A device whose firmware lays a message out otherwise (an ALARM of the 18 bytes before it named its boot): the host
says so, clearly, and loses nothing - it acknowledges nothing of it and sends nothing that would clear it."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from mesoinject import codec
from mesoinject.client import Device
from mesoinject.link import LayoutMismatch, Link, LinkError
from mesoprotocol import spec

OLD_ALARM = struct.pack("<BBiIII", spec.ALARM_RESET, spec.STATE_FAULT, spec.RESET_WATCHDOG, 12, 0, 0x2A5A0D03)


def frame(msg_type: int, seq: int, payload: bytes) -> bytes:
    body = {"length": len(payload), "version": spec.PROTOCOL_VERSION, "type": msg_type, "seq": seq, "payload": payload}
    return codec.Frame.build({"body": {"value": body}})


class OldAlarmBoard:
    """Restarts by its watchdog after the host's first poll: holds the RESET (FAULT) and sends its ALARM event in the
    old 18-byte layout, and again on EVENTS."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.commands: list[int] = []
        self.events = 0  # sent so far: the next event's SEQ
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        reader = codec.FrameReader()
        with conn:
            while data := conn.recv(256):
                for m in reader.feed(data):
                    if isinstance(m, codec.Message):
                        self.commands.append(m.type)
                        conn.sendall(self._answer(m))

    def _answer(self, m: codec.Message) -> bytes:
        if m.type == spec.STATUS:
            reply = codec.encode(spec.STATUS_REPLY, m.seq, state=spec.STATE_FAULT, alarm=spec.ALARM_RESET, trigger=0,
                                 technique=0, done=0, planned=0, delivered_nl=0, syringe_left_nl=0, depth_um=0,
                                 rx_errors=0, time_ms=50, unacked=0, next_event_seq=self.events, boot_count=3,
                                 overruns=0, worst_pass_us=0, lag_ms=0)
            if not self.events:  # the alarm, the moment after the first poll
                self.events = 1
                reply += frame(spec.ALARM, 0, OLD_ALARM)
            return reply
        if m.type == spec.EVENTS:  # sent again, still in its old layout, then the ACK
            return frame(spec.ALARM, 0, OLD_ALARM) + codec.encode(spec.ACK, m.seq, command=m.type,
                                                                  state=spec.STATE_FAULT)
        return codec.encode(spec.ACK, m.seq, command=m.type, state=spec.STATE_FAULT)

    def close(self) -> None:
        self.server.close()


@pytest.mark.req("SR-207")
def test_an_event_in_an_old_layout_is_a_clear_error_and_nothing_is_acknowledged():
    # before: the frame was counted as dropped and asked for again at every poll, for ever: the ALARM never
    # reached the host, every event after it was held back behind the gap, and nothing said why
    board = OldAlarmBoard()
    device = Device(Link(board.url))
    try:
        device.status()  # the link counts events from here; the ALARM follows, in its old layout
        device.status()  # it is missing: asked for again (EVENTS), and comes again in the same layout
        with pytest.raises(LayoutMismatch) as raised:
            device.status()
        said = str(raised.value)
        assert "sends ALARM in 18 bytes where this mesoinject reads 22" in said
        assert "mesoinject flash" in said and "keeps its records and its alarm" in said
        assert isinstance(raised.value, LinkError)  # a caller that handles a lost link stops as for one
        assert device.next_event(0) is None  # nothing of it was taken for an event
        assert spec.EVENTS in board.commands
        assert not {spec.ABORT, spec.RECORDS} & set(board.commands)  # the held RESET is not acknowledged
    finally:
        device.close()
        board.close()


def test_one_frame_in_another_layout_is_noise_until_it_comes_again():
    # a CRC matching by chance (1 in 65536) on a corrupted frame must not end a session
    link = Link.__new__(Link)
    link.error, link._misfits, link.rx_dropped = None, {}, 0
    link._dispatch(codec.Rejected(spec.DELIVERY, 4, spec.NACK_BAD_LENGTH, 30))
    link._dispatch(codec.Rejected(spec.DELIVERY, 5, spec.NACK_BAD_LENGTH, 31))
    assert link.error is None and link.rx_dropped == 2
    link._dispatch(codec.Rejected(spec.DELIVERY, 4, spec.NACK_BAD_LENGTH, 30))
    assert isinstance(link.error, LayoutMismatch)
