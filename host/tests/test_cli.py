"""The CLI: exit codes and messages for bad input, and a whole run on the simulated board."""

import json
import os
import subprocess
import sys

import pytest
from mesoprotocol import spec

from test_program import PROGRAMS


WHO = ("--patient", "P-1", "--operator", "Dr Test", "--yes")  # run asks who; scripts answer the needle-up question


def cli(*args, env=None, stdin=None):
    return subprocess.run([sys.executable, "-m", "mesoinject.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, stdin=stdin)


@pytest.mark.req("SR-076")
def test_wrong_unit_exits_2_naming_the_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text((PROGRAMS / "point-by-point.toml").read_text().replace('"0.03 mL"', '"3 kg"'))
    r = cli("run", str(bad), "--sim", "--db", str(tmp_path / "r.db"), *WHO)
    assert r.returncode == 2
    assert "volume_per_point" in r.stderr and "'3 kg' is not a volume" in r.stderr


@pytest.mark.req("SR-017")
def test_out_of_range_program_exits_2_before_touching_a_device(tmp_path):
    bad = tmp_path / "deep.toml"
    bad.write_text((PROGRAMS / "point-by-point.toml").read_text().replace('depth = "3 mm"', 'depth = "3.95 mm"'))
    r = cli("run", str(bad), "--port", "/dev/does-not-exist", "--db", str(tmp_path / "r.db"), *WHO)
    assert r.returncode == 2
    assert "depth" in r.stderr


POINT_TOML = (PROGRAMS / "point-by-point.toml").read_bytes()
BAD_PROGRAMS = {  # name: (file content, or a directory / nothing; the field the error must name; what it says)
    "power tower": (POINT_TOML.replace(b'"0.03 mL"', b'"9**9**9 uL"'), "volume_per_point", "decimal number"),
    "23 s of pint": (POINT_TOML.replace(b'"0.03 mL"', b'"7**8**8 uL"'), "volume_per_point", "decimal number"),
    "nan": (POINT_TOML.replace(b'"0.03 mL"', b'"nan uL"'), "volume_per_point", "decimal number"),
    "inf": (POINT_TOML.replace(b'"0.03 mL"', b'"inf uL"'), "volume_per_point", "decimal number"),
    "1/0": (POINT_TOML.replace(b'"0.03 mL"', b'"1/0 uL"'), "volume_per_point", "decimal number"),
    "1e400": (POINT_TOML.replace(b'"3 mm"', b'"1e400 mm"'), "depth", "out of range"),
    "toml nan": (POINT_TOML.replace(b'"3 mm"', b"nan"), "depth", "no unit"),
    "markup": (POINT_TOML.replace(b'"0.03 mL"', b'"[/] mL"'), "volume_per_point", "decimal number"),
    "not utf-8": (POINT_TOML.replace(b"lidocaine", b"lido\xffcaine"), "file", "save it as UTF-8"),
    "deep": (POINT_TOML + b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", "file", "too deeply"),
    "huge count": (POINT_TOML.replace(b"points = 20", b"points = " + b"9" * 4000), "points", "far above"),
    "directory": ("dir", "file", "is a directory"),
    "missing": (None, "file", "does not exist"),
}


@pytest.mark.req("SR-076")
@pytest.mark.parametrize("name", BAD_PROGRAMS)
def test_every_bad_program_exits_2_naming_the_field_without_a_traceback(tmp_path, name):
    content, field, words = BAD_PROGRAMS[name]
    path = tmp_path / "bad.toml"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    # the timeout only guards against a hang (old code: minutes in pint); it is not a measured bound
    r = subprocess.run([sys.executable, "-m", "mesoinject.cli", "run", str(path), "--port", "/dev/does-not-exist",
                        "--db", str(tmp_path / "r.db"), *WHO], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr  # one line
    assert f"{field}: " in r.stderr and words in r.stderr, r.stderr
    assert "/dev/does-not-exist" not in r.stderr  # refused before any port is opened


@pytest.mark.req("SR-081")
def test_missing_port_lists_the_ports_that_exist(tmp_path):
    r = cli("info", "--port", "/dev/ttyNOPE9")
    assert r.returncode == 2
    assert "'/dev/ttyNOPE9' does not exist" in r.stderr and "Ports on this machine" in r.stderr


@pytest.mark.req("SR-081")
def test_missing_program_file(tmp_path):
    r = cli("run", str(tmp_path / "nope.toml"), "--sim", *WHO)
    assert r.returncode == 2 and "does not exist" in r.stderr


@pytest.mark.req("SR-081")
def test_records_without_a_database(tmp_path):
    r = cli("records", "list", "--db", str(tmp_path / "none.db"))
    assert r.returncode == 2 and "no records database" in r.stderr


def test_run_on_the_sim_records_every_point(tmp_path):
    db = tmp_path / "records.db"
    r = cli("run", str(PROGRAMS / "test-dose.toml"), "--sim", "--db", str(db), "--patient", "P-1",
            "--operator", "Dr Test", "--yes", env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert r.returncode == 0, r.stderr
    assert f"records: {db}" in r.stdout.replace("\n", "")
    rows = json.loads(cli("records", "export", "--db", str(db), "--format", "json").stdout)
    assert [row["kind"] for row in rows] == ["prime", "test-dose"]
    assert rows[1]["patient_ref"] == "P-1" and abs(rows[1]["delivered_nl"] - 10000) < 100


def test_sync_after_a_run_finds_nothing_left_and_the_lot_is_on_the_record(tmp_path):
    db = tmp_path / "records.db"
    env = {"XDG_DATA_HOME": str(tmp_path / "data")}  # the same persistent simulated board for both commands
    r = cli("run", str(PROGRAMS / "test-dose.toml"), "--sim", "--db", str(db), "--lot", "L2611", *WHO,
            env=env)
    assert r.returncode == 0, r.stderr
    r = cli("sync", "--sim", "--db", str(db), env=env)
    assert r.returncode == 0, r.stderr
    assert "0 new records stored" in r.stdout  # the run acknowledged everything it stored
    fhir = json.loads(cli("records", "export", "--db", str(db), "--format", "fhir", "--session", "1").stdout)
    assert "L2611" in json.dumps(fhir)


@pytest.mark.req("SR-207")
def test_calibrate_stores_the_restart_it_acknowledges(tmp_path):
    # the simulated board comes up as a board switched on does: FAULT on its boot's RESET. Before, calibrate
    # acknowledged it and stored nothing (it had no record store)
    import sqlite3

    db = tmp_path / "records.db"
    r = cli("calibrate", "--sim", "--shots", "3", "--db", str(db), env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(db) as con:
        resets = con.execute("SELECT session_id, detail, boot_count FROM alarms WHERE code = 'RESET'").fetchall()
    assert resets == [(None, 0, 1)]  # its first boot, powered on; no session was running through it
    assert f"restart stored: RESET (POWER_ON, boot 1) in {db}" in r.stdout  # and the operator is told so


def test_calibrate_on_a_database_it_cannot_write_acknowledges_nothing_and_says_what_to_do(read_only_file, tmp_path):
    r = cli("calibrate", "--sim", "--shots", "3", "--db", str(read_only_file),
            env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert r.returncode == 2
    assert "the device restarted, and its RESET is stored before it is acknowledged" in r.stderr, r.stderr
    assert "is read-only" in r.stderr and "Make it writable" in r.stderr  # what is wrong, what to do
    assert "not acknowledged and nothing was calibrated" in r.stderr and "calibrate again" in r.stderr
    assert "shot 1" not in r.stdout


def test_ui_serves_the_console_on_loopback_and_stops_cleanly_on_ctrl_c(tmp_path):
    import signal
    import urllib.error
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "mesoinject.cli", "ui", "--sim", "--no-browser",
                             "--db", str(tmp_path / "r.db"), "--programs", str(PROGRAMS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")})
    url = ""
    try:
        for line in proc.stdout:  # the URL is printed once the server listens
            if line.startswith("clinician console: "):
                url = line.split(": ", 1)[1].strip()
                break
        assert url.startswith("http://127.0.0.1:") and "?token=" in url
        with pytest.raises(urllib.error.HTTPError) as refused:  # the page without the secret
            urllib.request.urlopen(url.split("?")[0])
        assert refused.value.code == 403
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        opener.open(url)  # signs in: the cookie
        state = json.loads(opener.open(url.split("?")[0] + "api/state").read())
        assert state["device"]["serial"] == "SIM-0001" and state["phase"] == "setup"
        assert [p["file"] for p in state["programs"]] == ["multi-injector.toml", "nappage.toml", "point-by-point.toml",
                                                          "test-dose.toml"]
        assert "not in the console yet" in state["programs"][0]["error"]  # a head the form cannot hold: said, not lost
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "console stopped" in out


def ctrl_c_once_up(tmp_path, args, up_line):
    """(returncode, stdout, stderr) of the CLI sent SIGINT the moment it prints a line starting with up_line (it
    is still printing what follows)."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "mesoinject.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")})
    try:
        assert any(line.startswith(up_line) for line in proc.stdout)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_ui_stopped_by_ctrl_c_the_moment_it_is_up_still_stops_cleanly(tmp_path):
    # Ctrl-C before the CLI reached its wait raised KeyboardInterrupt past its clean-up: exit 1, the console's
    # threads left to the interpreter's exit (a CI run hung there), an armed device not paused
    code, out, err = ctrl_c_once_up(tmp_path, ["ui", "--sim", "--no-browser", "--db", str(tmp_path / "r.db"),
                                               "--programs", str(PROGRAMS)], "clinician console: ")
    assert code == 0, err
    assert "console stopped" in out


def test_sim_stopped_by_ctrl_c_while_it_starts_says_so_and_exits_cleanly(tmp_path):
    # as `ui` above (one Ctrl-C handler for both): a stop, not an interrupted run - exit 0, no "PAUSED" hint
    code, out, err = ctrl_c_once_up(tmp_path, ["sim"], "  serial port: ")
    assert code == 0, err
    assert out.rstrip().endswith("stopped") and "interrupted" not in err


def test_ui_without_a_program_library_says_what_to_pass(tmp_path):
    r = cli("ui", "--port", "socket://127.0.0.1:9", "--programs", str(tmp_path / "none"), "--no-browser")
    assert r.returncode == 2 and "--programs DIR" in r.stderr


def test_run_refuses_a_patient_name_where_a_pseudonym_belongs(tmp_path):
    r = cli("run", "test-dose", "--sim", "--db", str(tmp_path / "r.db"), "--patient", "Jane Doe",
            "--operator", "Dr Test", "--yes")
    assert r.returncode == 2 and "pseudonymous" in r.stderr and "--patient" in r.stderr
    assert not (tmp_path / "r.db").exists() or "Jane" not in (tmp_path / "r.db").read_bytes().decode(errors="replace")


def test_run_as_root_asks_who_treats(tmp_path):
    r = cli("run", "test-dose", "--sim", "--db", str(tmp_path / "r.db"), "--patient", "P-1", "--yes",
            env={"USER": "root", "LOGNAME": "root", "LNAME": "root", "USERNAME": "root"})
    assert r.returncode == 2 and "--operator" in r.stderr and "root" in r.stderr


def test_run_asks_for_the_needle_up_and_a_script_must_say_yes(tmp_path):
    r = cli("run", "test-dose", "--sim", "--db", str(tmp_path / "r.db"), "--patient", "P-1", "--operator", "Dr T",
            stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "needle up" in r.stderr and "--yes" in r.stderr


@pytest.mark.req("SR-177")
def test_run_says_how_it_ended_in_the_words_it_stores(tmp_path):
    import sqlite3

    db = tmp_path / "records.db"
    r = cli("run", "test-dose", "--sim", "--db", str(db), *WHO, env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert r.returncode == 0, r.stderr
    assert "prime: needle up confirmed by --yes" in r.stdout
    assert "session 1: complete - 1/1" in r.stdout
    assert "ALARM" not in r.stdout + r.stderr  # the fresh board's power-on RESET is routine, not an alarm of the run
    with sqlite3.connect(db) as store:
        assert store.execute("SELECT outcome, outcome_text, operator FROM sessions").fetchall() == [
            ("complete", "complete", "Dr Test")]


TWO_ZONE_PLAN = """
name = "Two test doses"
drug = "lidocaine 1%"
syringe = "BD 1 mL"
needle = { gauge = 30, length = "4 mm" }
[[steps]]
zone = "forehead"
technique = "test-dose"
volume_per_point = "10 uL"
points = 1
depth = "2 mm"
[[steps]]
zone = "lumbar"
technique = "test-dose"
volume_per_point = "20 uL"
points = 1
depth = "3 mm"
"""


@pytest.mark.req("SR-146")
@pytest.mark.parametrize("change,words", [
    (('zone = "lumbar"', 'zone = "elbow"'), "step 2: zone: 'elbow' is not a zone; known zones:"),
    (('"20 uL"', '"20 kg"'), "step 2 (lumbar): volume_per_point: '20 kg' is not a volume"),
    (('[[steps]]', 'total = "6 mL"\n[[steps]]'), "total: 6000 uL is above the device's session limit of 5000 uL"),
])
def test_a_bad_plan_exits_2_naming_step_and_field_before_touching_a_device(tmp_path, change, words):
    bad = tmp_path / "plan.toml"
    bad.write_text(TWO_ZONE_PLAN.replace(*change, 1))
    r = cli("run", str(bad), "--port", "/dev/does-not-exist", "--db", str(tmp_path / "r.db"), *WHO)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr


@pytest.mark.req("SR-147")
def test_run_a_plan_on_the_sim_asks_before_each_step_and_prints_per_zone_totals(tmp_path):
    import sqlite3

    plan, db = tmp_path / "plan.toml", tmp_path / "records.db"
    plan.write_text(TWO_ZONE_PLAN)
    r = cli("run", str(plan), "--sim", "--db", str(db), *WHO, env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.index("step 1, Forehead") < out.index("step 2, Lumbar region") < out.index("per zone")
    assert "session 1: complete - 2/2 doses" in out
    with sqlite3.connect(db) as store:
        rows = store.execute("SELECT plan_step, zone, SUM(delivered_nl) FROM deliveries WHERE kind != 'prime' "
                             "GROUP BY plan_step, zone ORDER BY plan_step").fetchall()
    assert [(step, zone) for step, zone, _ in rows] == [(1, "forehead"), (2, "lumbar")]
    names = {"forehead": "Forehead", "lumbar": "Lumbar region"}
    for step, zone, nl in rows:  # the printed per-zone total is the stored one
        line = out.split("per zone")[1].splitlines()[step]
        assert names[zone] in line and f"{nl / 1000:.3f} uL" in line


@pytest.mark.req("SR-149")
def test_records_list_by_patient_with_totals_per_drug(tmp_path):
    import types

    from mesoinject import program as programs
    from mesoinject.records import RecordStore
    from mesoprotocol import spec

    db = tmp_path / "r.db"
    ident = types.SimpleNamespace(serial="SIM-1", board="sim", firmware="0")
    prog = programs.load(PROGRAMS / "point-by-point.toml")
    with RecordStore(db) as store:
        for tag, ref in ((1, "P-1"), (2, "P-2")):
            sid = store.begin_session(ident, prog, patient_ref=ref, operator="dr", device_session=tag)
            store.add_delivery(sid, "SIM-1", dict(record_id=tag, session=tag, point=0, kind=spec.KIND_POINT, flags=0,
                                                  programmed_nl=30000, delivered_nl=29000 + tag, depth_um=3000,
                                                  time_ms=5))
    r = cli("records", "list", "--db", str(db), "--patient", "P-2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[0] == "2" and not any(line.split()[0] == "1" for line in lines)  # P-2's session only
    assert "patient P-2: totals per drug" in r.stdout and "lidocaine 1%: 29.002 uL in 1 session(s)" in r.stdout
    r = cli("records", "list", "--db", str(db), "--patient", "Jane Doe")
    assert r.returncode == 2 and "never the patient's name" in r.stderr


@pytest.mark.req("SR-179")
def test_a_mistyped_example_name_and_a_broken_plan_file_say_what_to_give(tmp_path):
    r = cli("run", "two-drug", "--port", "/dev/does-not-exist", "--db", str(tmp_path / "r.db"), *WHO)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "two-drug does not exist" in r.stderr and "plans: " in r.stderr and "two-drugs" in r.stderr, r.stderr
    assert "two-drugs" in cli("run", "--help").stdout  # every shipped example is named in the help
    bad = tmp_path / "plan.toml"
    bad.write_text(TWO_ZONE_PLAN.replace('zone = "lumbar"', 'zone = "lumbar'))
    r = cli("run", str(bad), "--port", "/dev/does-not-exist", "--db", str(tmp_path / "r.db"), *WHO)
    assert r.returncode == 2 and "is not valid TOML" in r.stderr and "(at line 13" in r.stderr
    assert "correct it there" in r.stderr and "[[steps]]" in r.stderr, r.stderr


@pytest.mark.req("SR-219")
def test_run_with_a_line_test_measures_the_syringe_then_runs(tmp_path):
    from mesoinject.records import RecordStore

    db = tmp_path / "r.db"
    r = cli("run", str(PROGRAMS / "test-dose.toml"), "--sim", "--line-test", "--db", str(db), *WHO,
            env={"XDG_DATA_HOME": str(tmp_path / "data")})
    assert r.returncode == 0, r.stdout + r.stderr
    for words in ("outlet is capped for the line test", "line test OK: BD 1 mL", "stopper compliance",
                  "the tip cap is off, the needle head fitted", "session 1: complete"):
        assert words in r.stdout, r.stdout
    assert r.stdout.index("line test OK") < r.stdout.index("prime: needle up")  # tested before the needle went on
    with RecordStore(db) as store:
        kinds = [d["kind"] for d in store.deliveries(1)]
    assert kinds.count("prime") == 1 and len(kinds) == 2, kinds
    # a plan may change syringes on the way: each is tested on its own, before
    r = cli("run", "two-drugs", "--line-test", "--port", "/dev/ttyNOPE9", "--db", str(db), *WHO)
    assert r.returncode == 2 and "line-test PROGRAM" in r.stderr and "ttyNOPE9" not in r.stderr, r.stderr


def test_line_figures_say_a_lag_not_measured_and_hide_what_a_failed_test_did_not_measure():
    from mesoinject.cli import _line_figures
    from mesoinject.client import LineResult

    ok = "\n".join(_line_figures(LineResult(spec.LINE_OK, 1, 0, 750, 200, 600, 60 * 16, 90)))
    assert "pressure sensor lag   not measured" in ok and "nominal" in ok and "0.750 nL/kPa" in ok, ok
    assert "20.0 %" in ok and "600 ms" in ok, ok
    opened = "\n".join(_line_figures(LineResult(spec.LINE_OPEN, 1, 0, 0, 0, 0, 0, 3)))
    assert "line test OPEN" in opened and "lag" not in opened and "compliance" not in opened, opened


def test_line_test_bad_input_exits_2_saying_what_was_wrong(tmp_path):
    r = cli("line-test", str(tmp_path / "nope.toml"), "--sim")
    assert r.returncode == 2 and "does not exist" in r.stderr, r.stderr
    r = cli("line-test", "point-by-point", "--port", "/dev/ttyNOPE9", "--yes")
    assert r.returncode == 2 and "'/dev/ttyNOPE9' does not exist" in r.stderr, r.stderr
    # on a real board the operator caps the outlet: a script that cannot be asked must say it did
    r = cli("line-test", "point-by-point", "--port", "/dev/ttyNOPE9", stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "cap the syringe's outlet" in r.stderr and "--yes" in r.stderr, r.stderr
    assert "ttyNOPE9" not in r.stderr  # asked before any port is opened


@pytest.mark.req("SR-217")
def test_line_test_on_the_sim_prints_its_figures_and_leaves_the_outlet_open(tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path / "data")}  # the same persistent simulated board for both commands
    r = cli("line-test", "point-by-point", "--sim", "--db", str(tmp_path / "r.db"), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "outlet is capped for the test" in r.stdout and "tip cap on first" in r.stdout  # and a real one?
    for words in ("line test OK: BD 1 mL", "pressure sensor lag", " ms ", "stopper compliance", "nL/kPa",
                  "stopper creep", "next: take the tip cap off"):
        assert words in r.stdout, r.stdout
    # the simulated board keeps its state across runs: the cap came off with the command, so a run primes
    r = cli("run", str(PROGRAMS / "test-dose.toml"), "--sim", "--db", str(tmp_path / "r.db"), *WHO, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
