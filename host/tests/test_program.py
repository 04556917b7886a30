"""Dose programs: units, keys and limits are checked before anything is sent."""


import pytest

from mesoinject import program as programs
from mesoprotocol import spec

PROGRAMS = programs.EXAMPLES
LIMITS = programs.DEFAULT_LIMITS
POINT = {"name": "p", "technique": "point-by-point", "drug": "lidocaine", "syringe": "BD 1 mL",
         "needle": {"gauge": 30, "length": "4 mm"}, "volume_per_point": "0.03 mL", "depth": "3 mm", "points": 20}


@pytest.mark.parametrize("path", sorted(PROGRAMS.glob("*.toml")), ids=lambda p: p.name)
def test_example_programs_load_and_fit_the_limits(path):
    prog = programs.load(path)
    prog.check_limits(LIMITS)


def test_units_become_integer_wire_units():
    prog = programs.load(PROGRAMS / "nappage.toml")
    assert (prog.volume_nl, prog.depth_um, prog.cadence_mhz, prog.count) == (2000, 1500, 6000, 40)
    assert prog.configure_fields()["technique"] == spec.TECHNIQUE_NAPPAGE
    prog = programs.parse(dict(POINT, volume_per_point="30 microliter", depth="0.3 cm", flow_rate="3 mL/min"))
    assert (prog.volume_nl, prog.depth_um, prog.flow_nl_s) == (30000, 3000, 50000)


@pytest.mark.parametrize("changes,field,words", [
    ({"volume_per_point": "3 kg"}, "volume_per_point", "not a volume"),
    ({"depth": "3"}, "depth", "no unit"),
    ({"depth": 3}, "depth", "no unit"),
    ({"depth": "3 parsecs per fortnight"}, "depth", "not a length"),
    ({"depth": "three mm"}, "depth", "not a quantity"),
    ({"points": 0}, "points", "at least 1"),
    ({"points": 2.5}, "points", "whole number"),
    ({"technique": "spray"}, "technique", "not one of"),
    ({"syringe": "Acme 7 mL"}, "syringe", "BD 1 mL"),
    ({"needle": "30G"}, "needle", "gauge = 30"),
    ({"colour": "red"}, "colour", "not a key"),
    ({"cadence": "6 Hz"}, "cadence", "not a key"),
    ({"drug": ""}, "drug", "non-empty"),
])
def test_bad_program_names_the_field(changes, field, words):
    with pytest.raises(programs.ProgramError) as e:
        programs.parse(dict(POINT, **changes))
    assert e.value.field == field
    assert words in str(e.value)


def test_missing_key_is_named():
    data = dict(POINT)
    del data["depth"]
    with pytest.raises(programs.ProgramError, match="depth: missing"):
        programs.parse(data)


@pytest.mark.parametrize("changes,field,words", [
    ({"depth": "4.5 mm", "needle": {"gauge": 30, "length": "13 mm"}}, "depth", "deeper than 4 mm"),
    ({"depth": "3.9 mm"}, "depth", "needle length 4 mm"),
    ({"volume_per_point": "0.1 mL"}, "volume_per_point", "above the limit of 50 uL"),
    ({"points": 34}, "points", "more than the BD 1 mL syringe holds"),
    ({"flow_rate": "1 mL/s"}, "flow_rate", "above the limit"),
])
def test_limits_are_checked_before_sending(changes, field, words):
    prog = programs.parse(dict(POINT, **changes))
    with pytest.raises(programs.ProgramError) as e:
        prog.check_limits(LIMITS)
    assert e.value.field == field
    assert words in str(e.value)


def test_nappage_cadence_limit():
    prog = programs.load(PROGRAMS / "nappage.toml")
    with pytest.raises(programs.ProgramError, match="cadence: 13 Hz is above the limit of 12 Hz"):
        programs.parse({**_toml(prog), "cadence": "13 Hz"}).check_limits(LIMITS)


def _toml(prog):
    return {"name": prog.name, "technique": "nappage", "drug": prog.drug, "syringe": prog.syringe_name,
            "needle": {"gauge": prog.needle_gauge, "length": f"{prog.needle_length_um} um"},
            "volume_per_shot": f"{prog.volume_nl} nL", "depth": f"{prog.depth_um} um", "shots": prog.count,
            "cadence": f"{prog.cadence_mhz} mHz"}
