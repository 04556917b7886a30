"""Authenticated commands and pairing: forged, replayed and reordered frames change nothing."""

import pytest

from hil import drain
from mesoinject import codec, keys
from mesoinject.client import Device, NotPaired
from mesoprotocol import spec

PRIME = dict(volume_nl=2000)
CONFIG = dict(technique=spec.TECHNIQUE_POINT, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=2000,
              volume_nl=30000, count=3, cadence_mhz=0, flow_nl_s=50000, session=7,
              session_cap_nl=0)


def send(device, msg_type, seq, fields):
    reply = device.link.exchange(codec.encode(msg_type, seq, **fields), seq)
    assert reply is not None
    return reply


def nacked_auth(reply):
    return reply.type == spec.NACK and reply.fields["reason"] == spec.NACK_AUTH


@pytest.mark.req("SR-071")
def test_open_commands_need_no_key(rig):
    with Device.open(rig.url, keys.KeyStore("/nonexistent")) as dev:
        assert dev.hello().paired
        dev.status()
        dev.abort()  # anyone may stop the device
        with pytest.raises(NotPaired, match="mesoinject pair"):
            dev.configure(**CONFIG)


@pytest.mark.req("SR-070")
def test_forged_replayed_and_reordered_frames_are_refused_and_change_nothing(device):
    before = device.status()
    # forged: signed with another key
    forged = dict(CONFIG, host_session=device.session or device.open_session(), counter=device.session_counter + 1,
                  mac=bytes(8))
    payload = codec.PAYLOADS[spec.CONFIGURE].build(forged)
    forged["mac"] = keys.mac(bytes(16), spec.CONFIGURE, payload[:-8])
    r = send(device, spec.CONFIGURE, 100, forged)
    assert nacked_auth(r) and r.fields["field"] == len(spec.MESSAGES[spec.CONFIGURE][1])  # the mac
    # tampered: a valid frame with one field changed after signing
    signed = device.sign(spec.CONFIGURE, **CONFIG)
    r = send(device, spec.CONFIGURE, 101, dict(signed, depth_um=3800))
    assert nacked_auth(r)
    assert device.status()["state"] == before["state"] == spec.STATE_IDLE
    # reordered: the later frame first, then the earlier one
    first = device.sign(spec.CONFIGURE, **CONFIG)
    second = device.sign(spec.CONFIGURE, **CONFIG)
    assert send(device, spec.CONFIGURE, 102, second).type == spec.ACK
    r = send(device, spec.CONFIGURE, 103, first)
    assert nacked_auth(r) and (r.fields["value"], r.fields["limit"]) == (first["counter"], second["counter"])
    # replayed: the same accepted frame again, once the device has moved on (new SEQ)
    device.status()
    r = send(device, spec.CONFIGURE, 104, second)
    assert nacked_auth(r)
    # only the one accepted frame acted (PRIMED: a syringe an earlier test primed on a board kept across modules)
    assert device.status()["state"] in (spec.STATE_CONFIGURED, spec.STATE_PRIMED)
    drain(device)


@pytest.mark.req("SR-070")
def test_a_frame_recorded_before_a_power_cut_is_refused_after_it(device, sim):
    frame = device.sign(spec.CONFIGURE, **CONFIG)
    assert send(device, spec.CONFIGURE, 110, frame).type == spec.ACK
    sim.power_cut(off_s=0.1)
    device.hello()
    device.abort()
    r = send(device, spec.CONFIGURE, 111, frame)
    # the reset closed the session the frame was signed in (OPEN's own counter is kept on flash)
    assert r.type == spec.NACK and r.fields["reason"] == spec.NACK_NO_SESSION and r.fields["limit"] == 0
    assert device.status()["state"] == spec.STATE_IDLE


@pytest.mark.req("SR-072")
@pytest.mark.sim_only  # pairs a simulated board of its own (the gesture through its control channel)
def test_pairing_needs_the_physical_gesture_and_the_key_is_never_sent_back(tmp_path):
    from mesoinject.simulated import SimBoard

    store = keys.KeyStore(tmp_path / "keys")
    with SimBoard(paired=False, serial="SIM-PAIR") as board, Device.open(board.url, store) as dev:
        ident = dev.hello()
        assert not ident.paired
        with pytest.raises(NotPaired, match="not in pairing mode"):
            dev.pair()  # no gesture: refused
        board.set_estop(True)
        board.set_trigger(True)  # held with the E-stop pressed: the gun shows pairing mode
        board.wait_led((spec.LED_PAIRING,), spec.PAIRING_HOLD_MS / 1000 + 5)
        path = dev.pair()
        board.wait_led((spec.LED_FAULT,), 2)  # the window closed with the pairing (E-stop still pressed)
        board.set_trigger(False)
        board.set_estop(False)
        assert path.stat().st_mode & 0o777 == 0o600
        key = store.get("SIM-PAIR")
        assert dev.hello().paired
        dev.abort()
        assert dev.configure(**CONFIG)["state"] == spec.STATE_CONFIGURED  # signed with the new key
        # no reply the device sends contains the key
        for t in (spec.HELLO, spec.STATUS):
            frame = codec.encode(t, 50)
            raw = dev.link.exchange(frame, 50)
            assert key.hex() not in repr(raw.fields)
