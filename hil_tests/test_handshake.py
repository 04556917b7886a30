"""HELLO/IDENTITY and STATUS: who the device is and the limits it enforces."""

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

