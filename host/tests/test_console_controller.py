"""The console's worker: what it does with errors, and the set-up form, without a device."""

from __future__ import annotations

import pytest

import pathlib
import re

from mesoinject import alarms, units
from mesoinject import program as programs
from mesoinject.console import Console
from mesoinject.console import forms
from mesoinject.console.controller import ActionRefused
from mesoinject.link import LinkError
from mesoinject.program import CEILINGS, ProgramError
from mesoinject.records import RecordStore
from mesoprotocol import spec

FORM = {"patient_ref": "P-7", "operator": "Dr T", "technique": "nappage", "drug": "x", "syringe": "BD 1 mL",
        "needle_gauge": "32", "needle_length": "4 mm", "volume": "2 uL", "depth": "1.5 mm", "count": "40",
        "cadence": "6 Hz", "flow_rate": "50 uL/s", "prime_volume": "10 uL"}


def no_device():
    raise LinkError("no device in this test")


@pytest.fixture
def console(tmp_path):
    store = RecordStore(tmp_path / "records.db")
    ui = Console(no_device, store, tmp_path).start()
    yield ui
    ui.stop()
    store.close()


def test_an_action_that_fails_reports_to_its_caller_and_the_worker_goes_on(console):
    with pytest.raises(ZeroDivisionError):
        console.call(lambda: 1 / 0)
    assert "division" in console.last["error"]  # every open page's banner, published before the reply
    assert console.call(lambda: 42) == 42
    assert console.last["error"] is None  # the next action clears it


def test_a_call_after_the_worker_stopped_is_refused_not_left_hanging(console):
    console.stop()
    with pytest.raises(ActionRefused, match="start `mesoinject ui` again"):
        console.call(lambda: 42)


def test_actions_out_of_phase_say_what_to_do(console):
    with pytest.raises(ActionRefused, match="cannot arm now: the session is setup"):
        console.call(console.arm)
    with pytest.raises(ActionRefused, match="no session to add a note to"):
        console.call(console.note, {"text": "x"})


def test_the_form_becomes_the_same_program_as_a_file():
    program = forms.check(FORM, CEILINGS)
    assert (program.technique, program.volume_nl, program.count, program.cadence_mhz) == ("nappage", 2000, 40, 6000)


@pytest.mark.parametrize("change, field", [
    ({"patient_ref": "Jane Doe"}, "patient_ref"),
    ({"operator": " "}, "operator"),
    ({"count": ""}, "shots"),
    ({"volume": "2"}, "volume_per_shot"),  # a bare number: no unit
    ({"prime_volume": "0.4 uL"}, "prime_volume"),  # below the device's least prime (MIN_VOLUME_NL)
    ({"cadence": "40 Hz"}, "cadence"),
])
def test_a_bad_form_names_its_field(change, field):
    form = {**FORM, **change}
    with pytest.raises(ProgramError) as refused:
        forms.who(form)
        forms.check(form, CEILINGS)
    assert refused.value.field == field


def test_the_library_lists_a_broken_program_with_its_error(tmp_path):
    (tmp_path / "good.toml").write_text('name = "g"\ntechnique = "test-dose"\ndrug = "d"\nsyringe = "BD 1 mL"\n'
                                       'needle = { gauge = 30, length = "4 mm" }\nvolume_per_point = "10 uL"\n'
                                       'depth = "1 mm"\npoints = 1\n')
    (tmp_path / "bad.toml").write_text('technique = "nappage"\n')
    entries = {e["file"]: e for e in forms.library(tmp_path)}
    assert entries["good.toml"]["form"]["volume"] == 10 and entries["good.toml"]["error"] is None  # in uL
    assert entries["bad.toml"]["form"] is None and "missing" in entries["bad.toml"]["error"]


@pytest.mark.parametrize("code", sorted(set(alarms.ALARMS) | {c for c, name in enumerate(spec.ALARM_NAMES) if name}))
def test_every_alarm_says_what_happened_and_what_to_do_in_the_consoles_words(console, code):
    console.alarm = (code, 1234)
    view = console._alarm_view()
    assert view["name"] == spec.ALARM_NAMES[code]
    assert view["what"] and view["todo"] and view["delivered"]
    assert "`" not in view["what"] + view["todo"]  # no CLI command to type at a couch


def test_the_library_lists_files_that_are_not_programs_instead_of_failing_to_start(tmp_path):
    (tmp_path / "latin1.toml").write_bytes(b'name = "caf\xe9"\n')
    (tmp_path / "deep.toml").write_bytes(b"a = " + b"[" * 5000 + b"]" * 5000)
    (tmp_path / "folder.toml").mkdir()
    (tmp_path / "sum.toml").write_text('name = "s"\ntechnique = "test-dose"\ndrug = "d"\nsyringe = "BD 1 mL"\n'
                                       'needle = { gauge = 30, length = "4 mm" }\nvolume_per_point = "5+5 uL"\n'
                                       'depth = "1 mm"\npoints = 1\n')
    entries = {e["file"]: e for e in forms.library(tmp_path)}
    assert "save it as UTF-8" in entries["latin1.toml"]["error"]
    assert "too deeply" in entries["deep.toml"]["error"]
    assert "is a directory" in entries["folder.toml"]["error"]
    assert "volume_per_point" in entries["sum.toml"]["error"]
    assert all(e["form"] is None for e in entries.values())


@pytest.mark.parametrize("volume", ['"0.03 mL"', '"30 microliter"', '"30 uL"', '"30000 nL"'])
def test_the_library_form_shows_a_volume_in_any_unit_in_the_fields_unit(tmp_path, volume):
    (tmp_path / "p.toml").write_text('name = "p"\ntechnique = "point-by-point"\ndrug = "d"\nsyringe = "BD 1 mL"\n'
                                     'needle = { gauge = 30, length = "0.4 cm" }\n'
                                     f'volume_per_point = {volume}\ndepth = "1500 um"\npoints = 3\n')
    (entry,) = forms.library(tmp_path)
    form = entry["form"]
    assert (form["volume"], form["depth"], form["needle_length"], form["cadence"]) == (30, 1.5, 4, None)
    # what the page posts back (each number with its field's unit) is the same program
    posted = {**form, **{k: f"{form[k]} {units.FORM[k][0]}" for k in units.FORM if form[k] is not None}}
    assert forms.to_program(posted) == programs.load(tmp_path / "p.toml")


def test_the_page_and_the_server_agree_on_each_fields_unit():
    static = pathlib.Path(forms.__file__).parent / "static"
    js = re.search(r"const QTY = (\{.*?\});", (static / "console.js").read_text()).group(1)
    page = dict(re.findall(r'(\w+): "([^"]+)"', js))
    assert page == {k: q[0] for k, q in units.FORM.items()}
    html = (static / "index.html").read_text()
    for key, (unit, _) in units.FORM.items():
        assert re.search(rf'id="{key}"[^>]*>(?:</input>)?<span class="unit">{re.escape(unit)}</span>', html, re.S), key
