"""The simulated board's control channel, harness side: one schema (firmware/boards/sim/board_ctrl.py),
loaded by path; anything outside it is refused naming the kind; mesosim needs no host library."""

from __future__ import annotations

import selectors
import socket
import subprocess
import sys
import threading

import pytest

from mesosim import control


def test_the_harness_reads_the_schema_the_board_imports():
    assert control.schema_path().parts[-4:] == ("firmware", "boards", "sim", "board_ctrl.py")
    schema = control.schema()
    assert schema.fields(schema.TO_BOARD, "load") == ["diameter_um", "content_nl", "barrel_um"]
    truth = {"kind": "truth", **{f: 1 for f in schema.fields(schema.FROM_BOARD, "truth")}}
    assert schema.decode(schema.FROM_BOARD, schema.encode(schema.FROM_BOARD, truth).rstrip("\n")) == truth


@pytest.mark.parametrize("line, says", [
    ('{"kind": "bogus"}', "unknown control message kind 'bogus'"),
    ('{"kind": "pen", "t0_us": 1}', "control message 'pen': missing t1_us, volume_nl, max_depth_um, t1_ms"),
    ('{"kind": "wdt", "fed": 1}', "control message 'wdt': missing none, unknown fed"),
    ('{"t_us": 1}', "control message without a kind"),
    ("wdt 1 2", "control message is not JSON"),
])
def test_a_message_outside_the_schema_is_refused_saying_what_is_wrong(line, says):
    schema = control.schema()
    with pytest.raises(ValueError, match=says):
        schema.decode(schema.FROM_BOARD, line)


def test_the_harness_refuses_to_send_what_the_board_would_not_understand():
    channel = control.ControlChannel(threading.Condition(), lambda msg: None)
    try:
        with pytest.raises(control.ControlError, match="unknown control message kind 'tigger'"):
            channel.send("tigger", pressed=True)
        with pytest.raises(control.ControlError, match="'occlude': missing ramp_per_s"):
            channel.send("occlude", factor=2.0)
        with pytest.raises(ConnectionError):  # a good message, but no board connected
            channel.send("occlude", factor=2.0, ramp_per_s=0.0)
    finally:
        channel.close()


def test_a_bad_message_from_the_board_is_kept_for_the_next_wait_and_the_good_ones_still_arrive():
    got = []
    channel = control.ControlChannel(threading.Condition(), got.append)
    sel = selectors.DefaultSelector()
    channel.register(sel)
    host, port = channel.address.split(":")
    board = socket.create_connection((host, int(port)))
    try:
        board.sendall(b'{"kind": "led", "code": 3}\n{"kind": "wdt"}\n')
        while not got:  # accept, then read both lines
            for key, _ in sel.select(timeout=5):
                key.data()
        assert got == [{"kind": "wdt"}]
        with pytest.raises(control.ControlError, match="from the simulated board: control message 'led': missing t_us"):
            channel.raise_error()
    finally:
        board.close()
        channel.close()
        sel.close()


def test_mesosim_imports_no_host_library():
    code = ("import sys, mesosim, mesosim.control as c; c.schema(); "
            "print(sorted(m for m in sys.modules if m.startswith('mesoinject')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
