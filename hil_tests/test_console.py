"""The clinician console end to end: the real page in headless Chromium, the real server, the
real firmware on the simulated board, a virtual clinician on the trigger.

Screenshots of each step go to hil_tests/artifacts/console/ (kept by CI as test artefacts).
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest
from playwright.sync_api import expect

from mesoinject import program as programs
from mesoinject.client import Device
from mesoinject.records import RecordStore
from mesoprotocol import spec
from tools import browser

HALF_DIGIT_UL = 0.05 + 1e-9  # the screen shows 0.1 uL: a total rounds by half of that (x.x5 either way)

pytestmark = pytest.mark.sim_only  # a virtual operator pulls the simulated board's trigger; faults are injected


SHOTS = pathlib.Path(__file__).parent / "artifacts" / "console"
TIMEOUT_MS = 30000


TWO_ZONES = """# a short two-zone plan for the console's end-to-end test
name = "Two zones"
drug = "lidocaine 1%"
syringe = "BD 1 mL"
needle = { gauge = 30, length = "4 mm" }
[[steps]]
zone = "forehead"
technique = "point-by-point"
volume_per_point = "20 uL"
points = 2
depth = "2 mm"
[[steps]]
zone = "cheeks"
technique = "point-by-point"
volume_per_point = "30 uL"
points = 2
depth = "3 mm"
"""


@pytest.fixture(scope="module")
def console(rig, tmp_path_factory):
    """The console's server on a simulated board, and a virtual operator that works the trigger. Its library:
    the shipped examples and plans, and a short two-zone plan."""
    if rig.sim is None:
        pytest.skip("needs the simulated board: a virtual operator pulls its trigger and faults are injected")
    import shutil

    from mesoinject.console import Console, ConsoleServer
    from mesosim import VirtualOperator

    library = tmp_path_factory.mktemp("library")
    shutil.copytree(programs.EXAMPLES, library, dirs_exist_ok=True)
    (library / "plans" / "two-zones.toml").write_text(TWO_ZONES)
    store = RecordStore(tmp_path_factory.mktemp("console") / "records.db")
    ui = Console(lambda: Device.open(rig.url), store, library).start()
    server = ConsoleServer(ui).start()
    with VirtualOperator(rig.sim, gap_s=0.05):
        yield server
    server.stop()
    ui.stop()
    store.close()


@pytest.fixture(scope="module")
def chromium():
    if not browser.available():
        pytest.skip(f"no Chromium at {browser.CHROMIUM}: install Debian's `chromium` package (.ci/run does)")
    with browser.launch_chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def signed_in(console, chromium):
    """The browser signs in once per console (the launch secret buys one sign-in): its cookies."""
    context = chromium.new_context()
    page = context.new_page()
    page.goto(console.url)
    page.wait_for_selector("body[data-phase]")
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture
def page(console, chromium, signed_in, request):
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, storage_state=signed_in)
    page = context.new_page()
    problems = []  # script errors and CSP violations fail the test
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(console.origin + "/")
    browser.to_setup(page)  # the test before may have left its session's summary
    yield page
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{request.node.name}-end.png", full_page=True)
    context.close()
    assert not problems


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def wait_phase(page, phase, timeout=TIMEOUT_MS):
    page.wait_for_selector(f"body[data-phase='{phase}']", timeout=timeout)


def two_done(page) -> None:
    """Wait until at least two points are done (a locator: the page's CSP forbids evaluated predicates)."""
    expect(page.locator("#done")).not_to_have_text(re.compile(r"^[01]$"), timeout=TIMEOUT_MS)


def number(page, selector) -> float:
    return float(page.text_content(selector))


def deliveries(console, session_id):
    return [d for d in console.console.call(console.console.store.deliveries, session_id) if d["kind"] != "prime"]


def short_screen(page) -> None:
    """A 1366x768 laptop: what must be in view is, without scrolling."""
    page.set_viewport_size({"width": 1366, "height": 768})


def test_a_fresh_console_names_the_routine_power_on_and_takes_one_click(console, page):
    # first in the module: the board has just been switched on and no session has acknowledged its RESET
    short_screen(page)
    panel = page.locator("#fault-panel")
    expect(panel).to_be_visible()
    shot(page, "0-power-on")
    expect(page.locator("#fault-heading")).to_contain_text("RESET")
    assert "routine" in panel.text_content().lower()
    assert "device log" not in panel.text_content()
    assert "stop" not in (panel.get_attribute("class") or "").split()  # no hazard stripes for a routine power-on
    expect(page.locator("#start")).to_be_in_viewport()
    page.click("#clear-fault")  # one click
    page.wait_for_selector("body[data-device-state='IDLE']")
    expect(panel).to_be_hidden()


def test_a_paused_point_makes_the_session_complete_with_a_partial_point(console, page, sim):
    browser.start_program(page, "point-by-point.toml", 3, 50)
    sim.wait(lambda: sim.led == spec.LED_DELIVERING, 10, "a point under way")
    page.keyboard.press("p")  # mid-dose: that point stays partial
    page.wait_for_selector("body[data-device-state='PAUSED']")
    page.keyboard.press("r")
    wait_phase(page, "finished")
    shot(page, "8-partial")
    session = console.console.last["session"]["id"]
    partial = sum(1 for d in deliveries(console, session) if d["partial"])
    assert partial >= 1
    outcome = page.text_content("#outcome")
    assert "every planned dose" not in outcome
    assert re.search(rf"complete with {partial} partial points?", outcome, re.I), outcome
    stored = console.console.call(console.console.store.session, session)
    assert stored["outcome"] == "complete" and stored["outcome_text"] in outcome.lower()


def test_after_an_alarm_the_remaining_points_are_given_in_the_same_session(console, page, sim):
    short_screen(page)
    browser.start_program(page, "point-by-point.toml", 6, 30)
    session = console.console.last["session"]["id"]
    tag = console.console.call(console.console.store.session, session)["device_session"]
    two_done(page)
    sim.wait(lambda: sim.led == spec.LED_DELIVERING, 10, "the third point")
    sim.occlude(1e6)
    try:
        page.wait_for_selector("#alarm", state="visible", timeout=TIMEOUT_MS)
        expect(page.locator("#alarm-heading")).to_be_in_viewport()
        expect(page.locator("#alarm-ack")).to_be_in_viewport()
        assert not re.search(r"\b0 kPa", page.text_content("#alarm-what")), page.text_content("#alarm-what")
        wait_phase(page, "finished")
        shot(page, "9-occlusion-1366x768")
        page.click("#alarm-ack")
    finally:
        sim.occlude(1.0)  # the needle replaced
    outcome = page.text_content("#outcome")
    assert "Stopped on OCCLUSION" in outcome, outcome
    stored = console.console.call(console.console.store.session, session)
    assert stored["outcome"] == "fault" and stored["outcome_text"] == "stopped on OCCLUSION"
    given = {d["point"] for d in deliveries(console, session)}
    left = 6 - len(given)
    expect(page.locator("#remaining-text")).to_contain_text(f"{left} points of this session left")
    page.click("#finished-clear-fault")
    page.wait_for_selector("body[data-device-state='IDLE']")
    expect(page.locator("#give-remaining")).to_have_text(f"Give the remaining {left} points")
    page.click("#give-remaining")
    page.wait_for_selector("body[data-phase='configured'], body[data-phase='primed']")
    if page.get_attribute("body", "data-phase") == "configured":
        page.click("#prime")
        page.wait_for_selector("body[data-phase='primed']")
    page.click("#arm")
    wait_phase(page, "finished")
    shot(page, "10-remaining-given")
    assert console.console.last["session"]["id"] == session  # the same session, the same device tag
    records = deliveries(console, session)
    assert {d["device_session"] for d in records} == {tag}
    assert len([d for d in records if not d["partial"]]) == 6 - sum(1 for d in records if d["partial"])
    assert page.text_content("#done") == "6"
    assert page.text_content("#outcome").lower().startswith("✔ complete")
    assert console.console.call(console.console.store.session, session)["outcome"] == "complete"


def test_a_whole_session_from_the_form_to_the_report(console, page):
    browser.start_program(page, "point-by-point.toml", 3, 30)
    shot(page, "1-running")
    # the records are readable mid-session (own connection: the device's heartbeat never waits on a read)
    listed = page.request.get(console.origin + "/api/sessions").json()
    assert listed[0]["id"] == console.console.last["session"]["id"] and listed[0]["outcome"] is None
    wait_phase(page, "finished")
    assert page.text_content("#done") == "3" and page.text_content("#planned") == "3"
    assert "complete" in page.text_content("#outcome").lower()
    snapshot = console.console.last
    records = deliveries(console, snapshot["session"]["id"])
    assert len(records) == 3
    # what the screen says is what the record holds
    assert number(page, "#delivered-ul") == pytest.approx(sum(d["delivered_nl"] for d in records) / 1000, abs=HALF_DIGIT_UL)
    assert {d["patient_ref"] for d in records} == {"P-0042"} and {d["drug_lot"] for d in records} == {"L2611"}

    page.fill("#note-text", "slight erythema at point 2, resolved in 10 min")
    page.check("#note-adverse")
    page.click("#note-submit")
    page.wait_for_selector("#notes-status:has-text('erythema')")
    notes = console.console.call(console.console.store.notes, snapshot["session"]["id"])
    assert [(n["kind"], n["author"]) for n in notes] == [("adverse-event", "Dr Test")]
    shot(page, "2-finished")

    with page.context.expect_page() as report_page:
        page.click("#report-link")
    report = report_page.value
    report.wait_for_load_state()
    assert "<svg" in report.content() and "P-0042" in report.content()
    report.screenshot(path=SHOTS / "3-report.png", full_page=True)
    with page.expect_download() as download:
        page.click("#export-fhir")
    fhir = json.loads(pathlib.Path(download.value.path()).read_text())
    assert fhir["resourceType"] == "MedicationAdministration"

    page.click("#sessions-button")
    page.wait_for_selector("#sessions :text('P-0042')")
    shot(page, "4-sessions")
    page.click("#sessions-close")
    page.click("#new-session")
    wait_phase(page, "setup")


@pytest.mark.req("SR-080")
def test_an_occlusion_interrupts_the_screen_and_says_what_to_do(console, page, sim):
    browser.start_program(page, "point-by-point.toml", 6, 30)
    two_done(page)
    sim.wait(lambda: sim.led == spec.LED_DELIVERING, 10, "the third point")
    sim.occlude(1e6)
    try:
        page.wait_for_selector("#alarm", state="visible", timeout=TIMEOUT_MS)
        assert page.get_attribute("#alarm", "role") == "alertdialog"
        assert "OCCLUSION" in page.text_content("#alarm-name")  # in words, not colour alone
        assert "blocked" in page.text_content("#alarm-what")
        assert "replace the needle" in page.text_content("#alarm-todo")
        wait_phase(page, "finished")
        assert re.search(r"\d of 6 points", page.text_content("#alarm-delivered"))
        shot(page, "5-occlusion-alarm")
        assert "fault" in page.text_content("#outcome").lower()
        page.click("#alarm-ack")
        page.wait_for_selector("#alarm", state="hidden")
    finally:
        sim.occlude(1.0)
    records = deliveries(console, console.console.last["session"]["id"])
    assert len(records) >= 3 and any(d["partial"] for d in records)  # the stopped point is recorded

    page.click("#new-session")
    wait_phase(page, "setup")
    page.wait_for_selector("body[data-device-state='FAULT']")
    page.click("#clear-fault")
    page.wait_for_selector("body[data-device-state='IDLE']")


@pytest.mark.req("SR-084")
def test_pause_resume_and_abort_from_the_keyboard(console, page):
    browser.start_program(page, "point-by-point.toml", 40, 10)
    two_done(page)
    page.keyboard.press("Escape")  # pauses: the key people press to get out of something never aborts
    page.wait_for_selector("body[data-device-state='PAUSED']")
    shot(page, "6-paused")
    page.keyboard.press("r")
    page.wait_for_selector("body:not([data-device-state='PAUSED'])")

    # a page of another site in the same browser: the cookie goes along, even a stolen CSRF token;
    # the Origin gives it away and nothing happens
    token = page.get_attribute("meta[name='csrf-token']", "content")
    forged = page.request.post(console.origin + "/api/session/abort", data="{}", headers={
        "Origin": "http://evil.example", "Content-Type": "application/json", "X-CSRF-Token": token})
    assert forged.status == 403
    assert console.console.last["phase"] == "running"

    page.keyboard.press("a")
    wait_phase(page, "finished")
    assert "abort" in page.text_content("#outcome").lower()
    done = int(page.text_content("#done"))
    assert 2 <= done < 40
    records = deliveries(console, console.console.last["session"]["id"])
    # every point done is on the record (the paused one in two partial parts), nothing twice
    assert {d["point"] for d in records} >= set(range(done))
    assert len({d["record_id"] for d in records}) == len(records)
    assert number(page, "#delivered-ul") == pytest.approx(sum(d["delivered_nl"] for d in records) / 1000, abs=HALF_DIGIT_UL)


@pytest.mark.req("SR-084")
def test_values_out_of_range_cannot_be_submitted_and_say_why(page):
    page.select_option("#program", "point-by-point.toml")
    page.fill("#patient_ref", "P-0001")
    page.fill("#operator", "Dr Test")
    page.wait_for_selector("#start:enabled")
    message = expect(page.locator("#check-message"))
    page.fill("#depth", "9")
    message.to_contain_text("3.8 mm")
    expect(page.locator("#start")).to_be_disabled()
    page.fill("#depth", "3")
    page.fill("#volume", "80")
    message.to_contain_text("50 uL")
    expect(page.locator("#start")).to_be_disabled()
    page.fill("#volume", "30")
    page.wait_for_selector("#start:enabled")
    page.fill("#patient_ref", "Jane Doe")  # a name, not a pseudonym
    message.to_contain_text("pseudonymous")
    expect(page.locator("#start")).to_be_disabled()
    assert page.get_attribute("body", "data-phase") == "setup"


@pytest.mark.req("SR-052")
def test_a_lost_link_interrupts_the_screen_and_the_records_follow_on_reconnect(console, page, sim):
    entries = len(sim.penetrations)
    browser.start_program(page, "point-by-point.toml", 20, 10)
    two_done(page)
    session = console.console.last["session"]["id"]
    # mid-point means the needle in the skin: a point stopped before its needle went in is a record
    # (0 nL, partial) with no needle entry, and this test matches needle entries to records
    sim.wait(lambda: sim.led == spec.LED_DELIVERING and sim.truth().depth_um > 0, 10, "a point under way")
    sim.set_link("cut")  # the cable pulled mid-point: that point's DELIVERY cannot reach us
    try:
        page.wait_for_selector("#alarm", state="visible", timeout=TIMEOUT_MS)
        assert "LINK LOST" in page.text_content("#alarm-name")
        assert "reconnects by itself" in page.text_content("#alarm-todo")
        assert "(None)" not in page.text_content("#alarm-what")
        sim.wait(lambda: sim.led not in (spec.LED_READY, spec.LED_DELIVERING), 10, "the device stopping itself")
        shot(page, "7-link-lost")
    finally:
        sim.set_link("ok")
    page.wait_for_selector("body[data-device-state='FAULT']", timeout=TIMEOUT_MS)  # back, stopped on LINK_LOST
    assert "(None)" not in page.text_content("#alarm-what")  # reconnected: the reason of the loss, or none
    # every needle entry of the session is on the record: those after the cut came from the journal on reconnect.
    # A record is an entry's when its time (board ticks) is inside the needle's stay; the others are points the
    # loss stopped before their needle went in (the link's patience outlasting a point on a loaded machine):
    # 0 nL, partial
    records = deliveries(console, session)
    stays = [(p.t1_ms - (p.t1_us - p.t0_us) // 1000 - 2, p.t1_ms + 2) for p in sim.penetrations[entries:]]
    in_skin = [d for d in records if any(lo <= d["device_time_ms"] <= hi for lo, hi in stays)]
    said = ([(d["point"], d["kind"], d["flags"], d["device_time_ms"], d["delivered_nl"]) for d in records], stays)
    assert len(in_skin) == len(stays), said
    assert all(d["delivered_nl"] == 0 and d["flags"] & spec.FLAG_PARTIAL for d in records if d not in in_skin), said
    assert len({d["record_id"] for d in records}) == len(records)
    expect(page.locator("#delivered-ul")).to_have_text(f"{sum(d['delivered_nl'] for d in records) / 1000:.1f}")
    alarms = console.console.call(console.console.store.alarms, session)
    assert [a["code"] for a in alarms] == ["LINK_LOST"]  # why it stopped, on the session's record
    page.click("#alarm-ack")
    assert "interrupted" in page.text_content("#outcome").lower()
    page.click("#new-session")
    page.click("#clear-fault")
    page.wait_for_selector("body[data-device-state='IDLE']")


@pytest.mark.req("SR-149")
def test_the_history_shows_one_patients_sessions_and_totals_per_drug(console, page):
    import dataclasses
    import types

    store = console.console.store
    ident = types.SimpleNamespace(serial="HIST-1", board="sim", firmware="0")
    prog = programs.load(programs.EXAMPLES / "point-by-point.toml")

    def add(ref, drug, tag, nl):
        sid = store.begin_session(ident, dataclasses.replace(prog, drug=drug), patient_ref=ref, operator="Dr H",
                                  device_session=tag)
        store.add_delivery(sid, ident.serial, dict(record_id=tag, session=tag, point=0, kind=spec.KIND_POINT, flags=0,
                                                   programmed_nl=nl, delivered_nl=nl, depth_um=3000, time_ms=1))
        store.end_session(sid, "complete", "complete")

    console.console.call(add, "P-HIST", "lidocaine 1%", 901, 30000)
    console.console.call(add, "P-HIST", "vitamin complex", 902, 20000)
    console.console.call(add, "P-OTHER", "lidocaine 1%", 903, 40000)
    page.click("#sessions-button")
    page.fill("#history-patient", "P-HIST")
    page.click("#history-form button[type=submit]")
    expect(page.locator("#history-drugs")).to_contain_text("Patient P-HIST: totals per drug")
    expect(page.locator("#history-drugs")).to_contain_text("lidocaine 1%: 30.0 µL in 1 session")
    expect(page.locator("#history-drugs")).to_contain_text("vitamin complex: 20.0 µL in 1 session")
    rows = page.locator("#sessions tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#sessions")).not_to_contain_text("P-OTHER")
    shot(page, "history-by-patient")
    page.fill("#history-patient", "Jane Doe")  # a name where a pseudonym belongs: refused, saying why
    page.click("#history-form button[type=submit]")
    expect(page.locator("#sessions")).to_contain_text("never the patient's name")
    page.click("#history-all")
    expect(page.locator("#sessions")).to_contain_text("P-OTHER")
    page.click("#sessions-close")


@pytest.mark.req("SR-147", "SR-151", "SR-152")
def test_a_two_zone_plan_shows_the_map_and_per_zone_totals_equal_to_the_records(console, page):
    short_screen(page)  # a 1366x768 laptop throughout
    page.select_option("#plan", "two-zones.toml")
    expect(page.locator("#program-fields")).to_be_hidden()
    expect(page.locator("#plan-steps li")).to_have_count(2)
    page.fill("#patient_ref", "P-0777")
    page.fill("#operator", "Dr Test")
    page.fill("#lot", "L77")
    expect(page.locator("#check-summary")).to_contain_text("Two zones: 2 steps")
    expect(page.locator("#start")).to_be_in_viewport()
    shot(page, "plan-1-setup")
    page.click("#start")
    page.wait_for_selector("body[data-phase='configured'], body[data-phase='primed']")
    # the map, with the first step's zone highlighted, before anything moves
    expect(page.locator("#zone-heading")).to_have_text("Step 1 of 2: Forehead")
    expect(page.locator("#zone-svg .zone.current")).to_have_attribute("data-zone", "forehead")
    if page.get_attribute("body", "data-phase") == "configured":
        page.click("#prime")
        wait_phase(page, "primed")
    page.click("#arm")
    wait_phase(page, "step-done")
    expect(page.locator("#step-done-text")).to_contain_text("Step 1 done: Forehead")
    expect(page.locator("#next-step-text")).to_contain_text("Next: step 2, Cheeks")
    # a tap on the forehead: where the last point went (optional, one tap), kept with the session
    page.click("#zone-svg .zone[data-zone='forehead']")
    expect(page.locator("#zone-svg .marks circle")).to_have_count(1)
    shot(page, "plan-2-step-done")
    page.click("#next-step")
    page.wait_for_selector("body[data-phase='primed']")  # still primed: no second needle-up prime
    expect(page.locator("#zone-svg .zone.current")).to_have_attribute("data-zone", "cheeks")
    expect(page.locator("#zone-svg .zone.given[data-zone='forehead']")).to_have_count(1)
    page.click("#arm")
    wait_phase(page, "running")
    expect(page.locator("#start")).to_be_hidden()
    expect(page.locator("#pause")).to_be_in_viewport()  # Pause in reach with the map on screen
    shot(page, "plan-3-running")
    page.screenshot(path=SHOTS / "plan-3-running-1366x768.png")  # what the clinician sees, unscrolled
    expect(page.locator("#zone-svg")).to_be_in_viewport()
    wait_phase(page, "finished")
    shot(page, "plan-4-finished")
    session_id = console.console.last["session"]["id"]
    stored = {row["zone"]: row for row in console.console.call(console.console.store.zone_totals, session_id)}
    assert set(stored) == {"forehead", "cheeks"}
    for zone in ("forehead", "cheeks"):  # what the screen says each zone got is what the records hold
        row = page.locator(f"#zone-totals tr[data-zone='{zone}']")
        expect(row.locator("td.zone-ul")).to_have_text(f"{stored[zone]['delivered_nl'] / 1000:.3f}")
        expect(row.locator("td").nth(2)).to_have_text(f"{stored[zone]['records']} / 2")
    marks = console.console.call(console.console.store.marks, session_id)
    assert [(m["zone"], m["plan_step"], m["point"]) for m in marks] == [("forehead", 1, 2)]
    # the plan's cap was its session's: the device's own max_session_nl setting never changed
    assert console.console.call(lambda: console.console.device.hello().limits["max_session_nl"]) == \
        spec.SETTINGS_TABLE[spec.SET_SESSION][2]

    # the report, in French: the per-zone table and the map carry the same totals
    report = page.context.new_page()
    report.set_viewport_size({"width": 1366, "height": 768})
    report.goto(f"{console.origin}/sessions/{session_id}/report?lang=fr")
    expect(report.locator("h1")).to_have_text("Compte rendu de séance de mésothérapie")
    for zone, name in (("forehead", "Front"), ("cheeks", "Joues")):
        total = f"{stored[zone]['delivered_nl'] / 1000:.3f}"
        expect(report.locator(f"#per-zone tr[data-zone='{zone}'] td").last).to_have_text(total)
        expect(report.locator(f".map text.total[data-zone='{zone}']")).to_have_text(f"{name}: {total} µL")
    expect(report.locator("body")).to_contain_text("Signature du praticien")
    expect(report.locator(".map .marks circle")).to_have_count(1)  # the tapped point, on the report's map
    report.screenshot(path=SHOTS / "plan-5-report-fr.png", full_page=True)
    report.close()
    page.click("#new-session")
    wait_phase(page, "setup")


@pytest.mark.req("SR-207")  # last in the module: the watchdog restarts the board the other tests share
def test_a_restart_while_the_link_is_down_is_on_the_sessions_record_once_with_its_cause(console, page, sim):
    # the console learns of the restart from HELLO when it reconnects: the RESET event went out while the cable was
    # pulled. Before: it stored the device's alarm with detail 0, a watchdog reset on the record as POWER_ON
    # (seen: [('RESET', 0)])
    browser.start_program(page, "point-by-point.toml", 20, 10)
    two_done(page)
    session = console.console.last["session"]["id"]
    boots = sim.boots
    sim.set_link("cut")
    try:
        sim.hang()  # the firmware stops; its watchdog restarts the board while no host hears it
        sim.wait(lambda: sim.boots > boots, 30, "watchdog reset")
        page.wait_for_selector("#alarm", state="visible", timeout=TIMEOUT_MS)
        assert "LINK LOST" in page.text_content("#alarm-name")
    finally:
        sim.set_link("ok")
    page.wait_for_selector("body[data-device-state='FAULT']", timeout=TIMEOUT_MS)  # back, holding its RESET
    store = console.console.store

    def resets():  # on the worker: the store's connection is its own
        return console.console.call(lambda: [tuple(r) for r in store.db.execute(
            "SELECT session_id, detail, boot_count FROM alarms WHERE code = 'RESET' ORDER BY id")])

    (reset,) = [r for r in resets() if r[0] == session]
    assert reset[1] == spec.RESET_WATCHDOG
    page.click("#alarm-ack")
    page.click("#new-session")
    page.click("#clear-fault")  # acknowledges the RESET: stored already, not again
    page.wait_for_selector("body[data-device-state='IDLE']")
    assert [r for r in resets() if r[2] == reset[2]] == [reset]
