"""Needle heads in a program (issue 17): the head names needles, gauge, length and dead volume from
spec.HEADS; a dose is per needle or per cycle; the host refuses what the device would."""

import pytest

from mesoinject import program as programs
from mesoprotocol import rules, spec

POINT = {"name": "p", "technique": "point-by-point", "drug": "lidocaine", "syringe": "BD 1 mL",
         "volume_per_point": "10 uL", "depth": "2 mm", "points": 5}
FIVE, NINE = 6, 7  # spec.HEADS codes
LIMITS = programs.DEFAULT_LIMITS


@pytest.mark.req("SR-100")
def test_a_head_by_name_brings_its_needles_length_and_dead_volume():
    prog = programs.parse(dict(POINT, head="5-needle 30G 4 mm", prime_volume="50 uL"))
    assert (prog.head, prog.needles, prog.needle_gauge, prog.needle_length_um, prog.dead_volume_nl) == \
        (FIVE, 5, 30, 4000, 45000)
    assert prog.configure_fields()["head"] == FIVE
    assert prog.configure_fields()["needle_length_um"] == 4000  # the head table's, never the program's own


@pytest.mark.req("SR-101")
@pytest.mark.parametrize("dose, cycle_nl, needle_nl", [("per-needle", 90000, 10000), ("per-cycle", 10000, 1111)])
def test_the_dose_is_per_needle_or_per_cycle(dose, cycle_nl, needle_nl):
    prog = programs.parse(dict(POINT, head="9-needle 30G 4 mm", dose=dose, prime_volume="100 uL"))
    assert (prog.volume_nl, prog.per_needle_nl) == (cycle_nl, needle_nl)  # the wire carries the cycle's total


def test_a_single_needle_program_is_its_single_needle_head():
    prog = programs.parse(dict(POINT, needle={"gauge": 30, "length": "13 mm"}))
    assert (prog.head_name, prog.needles, prog.volume_nl) == ("30G 13 mm", 1, 10000)


@pytest.mark.parametrize("change, field, words", [
    (dict(head="7-needle 30G 4 mm"), "head", "not in the head table"),
    (dict(head="30G 4 mm", needle={"gauge": 30, "length": "4 mm"}), "head", "one of the two"),
    (dict(needle={"gauge": 30, "length": "5 mm"}), "needle", "no head holds a single 30G 5 mm needle"),
    (dict(head="30G 4 mm", dose="per-point"), "dose", "per-needle, per-cycle"),
])
def test_a_head_the_table_does_not_have_is_refused_naming_the_field(change, field, words):
    data = {k: v for k, v in dict(POINT, **change).items()}
    with pytest.raises(programs.ProgramError) as refused:
        programs.parse(data)
    assert refused.value.field == field and words in str(refused.value), refused.value


@pytest.mark.req("SR-102")
def test_a_prime_that_does_not_fill_the_heads_dead_volume_is_refused():
    prog = programs.parse(dict(POINT, head="9-needle 30G 4 mm", prime_volume="60 uL"))
    with pytest.raises(programs.ProgramError) as refused:
        prog.check_limits(LIMITS)
    assert refused.value.field == "prime_volume" and "dead volume of 80 uL" in str(refused.value)


@pytest.mark.req("SR-101")
def test_the_per_point_limit_holds_per_needle():
    ok = programs.parse(dict(POINT, head="5-needle 30G 4 mm", volume_per_point="50 uL", points=1,
                             prime_volume="50 uL"))
    ok.check_limits(LIMITS)  # 250 uL a cycle, 50 uL a needle: within max_point_nl
    too_much = programs.parse(dict(POINT, head="5-needle 30G 4 mm", volume_per_point="51 uL", points=1,
                                   prime_volume="50 uL"))
    with pytest.raises(programs.ProgramError) as refused:
        too_much.check_limits(LIMITS)
    assert refused.value.field == "volume_per_point" and "50 uL per needle" in str(refused.value)


def test_nappage_needs_a_single_needle():
    prog = programs.parse({"name": "n", "technique": "nappage", "drug": "x", "syringe": "BD 1 mL",
                           "head": "5-needle 30G 4 mm", "volume_per_shot": "1 uL", "depth": "1.5 mm", "shots": 10,
                           "cadence": "2 Hz", "prime_volume": "50 uL"})
    with pytest.raises(programs.ProgramError) as refused:
        prog.check_limits(LIMITS)
    assert refused.value.field == "technique"
    assert rules.check_head(spec.TECHNIQUE_NAPPAGE, FIVE, 4000) == (spec.NACK_INFEASIBLE, rules.F_HEAD, FIVE, 1)


@pytest.mark.req("SR-104")
def test_a_multi_needle_head_holds_the_skin_by_vacuum_within_the_devices_limit():
    assert programs.parse(dict(POINT, head="5-needle 30G 4 mm")).vacuum_kpa == 40  # the default
    assert programs.parse(dict(POINT, head="5-needle 30G 4 mm", vacuum="0.3 bar")).vacuum_kpa == 30
    assert programs.parse(dict(POINT, head="30G 4 mm")).vacuum_kpa == 0  # a single needle: its contact switch
    with pytest.raises(programs.ProgramError) as refused:
        programs.parse(dict(POINT, head="30G 4 mm", vacuum="30 kPa"))
    assert refused.value.field == "vacuum" and "contact switch" in str(refused.value)
    strong = programs.parse(dict(POINT, head="5-needle 30G 4 mm", vacuum="70 kPa", prime_volume="50 uL"))
    with pytest.raises(programs.ProgramError) as refused:
        strong.check_limits(LIMITS)
    assert refused.value.field == "vacuum" and "70 kPa is above the limit of 60 kPa" in str(refused.value)


def test_every_head_id_band_is_apart_from_every_other():
    # a reading fits at most one head, and neither no head (the pull-up's 3.3 V) nor a short (0 V) fits any
    for code, row in spec.HEADS.items():
        assert spec.head_fitted(row[5]) == code
    assert spec.head_fitted(3300) == 0 and spec.head_fitted(0) == 0
    mvs = sorted(row[5] for row in spec.HEADS.values())
    assert min(b - a for a, b in zip(mvs, mvs[1:])) > 2 * spec.HEAD_ID_TOL_MV
    for code, row in spec.HEADS.items():  # the voltage is the resistor's against the pull-up
        r = row[5] * spec.HEAD_PULLUP_OHM / (3300 - row[5])
        assert min(abs(r - e) / e for e in (1000, 2200, 3900, 6800, 12000, 22000, 47000)) < 0.01, (code, r)
