"""Host and device accept exactly the same programs: the host's check (Program.check_limits, before
anything is sent) and the device's verdict on CONFIGURE agree on every program hypothesis draws,
near every limit, and refuse on the same field."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesoinject.client import DeviceRefused, new_session_tag
from mesoinject.program import CONFIGURE_FIELDS, Program, ProgramError
from mesoprotocol import rules, spec

TECHNIQUES = {spec.TECHNIQUE_POINT: "point-by-point", spec.TECHNIQUE_NAPPAGE: "nappage",
              spec.TECHNIQUE_TEST_DOSE: "test-dose"}
# the program field a refusal names, by CONFIGURE field (the host speaks in the program's words)
FIELD_OF = {rules.F_VOLUME: {"volume_per_point", "volume_per_shot"}, rules.F_DEPTH: {"depth"},
            rules.F_COUNT: {"points", "shots"}, rules.F_CADENCE: {"cadence"}, rules.F_FLOW: {"flow_rate"},
            rules.F_HEAD: {"technique"}, rules.F_NEEDLE_LENGTH: {"head"}, rules.F_VACUUM: {"vacuum"},
            rules.F_SESSION_CAP: {"total"}}


@st.composite
def programs(draw, syringes):
    """A program in the usual ranges with up to two fields pushed to a limit, next to it, or anywhere
    in their wire range: about as many accepted as refused, every refusal path reached; with the cap
    of the session it opens (a plan's total: none, near the program's total, near the ceiling, any)."""
    technique = draw(st.sampled_from(sorted(TECHNIQUES)))
    nappage = technique == spec.TECHNIQUE_NAPPAGE
    usual = {  # field: (edges, usual low, usual high, widest)
        "depth_um": ((spec.MIN_DEPTH_UM, 3800, spec.MAX_DEPTH_UM), spec.MIN_DEPTH_UM, 3800, 0xFFFF),
        "volume_nl": ((spec.MIN_VOLUME_NL, 540, 560, 10000, 50000, spec.MAX_TEST_DOSE_NL), 600,
                      5000 if nappage else 40000, 250000),
        "count": ((1, 2, 19, 20, spec.MAX_POINTS, spec.MAX_SHOTS), 1,
                  1 if technique == spec.TECHNIQUE_TEST_DOSE else 18, 0xFFFF),
        "cadence_mhz": ((spec.MIN_CADENCE_MHZ, 6000, 9000, 12000), 1000, 6000, 0xFFFF),
        "flow_nl_s": ((spec.MIN_FLOW_NL_S, 20000, 100000), 50000, 100000, 200000),
    }
    pushed = draw(st.sets(st.sampled_from(sorted(usual)), max_size=2))
    values = {}
    for name, (edges, low, high, widest) in usual.items():
        if name in pushed:
            around = [v + d for v in edges for d in (-1, 0, 1) if 0 <= v + d <= widest]
            values[name] = draw(st.one_of(st.sampled_from(around), st.integers(0, widest)))
        else:
            values[name] = draw(st.integers(low, high))
    if not nappage:
        values["cadence_mhz"] = 0
    head = draw(st.sampled_from(sorted(spec.HEADS)))  # its needle length and needles come from the table
    program = Program(name="drawn", technique=TECHNIQUES[technique], drug="saline",
                      syringe=draw(st.sampled_from(syringes)), head=head, prime_nl=100000,
                      vacuum_kpa=draw(st.sampled_from((0, 9, 10, 40, 60, 61))) if spec.HEADS[head][1] > 1 else 0,
                      **values)
    total = values["volume_nl"] * values["count"]
    near = [v for v in (total - 1, total, total + 1, spec.MAX_SESSION_NL, spec.MAX_SESSION_NL + 1) if v > 0]
    cap = draw(st.one_of(st.just(0), st.sampled_from(near), st.integers(0, spec.MAX_SESSION_NL + 1000)))
    return program, cap


def host_verdict(program: Program, limits: dict, cap_nl: int = 0) -> set[str] | None:
    try:
        program.check_limits(limits, session_cap_nl=cap_nl)
    except ProgramError as e:
        return {e.field}
    return None


def device_verdict(device, program: Program, cap_nl: int = 0) -> set[str] | None:
    try:
        device.configure(session=new_session_tag(), session_cap_nl=cap_nl, **program.configure_fields())
    except DeviceRefused as e:
        if e.reason == "HEAD":  # the rules passed; the board has another head on (the host cannot know)
            return None
        assert e.command == "CONFIGURE" and e.reason in ("LIMIT", "INFEASIBLE"), e
        return FIELD_OF[CONFIGURE_FIELDS.index(e.field) + 1]
    return None


@pytest.mark.req("SR-017")
@pytest.mark.sim_only  # the loaded syringe is the simulated board's (a real rig: whatever is clamped)
def test_host_and_device_accept_exactly_the_same_programs(device, sim):
    limits = device.hello().limits
    fitting = spec.syringes_fitting(spec.SYRINGES[sim.syringe][4])  # the device refuses any other outright
    seen = {"accepted": 0, "refused": 0}

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(programs(fitting))
    def agree(drawn):
        program, cap = drawn
        host, dev = host_verdict(program, limits, cap), device_verdict(device, program, cap)
        assert (host is None) == (dev is None), (program, cap, host, dev)
        if host is not None:
            assert host & dev, (program, cap, host, dev)  # both name the same field
        seen["accepted" if host is None else "refused"] += 1

    agree()
    print(f"host and device agreed on {seen}")
    assert seen["accepted"] >= 10 and seen["refused"] >= 10, seen  # both sides of the limits were tried


@pytest.mark.req("SR-008", "SR-017", "SR-082")
def test_an_infeasible_cadence_comes_with_the_flow_that_makes_it_possible(device):
    limits = device.hello().limits
    program = Program(name="fast", technique="nappage", drug="saline", syringe=1,
                      depth_um=1000, volume_nl=3000, count=40, cadence_mhz=8000,
                      flow_nl_s=20000, head=1, prime_nl=10000)
    with pytest.raises(ProgramError) as refused:
        program.check_limits(limits)
    words = str(refused.value)
    assert refused.value.field == "cadence" and "8 Hz" in words and "uL/s" in words and "nL" not in words
    suggested = words.split('flow_rate = "')[1].split('"')[0]
    flow_nl_s = round(float(suggested.split()[0]) * 1000)
    faster = Program(**{**program.__dict__, "flow_nl_s": flow_nl_s})
    faster.check_limits(limits)  # the host's own suggestion passes its check...
    assert device.configure(session=new_session_tag(), **faster.configure_fields())["state"] in (
        spec.STATE_CONFIGURED, spec.STATE_PRIMED)  # ...and the device's


@pytest.mark.req("SR-005", "SR-082")
def test_a_dose_below_what_the_syringe_meters_reads_in_microlitres(device):
    program = Program(name="tiny", technique="point-by-point", drug="saline", syringe=1,
                      depth_um=1500, volume_nl=550, count=3, cadence_mhz=0,
                      flow_nl_s=50000, head=1, prime_nl=10000)
    with pytest.raises(ProgramError) as refused:
        program.check_limits(device.hello().limits)
    assert refused.value.field == "volume_per_point"
    assert "0.55 uL is below the least the BD 1 mL meters to 1 %: 0.56 uL" in str(refused.value)
    with pytest.raises(DeviceRefused) as nack:  # and the device agrees, to the nanolitre
        device.configure(session=new_session_tag(), **program.configure_fields())
    assert (nack.value.field, nack.value.value, nack.value.limit) == ("volume_nl", 550, 560)
