"""The risk-file checker (tools/trace.py, tools/trace_plugin.py, tools/soup.py): each thing it must
catch is caught and said, and the risk file as checked in passes it."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest
import yaml

from mesoprotocol import spec
from tools import soup, trace

ROOT = pathlib.Path(__file__).resolve().parents[2]


def write_yaml(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def reqs_of(tmp_path, *ids, planned=()):
    rows = [{"id": i, "class": "safety", "text": f"requirement {i}"} for i in ids]
    rows += [{"id": i, "class": "security", "text": f"planned {i}", "status": "planned", "issue": "issue 99"} for i in planned]
    reqs, findings = trace.load_requirements(write_yaml(tmp_path / "requirements.yaml", {"requirements": rows}))
    assert findings.errors == []
    return reqs


def run(*tests, full=True):
    """A result file's content as tools/trace.py reads it: (nodeid, outcome, ids)."""
    return ({nodeid: {"main": {"outcome": outcome, "req": list(ids), "skip": "no board" if outcome == "skipped" else ""}}
             for nodeid, outcome, ids in tests},
            [{"tier": "main", "full": full, "args": [] if full else ["-k", "x"], "micropython": ""}])


def result_findings(reqs, tests, runs, cited=None):
    return trace.check_results(reqs, trace.requirement_verdicts(reqs, tests), runs, cited or {})


def test_a_requirement_without_a_test_is_reported(tmp_path):
    reqs = reqs_of(tmp_path, "SR-001", "SR-002")
    f = result_findings(reqs, *run(("t.py::test_a", "passed", ["SR-001"])))
    assert len(f.errors) == 1 and f.errors[0].startswith("SR-002") and "no test cites it" in f.errors[0]
    assert '@pytest.mark.req("SR-002")' in f.errors[0]  # and what to do


def test_a_requirement_whose_only_tests_failed_or_skipped_is_reported(tmp_path):
    reqs = reqs_of(tmp_path, "SR-001", "SR-002")
    f = result_findings(reqs, *run(("t.py::test_a", "failed", ["SR-001"]), ("t.py::test_b", "passed", ["SR-001"]),
                                   ("t.py::test_c", "skipped", ["SR-002"])))
    assert any(e.startswith("SR-001") and "test failed: t.py::test_a" in e for e in f.errors), f.errors
    assert any(e.startswith("SR-002") and "no board" in e for e in f.errors), f.errors  # the skip's reason


def test_a_partial_run_warns_instead_of_failing_but_never_hides_an_uncited_requirement(tmp_path):
    reqs = reqs_of(tmp_path, "SR-001", "SR-002", "SR-003")
    tests, runs = run(("t.py::test_a", "passed", ["SR-001"]), full=False)
    f = result_findings(reqs, tests, runs, cited={"SR-001": {"t.py"}, "SR-002": {"u.py"}})
    assert [e[:6] for e in f.errors] == ["SR-003"]  # nobody cites it: an error whatever the run
    assert "did not verify 1 requirements (SR-002)" in f.warnings[0]


def test_a_test_citing_an_unknown_id_is_reported(tmp_path):
    reqs = reqs_of(tmp_path, "SR-001")
    f = result_findings(reqs, *run(("t.py::test_a", "passed", ["SR-001", "SR-999"])))
    assert f.errors == ["t.py::test_a: cites unknown requirement 'SR-999'"]
    f = trace.check_citations(reqs, [], {"SR-001": {"t.py"}, "SR-12": {"hil_tests/test_x.py"}})
    assert f.errors == ["hil_tests/test_x.py: cites unknown requirement 'SR-12' (docs/requirements.yaml)"]


def test_a_hazard_without_a_control_or_a_control_without_a_test_is_reported(tmp_path):
    reqs = reqs_of(tmp_path, "SR-001", "SR-002", planned=["SR-003"])
    base = {"hazard": "overdose", "cause": "c", "harm": "h", "severity": "serious"}
    hazards = [dict(base, id="HZ-1", controls=[]),
               dict(base, id="HZ-2", controls=[{"control": "only planned", "kind": "interlock", "requirements": ["SR-003"]}]),
               dict(base, id="HZ-3", controls=[{"control": "a limit", "kind": "firmware limit", "requirements": ["SR-002"]}]),
               dict(base, id="HZ-4", controls=[{"control": "no link", "kind": "alarm", "requirements": []},
                                                {"control": "ok", "kind": "alarm", "requirements": ["SR-001"]}])]
    loaded, f = trace.load_hazards(reqs, write_yaml(tmp_path / "hazards.yaml", {"hazards": hazards}))
    assert any(e.startswith("hazard HZ-1") and "no risk control in force" in e for e in f.errors), f.errors
    assert any(e.startswith("hazard HZ-2") and "no risk control in force" in e for e in f.errors), f.errors
    assert any("HZ-4, control 'no link': links no requirement" in e for e in f.errors), f.errors
    assert not any("HZ-3" in e for e in f.errors)
    f = trace.check_citations(reqs, loaded, {"SR-001": {"t.py"}})
    assert f.errors == ["hazard HZ-3, control 'a limit': no test cites SR-002"]


PROTOCOL = (ROOT / "protocol" / "PROTOCOL.md").read_text()


def test_the_limits_tables_agree_with_spec():
    assert trace.check_limits_tables(PROTOCOL, spec).errors == []


@pytest.mark.parametrize("old, new, words", [
    ("| MAX_DEPTH_UM | 4000 |", "| MAX_DEPTH_UM | 4500 |", "§7: MAX_DEPTH_UM is '4500', spec.py says 4000"),
    ("| MAX_CADENCE_MHZ | 12000 |", "| MAX_CADENCE_HZ | 12 |", "§7: MAX_CADENCE_HZ is not in spec.py"),
    ("| 4 | 12 | max_depth_um | u16 | µm | 4000 | 500 | 4000 |", "| 4 | 12 | max_depth_um | u16 | µm | 4000 | 500 | 5000 |",
     "§4 SETTINGS: max_depth_um ceiling is '5000', spec.SETTINGS_TABLE says 4000"),
])
def test_a_disagreeing_limits_table_is_reported(old, new, words):
    assert old in PROTOCOL
    errors = trace.check_limits_tables(PROTOCOL.replace(old, new), spec).errors
    assert any(words in e for e in errors), errors


def test_a_stale_soup_list_is_reported(tmp_path):
    text, problems = soup.render()
    assert problems == []
    name, version = next((d[1], d[2]) for d in soup.distributions() if d[1] == "pint")
    stale = tmp_path / "soup.md"
    stale.write_text(text.replace(f"| pint | {version} |", "| pint | 0.1 |"))
    problems = soup.check(stale)
    assert len(problems) == 1 and "out of date" in problems[0] and "pint" in problems[0] and "--write" in problems[0]
    stale.write_text(text)
    assert soup.check(stale) == []


def test_a_distribution_without_a_review_is_reported():
    hand = yaml.safe_load(soup.SOUP_YAML.read_text())
    del hand["python"]["pint"]
    text, problems = soup.render(hand)
    assert "| pint |" in text and soup.MISSING in text
    assert any(p.startswith("soup: pint") and "no purpose or review" in p for p in problems), problems


def test_the_risk_file_as_checked_in_passes_the_static_checks():
    # the two YAML files, every citation in the tests, the limits tables, the SOUP list
    _, _, findings = trace.static_findings()
    assert findings.errors == []


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_the_plugin_records_outcomes_and_ids(tmp_path, workers):
    (tmp_path / "test_x.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.req("SR-001", "SR-002")
        def test_pass():
            pass

        @pytest.mark.req("SR-003")
        @pytest.mark.parametrize("n", [1, 2])
        def test_one_fails(n):
            assert n == 1

        @pytest.mark.req("SR-004")
        def test_skipped():
            pytest.skip("no board here")

        def test_uncited():
            pass
    """))
    out = tmp_path / "report.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tools.trace_plugin", "-p", "no:cacheprovider",
                    "--rootdir", str(tmp_path), "-c", os.devnull, *workers, "--req-report", str(out), str(tmp_path)],
                   cwd=tmp_path, env=env, capture_output=True, timeout=120)
    report = json.loads(out.read_text())
    tests = {k.split("::", 1)[1]: v for k, v in report["tests"].items()}
    assert tests["test_pass"] == {"outcome": "passed", "req": ["SR-001", "SR-002"], "skip": ""}
    assert (tests["test_one_fails[1]"]["outcome"], tests["test_one_fails[2]"]["outcome"]) == ("passed", "failed")
    assert tests["test_one_fails[2]"]["req"] == ["SR-003"]
    assert tests["test_skipped"]["outcome"] == "skipped" and "no board here" in tests["test_skipped"]["skip"]
    assert tests["test_uncited"]["req"] == []
    assert report["full"] is False  # a path was given: a partial run
