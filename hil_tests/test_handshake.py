"""HELLO/IDENTITY and STATUS: who the device is and the limits it enforces."""

from mesoprotocol import spec


def test_identity_reports_versions_and_hard_limits(device):
    ident = device.hello()
    assert ident.protocol == spec.PROTOCOL_VERSION
    assert ident.board and ident.serial
    assert ident.firmware.count(".") == 2
    assert ident.boot_count >= 1
    assert ident.limits == {
        "max_point_nl": spec.MAX_POINT_NL, "max_shot_nl": spec.MAX_SHOT_NL, "max_session_nl": spec.MAX_SESSION_NL,
        "max_depth_um": spec.MAX_DEPTH_UM, "max_cadence_mhz": spec.MAX_CADENCE_MHZ,
        "max_flow_nl_s": spec.MAX_FLOW_NL_S, "link_timeout_ms": spec.LINK_TIMEOUT_MS,
    }


def test_status_after_abort_is_idle_with_needle_home(device):
    status = device.status()
    assert status["state"] == spec.STATE_IDLE
    assert status["depth_um"] == 0
    assert status["alarm"] == 0

