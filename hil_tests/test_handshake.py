"""HELLO/IDENTITY and STATUS: who the device is and the limits it enforces."""

import pytest

from mesoinject.program import DEFAULT_LIMITS
from mesoprotocol import spec


def test_identity_reports_versions_and_hard_limits(device):
    ident = device.hello()
    assert ident.protocol == spec.PROTOCOL_VERSION
    assert ident.board and ident.serial
    assert ident.firmware.count(".") == 2
    assert ident.boot_count >= 1
    assert ident.limits == DEFAULT_LIMITS  # a fresh board: the protocol's defaults


def test_status_after_abort_is_idle_with_needle_home(device):
    status = device.status()
    assert status["state"] == spec.STATE_IDLE
    assert status["depth_um"] == 0
    assert status["alarm"] == 0



@pytest.mark.req("SR-083")
def test_a_host_of_another_protocol_version_is_told_which_one_the_device_speaks(device, monkeypatch):
    """A newer host meets this firmware: HELLO is refused with the device's version and the fix."""
    from mesoinject import codec
    from mesoinject.client import IncompatibleFirmware

    monkeypatch.setattr(spec, "PROTOCOL_VERSION", spec.PROTOCOL_VERSION + 1)  # this host speaks v2
    real = codec.encode

    def encode_as_v2(msg_type, seq, **fields):
        frame = bytearray(real(msg_type, seq, **fields))
        frame[3] = spec.PROTOCOL_VERSION
        frame[-2:] = spec.crc16(frame[2:-2]).to_bytes(2, "little")
        return bytes(frame)

    monkeypatch.setattr(codec, "encode", encode_as_v2)
    with pytest.raises(IncompatibleFirmware, match=r"device speaks protocol version 1, this mesoinject speaks "
                                                   r"version 2: flash firmware"):
        device.hello()
