"""Syringe identity the device measures (issue 15 row 1): the clamp sensor, not the program, says
what is loaded. A board of its own, so swapping its syringe leaves the other suites' board alone."""

import pytest

from hil import drain, wait_event, wait_state
from mesoinject.client import Device, DeviceRefused
from mesoprotocol import spec

pytestmark = pytest.mark.sim_only  # loads and swaps syringes through a simulated board's control channel

BD_1, BD_3, BD_10 = 1, 2, 4
POINT = dict(technique=spec.TECHNIQUE_POINT, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=3000, volume_nl=30000,
             count=5, cadence_mhz=0, flow_nl_s=50000)


@pytest.fixture(scope="module")
def loaded(request):
    """A board with a BD 3 mL in its clamp."""
    from mesoinject.simulated import SimBoard

    with SimBoard(syringe=BD_3, seed=request.config.sim_seed, profile={"diameter_error": 0.0}) as board:
        yield board


@pytest.fixture
def dev(loaded):
    with Device.open(loaded.url) as d:
        d.hello()
        d.abort()
        drain(d)
        yield d
        loaded.set_trigger(False)
        loaded.fail_clamp_sensor(None)
        loaded.load_syringe(BD_3)
        d.abort()


@pytest.mark.req("SR-018")
@pytest.mark.parametrize("program_says", [BD_1, BD_10])
def test_configure_for_another_syringe_than_the_loaded_one_is_refused(dev, loaded, program_says):
    # the attack: a BD 3 mL loaded, the program says BD 1 mL -> 99 uL for a 30 uL point
    out_before = loaded.truth().out_nl
    with pytest.raises(DeviceRefused) as refused:
        dev.configure(syringe=program_says, **POINT)
    e = refused.value
    assert (e.reason, e.field, e.value) == ("SYRINGE", "syringe", program_says)
    assert spec.syringes_fitting(e.limit) == [BD_3, 6]  # the measured barrel: a 3 mL (or Terumo 2.5 mL) size
    assert dev.status()["state"] == spec.STATE_IDLE
    assert loaded.truth().out_nl == out_before


@pytest.mark.req("SR-018")
def test_the_loaded_syringe_is_accepted_and_recorded(dev, loaded):
    assert dev.configure(syringe=BD_3, **POINT)["state"] == spec.STATE_CONFIGURED
    dev.prime(5000)
    seen = []
    assert wait_state(dev, {spec.STATE_PRIMED, spec.STATE_FAULT}, seen=seen) == spec.STATE_PRIMED
    deliveries = [e for e in seen if e.type == spec.DELIVERY] or [wait_event(dev, spec.DELIVERY)]
    assert deliveries[0].fields["syringe"] == BD_3


@pytest.mark.req("SR-018")
def test_prime_after_a_swap_is_refused(dev, loaded):
    dev.configure(syringe=BD_3, **POINT)
    loaded.load_syringe(BD_10)
    out_before = loaded.truth().out_nl
    with pytest.raises(DeviceRefused) as refused:
        dev.prime(5000)
    assert (refused.value.reason, refused.value.value) == ("SYRINGE", BD_3)
    assert spec.syringes_fitting(refused.value.limit) == [BD_10]
    assert loaded.truth().out_nl == out_before


@pytest.mark.req("SR-018")
@pytest.mark.parametrize("fault", ["swap", "sensor"])
def test_a_swap_or_a_sensor_fault_mid_session_stops_dosing(dev, loaded, fault):
    dev.configure(syringe=BD_3, **POINT)
    dev.prime(5000)
    assert wait_state(dev, {spec.STATE_PRIMED, spec.STATE_FAULT}) == spec.STATE_PRIMED
    dev.arm()
    drain(dev)
    if fault == "swap":
        loaded.load_syringe(BD_1)
    else:
        loaded.fail_clamp_sensor(0)  # the wiper lifted: a reading in no syringe's band
    alarm = wait_event(dev, spec.ALARM)
    assert alarm.fields["code"] == spec.ALARM_SYRINGE
    assert wait_state(dev, {spec.STATE_FAULT}) == spec.STATE_FAULT
    out_before = loaded.truth().out_nl
    loaded.set_trigger(True)  # a press on the stopped device delivers nothing
    assert dev.status()["state"] == spec.STATE_FAULT
    loaded.set_trigger(False)
    assert loaded.truth().out_nl == out_before
