"""The firmware's command authentication (mesofw/auth.py) on MicroPython, against the signed vectors."""

import pathlib

import pytest

from mesoprotocol import spec

HERE = pathlib.Path(__file__).parent
VECTORS = HERE.parents[1] / "protocol" / "vectors" / "frames.json"


@pytest.fixture(scope="module")
def auth(run_mpy, tmp_path_factory):
    return run_mpy(HERE / "mpy_auth.py", VECTORS, tmp_path_factory.mktemp("auth"))


@pytest.mark.req("SR-070", "SR-071")
def test_an_unpaired_device_refuses_every_signed_command(auth):
    assert auth["unpaired"] and all(r == [spec.NACK_AUTH, 0, 0, 0] for r in auth["unpaired"])


@pytest.mark.req("SR-070")
def test_every_signed_vector_is_accepted_once(auth):
    assert all(r is None for _, r in auth["fresh"]), auth["fresh"]
    # again: the counter is used up -> (AUTH, counter field, counter, last accepted)
    assert all(r is not None and r[0] == spec.NACK_AUTH and r[1] >= 1 and r[2] == r[3] for r in auth["replayed"])


@pytest.mark.req("SR-070")
def test_a_changed_field_or_another_key_is_refused_as_a_bad_mac(auth):
    for results in (auth["forged"], auth["wrong_key"]):
        assert all(r is not None and r[0] == spec.NACK_AUTH and r[3] == 0 for r in results), results


@pytest.mark.req("SR-070")
def test_a_frame_accepted_before_a_reset_is_refused_after_it(auth):
    paired, counter, result, session = auth["after_reset"]
    assert paired and counter >= 1024  # the high-water mark was reserved ahead on flash
    assert result is not None and result[0] == spec.NACK_AUTH and result[2] < result[3]
    assert session == 0  # a reset closes the host session


def test_a_session_command_outside_the_open_session_is_refused_naming_it(auth):
    # signed with the right key, but in another host's session or in none: NO_SESSION, field
    # host_session, its value, limit 1 if another session is open
    assert len(auth["other_session"]) == len(auth["no_session"]) >= 9
    for results, limit in ((auth["other_session"], 1), (auth["no_session"], 0)):
        for r in results:
            assert r[0] == spec.NACK_NO_SESSION and r[2] == 0x00012346 and r[3] == limit, r
