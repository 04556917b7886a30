"""One controlling host (issue 15, rows 3, 4, 5, 10, 14), on the simulated board against its ground truth.

A second host shares the board through its pty while the `device` fixture holds the socket.
"""

import time

import pytest

from hil import drain, prime_and_arm, wait_event
from mesoinject import cli, codec, keys
from mesoinject.client import Device, DeviceRefused
from mesoprotocol import spec

SMALL = dict(technique=spec.TECHNIQUE_POINT, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=1000,
             volume_nl=10000, count=3, cadence_mhz=0, flow_nl_s=50000, session=15,
             session_cap_nl=0)
LARGE = dict(SMALL, depth_um=3800, volume_nl=50000)


def test_a_second_host_with_the_same_key_is_refused_and_cannot_change_the_program(device, sim):
    # row 3: host A's program stays the program; host B is told why, and may still look and stop
    device.configure(**SMALL)
    with Device.open(sim.pty_path) as b:
        with pytest.raises(DeviceRefused, match="another host controls it"):
            b.configure(**LARGE)
        assert b.status()["state"] == spec.STATE_CONFIGURED
    prime_and_arm(device)
    start = sim.truth().out_nl
    sim.set_trigger(True)
    point = wait_event(device, spec.DELIVERY)
    sim.set_trigger(False)
    assert (point.fields["programmed_nl"], point.fields["depth_um"]) == (10000, 1000)
    assert sim.truth().out_nl - start < 20000  # host A's 10 uL went in, never host B's 50 uL
    device.abort()
    drain(device)


def test_a_counter_the_session_already_used_is_never_read_as_done(device):
    # row 3: the device answers NACK AUTH with limit == our counter: our frame ran once and its
    # reply was lost; the host reports that, it does not invent an ACK nor send it again
    frame = device.sign(spec.CONFIGURE, **SMALL)
    assert device.link.exchange(codec.encode(spec.CONFIGURE, 90, **frame), 90).type == spec.ACK
    device.session_counter -= 1  # the next CONFIGURE is signed with the counter just used
    with pytest.raises(DeviceRefused, match="its first reply was lost") as refused:
        device.configure(**LARGE)
    assert refused.value.limit == refused.value.value == frame["counter"]
    device.abort()
    drain(device)


def _with_stray(link, stray_type):
    # another host's command with our SEQ reaches the device just before ours: its reply comes
    # first, with our SEQ (deterministic: both frames leave in one write)
    real = link._write

    def write(data):
        link._write = real
        real(codec.encode(stray_type, data[5]) + data)

    link._write = write


def test_a_reply_to_another_command_with_our_seq_is_never_taken_for_ours(device):
    # row 4: a stray ACK before HELLO's IDENTITY, and before a refused PAUSE's NACK
    _with_stray(device.link, spec.ABORT)
    assert device.hello().serial  # not a KeyError on the ACK
    _with_stray(device.link, spec.ABORT)
    with pytest.raises(DeviceRefused, match="PAUSE in state IDLE"):
        device.pause()  # refused in IDLE: never reported done on the ABORT's ACK
    assert device.link.mismatched >= 2


def test_an_anonymous_status_poll_does_not_keep_an_armed_device_alive(device, sim):
    # row 5: the controlling host goes quiet with the device armed; another process polls STATUS
    device.configure(**SMALL)
    prime_and_arm(device)
    start = sim.truth().out_nl
    with Device.open(sim.pty_path, keys.KeyStore("/nonexistent")) as poller:
        deadline = time.monotonic() + 5  # ten link timeouts: a bound, not a measurement
        while (status := poller.status())["state"] != spec.STATE_FAULT:
            assert time.monotonic() < deadline, "an anonymous STATUS poll kept the armed device alive"
        assert status["alarm"] == spec.ALARM_LINK_LOST
        sim.set_trigger(True)
        sim.wait(lambda: sim.trigger_pressed, 2, "the board did not see the trigger")
        poller.status()
        poller.status()
    sim.set_trigger(False)
    assert sim.truth().out_nl == start  # nothing went into the skin after the host left
    device.hello()
    device.abort()
    drain(device)


def test_abort_from_the_command_line_opens_with_hello(device, sim):
    # row 10: `mesoinject abort` works right after LINK_LOST, and a second one is executed again
    assert cli.main(["abort", "--port", sim.pty_path]) == 0
    device.configure(**SMALL)
    prime_and_arm(device)
    alarm = wait_event(device, spec.ALARM)  # the host stays quiet: the watchdog fires
    assert alarm.fields["code"] == spec.ALARM_LINK_LOST
    assert cli.main(["abort", "--port", sim.pty_path]) == 0
    assert device.status()["state"] == spec.STATE_IDLE
    for _ in range(2):  # the second `abort` would reuse the first one's TYPE and SEQ
        sim.set_estop(True)
        assert wait_event(device, spec.ALARM).fields["code"] == spec.ALARM_ESTOP
        sim.set_estop(False)
        assert cli.main(["abort", "--port", sim.pty_path]) == 0
        assert device.status()["state"] == spec.STATE_IDLE  # executed, not answered from a cache
    drain(device)


def test_an_event_taken_before_status_compares_its_cursor_is_delivered_once(device):
    # row 14: the reader thread takes an event the device sent after the STATUS reply, before
    # status() compares the reply's next_event_seq: no "reboot", nothing asked for again
    device.status()
    drain(device)
    gaps = device.link.event_gaps
    real = device.command

    def interleaved(msg_type, **fields):
        reply = real(msg_type, **fields)
        if msg_type in (spec.STATUS, getattr(spec, "POLL", -1)):
            device.command = real
            device.configure(**SMALL)  # its STATE event is in the queue before its ACK returns
        return reply

    device.command = interleaved
    device.status()
    device.status()
    events = drain(device)
    seqs = [e.seq for e in events]
    assert len(seqs) == len(set(seqs)), f"an event arrived twice: {[(e.name, e.seq) for e in events]}"
    assert len([e for e in events if e.type == spec.STATE]) == 1  # IDLE -> CONFIGURED or PRIMED, once
    assert [e for e in events if e.type == spec.ALARM] == []  # no old ALARM again
    assert device.link.event_gaps == gaps
    device.abort()
    drain(device)
