"""Framing on the real link: garbage, corrupt and unknown frames, retransmitted commands."""

import pytest

from hil import FIRST_PRIME_EXTRA_NL, wait_state
from mesoinject import codec
from mesoprotocol import spec


@pytest.mark.req("SR-030")
def test_garbage_before_a_frame_is_skipped_and_counted(device):
    errors = device.status()["rx_errors"]
    good = codec.encode(spec.STATUS, 200)
    corrupt = bytearray(good)
    corrupt[-1] ^= 0xFF
    reply = device.link.exchange(b"\x00\xff\xa5\x13garbage" + bytes(corrupt) + good, 200)
    assert reply is not None and reply.type == spec.STATUS_REPLY
    assert reply.fields["rx_errors"] > errors  # the corrupt frame was counted


@pytest.mark.req("SR-031")
def test_unknown_type_gets_a_nack(device):
    frame = codec.Frame.build({"body": {"value": {"length": 0, "version": 1, "type": 0x3E, "seq": 9, "payload": b""}}})
    reply = device.link.exchange(frame, 9)
    assert reply.type == spec.NACK
    assert reply.fields["reason"] == spec.NACK_UNKNOWN_TYPE and reply.fields["command"] == 0x3E


@pytest.mark.req("SR-031")
def test_wrong_payload_length_gets_a_nack_and_does_nothing(device):
    frame = codec.Frame.build({"body": {"value": {"length": 2, "version": 1, "type": spec.CONFIGURE, "seq": 10,
                                                  "payload": b"\x01\x01"}}})
    reply = device.link.exchange(frame, 10)
    assert reply.type == spec.NACK and reply.fields["reason"] == spec.NACK_BAD_LENGTH
    assert device.status()["state"] == spec.STATE_IDLE


@pytest.mark.req("SR-031")
def test_wrong_version_gets_a_nack(device):
    frame = codec.Frame.build({"body": {"value": {"length": 0, "version": 9, "type": spec.STATUS, "seq": 11,
                                                  "payload": b""}}})
    reply = device.link.exchange(frame, 11)
    assert reply.type == spec.NACK and reply.fields["reason"] == spec.NACK_BAD_VERSION


@pytest.mark.req("SR-032")
def test_retransmitted_prime_dispenses_once(device, sim_or_none):
    device.configure(technique=spec.TECHNIQUE_POINT, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=2000,
                     volume_nl=30000, count=3, cadence_mhz=0, flow_nl_s=50000)
    air = sim_or_none and sim_or_none.truth().air_nl
    frame = codec.encode(spec.PRIME, 77, **device.sign(spec.PRIME, volume_nl=5000))
    first = device.link.exchange(frame, 77)
    again = device.link.exchange(frame, 77)  # the host missed the ACK and sends it again
    assert first.type == again.type == spec.ACK
    assert first.fields == again.fields  # the cached reply, not a BAD_STATE from running it twice
    seen = []
    wait_state(device, {spec.STATE_PRIMED}, seen=seen)
    primes = [e for e in seen if e.type == spec.DELIVERY]
    assert len(primes) <= 1
    if sim_or_none:  # one prime of 5 uL, not two (the first prime also takes up the mechanism's worst-case play)
        assert 0 < sim_or_none.truth().air_nl - air <= 5000 * 1.02 + FIRST_PRIME_EXTRA_NL


def test_every_sequence_byte_round_trips(device):
    # 256 frames whose SEQ byte takes every value, 0x03 (Ctrl-C) and 0x0A/0x0D included:
    # the raw pty passes them all and each reply carries its command's SEQ
    for seq in range(256):
        reply = device.link.exchange(codec.encode(spec.STATUS, seq), seq)
        assert reply is not None and reply.seq == seq
    assert device.link.rx_dropped == 0


@pytest.mark.req("SR-031")
def test_a_reply_type_sent_to_the_device_is_not_a_command(device):
    frame = codec.encode(spec.ACK, 12, command=spec.ARM, state=spec.STATE_ARMED)
    reply = device.link.exchange(frame, 12)
    assert reply.type == spec.NACK and reply.fields["reason"] == spec.NACK_UNKNOWN_TYPE
    assert reply.fields["state"] == device.status()["state"]


@pytest.mark.req("SR-032")
def test_a_malformed_frame_does_not_spoil_the_reply_cache(device):
    configure = codec.encode(spec.CONFIGURE, 40, **device.sign(
        spec.CONFIGURE, technique=1, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=2000, volume_nl=30000,
        count=3, cadence_mhz=0, flow_nl_s=50000, session=9, session_cap_nl=0))
    first = device.link.exchange(configure, 40)
    bad = codec.Frame.build({"body": {"value": {"length": 0, "version": 1, "type": 0x3E, "seq": 41, "payload": b""}}})
    assert device.link.exchange(bad, 41).type == spec.NACK
    again = device.link.exchange(configure, 40)  # the host retransmits the CONFIGURE
    assert (again.type, again.seq, again.fields) == (first.type, 40, first.fields)


@pytest.mark.req("SR-060")
@pytest.mark.parametrize("faults", [dict(flip=0.01), dict(flip=0.01, drop=0.01, duplicate=0.01, truncate=0.01,
                                                          delay=0.01)], ids=["bit flips", "every fault"])
def test_soak_through_a_faulty_link_loses_nothing_and_runs_nothing_twice(sim, request, faults):
    """A short soak (bench/bench_link.py runs 100,000 commands): every command executed once,
    every event delivered once and in order."""
    import sys

    sys.path.insert(0, str(request.config.rootpath / "bench"))
    import bench_link
    from mesosim import LinkFaults

    s = bench_link.soak(sim, 1500, LinkFaults(seed=request.config.sim_seed, **faults))
    bench_link.report_soak(request.node.callspec.id, s)
    assert s.injected["writes"] > 2 * s.commands and s.retransmits > 0  # the faults did happen
    assert (s.lost, s.executed_twice, s.events_lost) == (0, 0, 0)
    assert s.events_received == s.events_expected == s.commands // 2
