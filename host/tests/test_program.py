"""Dose programs: units, keys and limits are checked before anything is sent."""


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@pytest.mark.req("SR-076")
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


@pytest.mark.req("SR-017")
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


@pytest.mark.req("SR-017")
def test_nappage_cadence_limit():
    prog = programs.load(PROGRAMS / "nappage.toml")
    with pytest.raises(programs.ProgramError, match="cadence: 13 Hz is above the limit of 12 Hz"):
        programs.parse({**_toml(prog), "cadence": "13 Hz"}).check_limits(LIMITS)


def _toml(prog):
    return {"name": prog.name, "technique": "nappage", "drug": prog.drug, "syringe": prog.syringe_name,
            "needle": {"gauge": prog.needle_gauge, "length": f"{prog.needle_length_um} um"},
            "volume_per_shot": f"{prog.volume_nl} nL", "depth": f"{prog.depth_um} um", "shots": prog.count,
            "cadence": f"{prog.cadence_mhz} mHz"}


# ---- quantities: a decimal number and a unit name, never an expression ----------------------------------

@pytest.mark.parametrize("text, expected", [
    ("0.03 mL", 30000), ("30 uL", 30000), ("30 \u00b5L", 30000), ("30 \u03bcL", 30000), ("30 microliter", 30000),
    ("30 microliters", 30000), ("30uL", 30000), (" 30 uL ", 30000), (".03 mL", 30000), ("3e1 uL", 30000),
])
def test_the_ways_programs_write_a_volume_still_work(text, expected):
    assert programs.parse(dict(POINT, volume_per_point=text)).volume_nl == expected


def test_the_ways_programs_write_other_quantities_still_work():
    nappage = programs.load(PROGRAMS / "nappage.toml")
    prog = programs.parse({**_toml(nappage), "cadence": "6 Hz", "flow_rate": "50 uL/s", "depth": "1.5 mm",
                           "needle": {"gauge": 32, "length": "4 mm"}})
    assert (prog.cadence_mhz, prog.flow_nl_s, prog.depth_um, prog.needle_length_um, prog.needle_gauge, prog.needles) == \
        (6000, 50000, 1500, 4000, 32, 1)
    assert prog.head_name == "32G 4 mm"  # a single needle is the single-needle head of its gauge and length
    assert programs.quantity_of("1.0 g/mL", "density", "g/mL", "1.0 g/mL", integer=False) == 1.0


@pytest.mark.req("SR-076")
@pytest.mark.parametrize("field, text, words", [
    ("volume_per_point", "2**3 uL", "decimal number and a unit name"),  # pint would evaluate it: 8 uL
    ("volume_per_point", "3*10 uL", "decimal number and a unit name"),
    ("volume_per_point", "(30) uL", "decimal number and a unit name"),
    ("volume_per_point", "1/0 uL", "decimal number and a unit name"),  # ZeroDivisionError in pint
    ("volume_per_point", "nan uL", "decimal number and a unit name"),
    ("volume_per_point", "inf uL", "decimal number and a unit name"),
    ("volume_per_point", "30 nan", "'nan' is not a unit"),
    ("volume_per_point", "\u0663\u0660 uL", "decimal number and a unit name"),  # Arabic-Indic digits
    ("depth", "1e400 mm", "out of range"),
    ("depth", "3 mm" + " " * 100, "is not a quantity"),
    ("depth", "[/] mm", "decimal number and a unit name"),
    ("depth", 10 * [[1]], "written as a string"),
    ("flow_rate", "50 uL/s**9**9", "decimal number and a unit name"),
])
def test_an_expression_or_a_non_number_is_refused_naming_the_field(field, text, words):
    with pytest.raises(programs.ProgramError) as e:
        programs.parse(dict(POINT, **{field: text}))
    assert e.value.field == field
    assert words in str(e.value) and "e.g." in str(e.value)  # and an example of what to write


@pytest.mark.req("SR-076")
@pytest.mark.parametrize("field, value", [("points", 10**400), ("needles", 2**64), ("description", ["x"])],
                         ids=["points-400-digits", "needles-2**64", "description-array"])
def test_a_count_far_out_of_range_or_a_wrong_type_is_refused_at_parse(field, value):
    with pytest.raises(programs.ProgramError) as e:
        programs.parse(dict(POINT, **{field: value}))
    assert e.value.field == field and len(str(e.value)) < 200  # never a page of digits


@pytest.mark.req("SR-076")
@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="0123456789.eE+-*/^() uLmnaifHzs\u00b5", max_size=24))
def test_any_text_is_a_wire_value_or_refused_naming_the_field(text):
    try:
        value = programs.parse(dict(POINT, volume_per_point=text)).volume_nl
    except programs.ProgramError as e:
        assert e.field == "volume_per_point"
    else:
        assert isinstance(value, int) and value >= 0


@pytest.mark.req("SR-076")
@settings(max_examples=200, deadline=None)
@given(a=st.integers(0, 10**6), op=st.sampled_from(["**", "*", "/", "+", "-", "^", " ** ", " * "]),
       b=st.integers(0, 99), unit=st.sampled_from(["uL", "mL", "nL"]))
def test_arithmetic_is_never_evaluated(a, op, b, unit):
    with pytest.raises(programs.ProgramError, match="decimal number and a unit name"):
        programs.parse(dict(POINT, volume_per_point=f"{a}{op}{b} {unit}"))


@settings(max_examples=200, deadline=None)
@given(nl=st.integers(0, 10**9), unit=st.sampled_from(["uL", "\u00b5L", "\u03bcL", "microliter", "microliters"]),
       space=st.sampled_from(["", " ", "  "]))
def test_a_decimal_in_microlitres_is_exactly_its_nanolitres(nl, unit, space):
    text = f"{nl // 1000}.{nl % 1000:03d}{space}{unit}"
    assert programs.parse(dict(POINT, volume_per_point=text)).volume_nl == nl


# ---- program files: anything that is not a program is refused as "file", with what to do --------------------

@pytest.mark.req("SR-076")
@pytest.mark.parametrize("content, words", [
    (b'name = "x"\ndrug = "\xff\xfe"\n', "not UTF-8 text (byte 0xff at offset 19); save it as UTF-8"),
    (b"a = " + b"[" * 3000 + b"]" * 3000, "nests arrays or tables too deeply"),
    (b"points = " + b"9" * 5000, "is not a program"),
    (b"# " + b"x" * 70000, "larger than 64 KiB"),
    (b"name = ", "is not valid TOML"),
])
def test_a_file_that_is_not_a_program_is_refused_as_file(tmp_path, content, words):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(programs.ProgramError) as e:
        programs.load(path)
    assert e.value.field == "file" and words in str(e.value)


def test_a_directory_or_a_missing_file_says_what_to_give(tmp_path):
    with pytest.raises(programs.ProgramError, match="is a directory; give one program"):
        programs.load(tmp_path)
    with pytest.raises(programs.ProgramError, match="does not exist; give the path of a program"):
        programs.load(tmp_path / "nope.toml")
