"""A board whose control loop stalls on its flash is slow, not gone: the host keeps asking for
PATIENCE_S whatever round trip it has measured, over a real TCP link to a stand-in board."""

from __future__ import annotations

import socket
import threading

import pytest

from mesoinject import codec
from mesoinject.link import PATIENCE_S, Link, LinkError
from mesoprotocol import spec

STALL_S = 1.0  # two 4 KB erases at 400 ms plus page programs: a littlefs commit at its worst


class StallingBoard:
    """Answers at once until told to stall; then reads nothing for `stall` seconds (the CPU stalled
    by a flash erase; bytes wait in its USB buffer) and answers the last command it was sent."""

    def __init__(self, stall: float | None):
        self.stall = stall
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.stalling = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        reader = codec.FrameReader()
        with conn:
            while True:
                try:
                    data = conn.recv(256)
                except OSError:
                    return
                if not data:
                    return
                frames = [m for m in reader.feed(data) if isinstance(m, codec.Message)]
                if not frames:
                    continue
                if self.stalling.is_set():
                    if self.stall is None:
                        continue  # gone for good
                    threading.Event().wait(self.stall)  # the stall itself, not a synchronisation
                    self.stalling.clear()
                    conn.setblocking(False)
                    try:  # what queued during the stall: the last retransmission is answered
                        frames += [m for m in reader.feed(conn.recv(4096)) if isinstance(m, codec.Message)]
                    except BlockingIOError:
                        pass
                    conn.setblocking(True)
                last = frames[-1]
                conn.sendall(codec.encode(spec.ACK, last.seq, command=last.type, state=spec.STATE_IDLE))

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def board(request):
    b = StallingBoard(request.param)
    yield b
    b.close()


@pytest.mark.parametrize("board", [STALL_S], indirect=True)
def test_a_board_stalled_by_its_flash_is_waited_for_not_declared_lost(board):
    with Link(board.url) as link:
        for _ in range(20):  # a fast board: the round-trip estimate (and the retransmission timeout) shrinks
            link.request(spec.ABORT)
        board.stalling.set()
        reply = link.request(spec.ABORT)
        assert reply.type == spec.ACK and reply.fields["command"] == spec.ABORT
        assert link.retransmits > 0  # it did retransmit meanwhile, and kept on past its 5 retries' worth


@pytest.mark.parametrize("board", [None], indirect=True)
def test_a_board_gone_for_good_is_reported_after_the_patience_with_what_was_tried(board):
    with Link(board.url) as link:
        link.request(spec.ABORT)
        board.stalling.set()
        with pytest.raises(LinkError, match=r"no reply to ABORT .* tries in [0-9.]+ s") as e:
            link.request(spec.ABORT)
        assert float(str(e.value).split(" tries in ")[1].split(" s")[0]) >= PATIENCE_S
