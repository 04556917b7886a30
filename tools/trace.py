"""The risk file, checked: requirements (docs/requirements.yaml), hazards and their risk controls
(docs/hazards.yaml), the tests that verify them (`@pytest.mark.req("SR-012")`) and their last result,
PROTOCOL.md's limits tables against spec.py, and the SOUP list (docs/soup.md, tools/soup.py).

    python tools/trace.py build/trace/pytest.json [build/trace/pytest-32.json ...] [--html build/trace.html]
    python tools/trace.py --static        # what needs no test run (the risk file, the limits tables, SOUP)

Result files are written by pytest with `--req-report FILE` (tools/trace_plugin.py); ./test.sh runs
this after its pytest runs. Exit 1 with every problem listed; a partial run (paths, -k, -m...) only
warns about requirements it did not reach."""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `tools.soup` whether this runs as a script or is imported by a test

from tools import soup  # noqa: E402

DOCS = ROOT / "docs"
REQUIREMENTS = DOCS / "requirements.yaml"
HAZARDS = DOCS / "hazards.yaml"
PROTOCOL_MD = ROOT / "protocol" / "PROTOCOL.md"
TEST_DIRS = ("protocol/tests", "firmware/tests", "host/tests", "hil_tests", "tools/tests")
ID = re.compile(r"^SR-\d{3}$")
CLASSES = ("safety", "performance", "record", "usability", "security")
SEVERITIES = ("negligible", "minor", "serious", "critical", "catastrophic")
CONTROL_KINDS = ("firmware limit", "interlock", "alarm", "host check", "record", "design")
STATUSES = ("active", "planned")  # planned: not in this build yet (names its issue); never counts as a control
HOW_TO_FIX = {
    "untested": "cite it with @pytest.mark.req(...) on a test that verifies it",
}


@dataclasses.dataclass
class Findings:
    errors: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    def extend(self, other: Findings) -> None:
        self.errors += other.errors
        self.warnings += other.warnings


# ---- the risk file -------------------------------------------------------------------------------
def load_requirements(path=REQUIREMENTS) -> tuple[dict, Findings]:
    f = Findings()
    rows = (yaml.safe_load(pathlib.Path(path).read_text()) or {}).get("requirements") or []
    reqs: dict[str, dict] = {}
    for row in rows:
        rid = str(row.get("id", ""))
        where = f"{pathlib.Path(path).name}: {rid or '(no id)'}"
        if not ID.match(rid):
            f.errors.append(f"{where}: an id is SR- and three digits")
        elif rid in reqs:
            f.errors.append(f"{where}: id used twice")
        if not str(row.get("text", "")).strip():
            f.errors.append(f"{where}: no text")
        if row.get("class") not in CLASSES:
            f.errors.append(f"{where}: class {row.get('class')!r} is none of {', '.join(CLASSES)}")
        row.setdefault("status", "active")
        if row["status"] not in STATUSES:
            f.errors.append(f"{where}: status {row['status']!r} is none of {', '.join(STATUSES)}")
        if row["status"] == "planned" and not row.get("issue"):
            f.errors.append(f"{where}: a planned requirement names the issue (or branch) that brings it")
        reqs[rid] = row
    return reqs, f


def load_hazards(reqs: dict, path=HAZARDS) -> tuple[list, Findings]:
    f = Findings()
    hazards = (yaml.safe_load(pathlib.Path(path).read_text()) or {}).get("hazards") or []
    seen = set()
    for h in hazards:
        hid = h.get("id", "(no id)")
        if hid in seen:
            f.errors.append(f"hazard {hid}: id used twice")
        seen.add(hid)
        for key in ("hazard", "cause", "harm"):
            if not str(h.get(key, "")).strip():
                f.errors.append(f"hazard {hid}: no {key}")
        if h.get("severity") not in SEVERITIES:
            f.errors.append(f"hazard {hid}: severity {h.get('severity')!r} is none of {', '.join(SEVERITIES)}")
        controls = h.get("controls") or []
        active = 0
        for c in controls:
            what = f"hazard {hid}, control {c.get('control', '?')!r}"
            if c.get("kind") not in CONTROL_KINDS:
                f.errors.append(f"{what}: kind {c.get('kind')!r} is none of {', '.join(CONTROL_KINDS)}")
            ids = c.get("requirements") or []
            if not ids:
                f.errors.append(f"{what}: links no requirement (and so no test)")
            for rid in ids:
                if rid not in reqs:
                    f.errors.append(f"{what}: unknown requirement {rid}")
            if ids and all(reqs.get(r, {}).get("status") == "active" for r in ids):
                active += 1
        if not active:
            f.errors.append(f"hazard {hid} ({h.get('hazard', '')}): no risk control in force "
                            "(add a control whose requirements are all active and tested)")
    return hazards, f


def cited_in_source(dirs=TEST_DIRS) -> dict[str, set[str]]:
    """Requirement id -> test files citing it, read from the source (no run needed)."""
    cited: dict[str, set[str]] = {}
    for d in dirs:
        for path in sorted((ROOT / d).glob("**/*.py")):
            for args in re.findall(r"mark\.req\(([^)]*)\)", path.read_text()):
                for rid in re.findall(r"[\"']([^\"']+)[\"']", args):
                    cited.setdefault(rid, set()).add(str(path.relative_to(ROOT)))
    return cited


def check_citations(reqs: dict, hazards: list, cited: dict[str, set[str]]) -> Findings:
    f = Findings()
    for rid, files in sorted(cited.items()):
        if rid not in reqs:
            f.errors.append(f"{', '.join(sorted(files))}: cites unknown requirement {rid!r} (docs/requirements.yaml)")
    for h in hazards:
        for c in h.get("controls") or []:
            ids = c.get("requirements") or []
            if any(reqs.get(r, {}).get("status") == "planned" for r in ids):
                continue  # not a control in force yet (load_hazards wants another one for the hazard)
            if ids and not any(r in cited for r in ids):
                f.errors.append(f"hazard {h.get('id')}, control {c.get('control')!r}: no test cites "
                                f"{' or '.join(ids)}")
    return f


# ---- PROTOCOL.md against spec.py -------------------------------------------------------------
def markdown_table(lines: list[str], start: int) -> list[dict[str, str]]:
    """The first table at or after line `start`: one dict per row, keyed by the header's cells."""
    i = start
    while i < len(lines) and not lines[i].startswith("|"):
        i += 1
    cells = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
    header = cells(lines[i])
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, cells(line))))
    return rows


def leading_int(text: str) -> int | None:
    m = re.match(r"^\s*(-?\d+)", text.replace(",", ""))
    return int(m.group(1)) if m else None


def check_limits_tables(text: str, spec) -> Findings:
    """§7's constants and §4's SETTINGS rows (default, lowest, ceiling) against spec.py."""
    f = Findings()
    lines = text.splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith("## 7.")), None)
    if at is None:
        f.errors.append("PROTOCOL.md: no section '## 7.' (hard limits)")
    else:
        rows = markdown_table(lines, at)
        if not rows or "constant" not in rows[0]:
            f.errors.append("PROTOCOL.md §7: no limits table with a 'constant' column")
        for row in rows:
            name, value = row.get("constant", ""), leading_int(row.get("value", ""))
            if not hasattr(spec, name):
                f.errors.append(f"PROTOCOL.md §7: {name} is not in spec.py")
            elif value != getattr(spec, name):
                f.errors.append(f"PROTOCOL.md §7: {name} is {row.get('value')!r}, spec.py says {getattr(spec, name)}")
    at = next((i for i, line in enumerate(lines) if line.startswith("**SETTINGS (")), None)
    if at is None:
        f.errors.append("PROTOCOL.md: no SETTINGS table ('**SETTINGS (0x09)...')")
        return f
    rows = markdown_table(lines, at)
    names = [r.get("field") for r in rows]
    expected = [s[0] for s in spec.SETTINGS_TABLE]
    if names != expected:
        f.errors.append(f"PROTOCOL.md §4 SETTINGS: fields {names}, spec.SETTINGS_TABLE has {expected}")
    for row, (name, _code, default, lowest, ceiling) in zip(rows, spec.SETTINGS_TABLE):
        for col, want in (("default", default), ("lowest", lowest), ("ceiling", ceiling)):
            got = leading_int(row.get(col, ""))
            if got != want:
                f.errors.append(f"PROTOCOL.md §4 SETTINGS: {name} {col} is {row.get(col)!r}, spec.SETTINGS_TABLE says {want}")
    return f


# ---- test results ------------------------------------------------------------------------------
def load_results(paths: list[pathlib.Path]) -> tuple[dict, list[dict]]:
    """nodeid -> {tier: entry}; and each file's header (tier, full, args)."""
    tests: dict[str, dict[str, dict]] = {}
    runs = []
    for path in paths:
        data = json.loads(pathlib.Path(path).read_text())
        tier = pathlib.Path(path).stem
        runs.append({"tier": tier, "full": data.get("full", False), "args": data.get("args", []),
                     "micropython": data.get("micropython", "")})
        for nodeid, entry in data["tests"].items():
            tests.setdefault(nodeid, {})[tier] = entry
    return tests, runs


def requirement_verdicts(reqs: dict, tests: dict) -> dict[str, dict]:
    """Per requirement: its tests (nodeid -> {tier: outcome}) and a status: verified (a test passed,
    none failed), failed, or untested (nothing ran and passed)."""
    out = {rid: {"tests": {}, "status": "untested", "skips": []} for rid in reqs}
    unknown: dict[str, list[str]] = {}
    for nodeid, tiers in sorted(tests.items()):
        for tier, entry in tiers.items():
            for rid in entry.get("req", []):
                if rid not in out:
                    unknown.setdefault(rid, []).append(nodeid)
                    continue
                out[rid]["tests"].setdefault(nodeid, {})[tier] = entry["outcome"]
                if entry["outcome"] == "skipped" and entry.get("skip"):
                    out[rid]["skips"].append(f"{nodeid}: {entry['skip']}")
    for v in out.values():
        outcomes = [o for tiers in v["tests"].values() for o in tiers.values()]
        v["status"] = "failed" if "failed" in outcomes else "verified" if "passed" in outcomes else "untested"
    out["_unknown"] = unknown  # type: ignore[assignment]
    return out


def check_results(reqs: dict, verdicts: dict, runs: list[dict], cited: dict[str, set[str]] | None = None) -> Findings:
    f = Findings()
    cited = cited_in_source() if cited is None else cited
    for rid, nodeids in sorted(verdicts["_unknown"].items()):
        f.errors.append(f"{nodeids[0]}{f' (and {len(nodeids) - 1} more)' if len(nodeids) > 1 else ''}: "
                        f"cites unknown requirement {rid!r}")
    full = bool(runs) and runs[0]["full"]
    not_reached = []
    for rid, req in reqs.items():
        v = verdicts[rid]
        if req["status"] == "planned":
            if v["status"] == "verified":
                f.warnings.append(f"{rid} is planned ({req['issue']}) but tests now verify it: make it active")
            continue
        if v["status"] == "failed":
            bad = [n for n, tiers in v["tests"].items() if "failed" in tiers.values()]
            f.errors.append(f"{rid} ({req['text'][:60]}...): test failed: {', '.join(bad)}")
        elif v["status"] == "untested":
            if v["tests"]:
                why = "its tests did not pass here: " + "; ".join(v["skips"][:3] or list(v["tests"])[:3])
            elif rid in cited:
                why = f"cited in {', '.join(sorted(cited[rid]))}, but no citing test ran"
            else:
                why = "no test cites it: mark the tests that verify it with @pytest.mark.req(\"" + rid + "\")"
            if full or not v["tests"] and rid not in cited:
                f.errors.append(f"{rid} ({req['text'][:60]}...): no passing test ({why})")
            else:
                not_reached.append(rid)
    if not_reached:
        f.warnings.append(f"a partial run ({' '.join(runs[0]['args'])}) did not verify {len(not_reached)} requirements "
                          f"({', '.join(not_reached[:8])}{'...' if len(not_reached) > 8 else ''}); "
                          "./test.sh without arguments checks every one")
    return f


# ---- the report ----------------------------------------------------------------------------------
TEMPLATE = pathlib.Path(__file__).with_name("trace_report.html.j2")


def render_html(reqs, hazards, verdicts, runs, findings) -> str:
    import jinja2

    def status(rid):
        return "planned" if reqs.get(rid, {}).get("status") == "planned" else verdicts.get(rid, {}).get("status", "unknown")

    active = [r for r, req in reqs.items() if req["status"] == "active"]
    counts = {"total": len(active), "verified": sum(verdicts[r]["status"] == "verified" for r in active),
              "planned": len(reqs) - len(active)}
    env = jinja2.Environment(autoescape=True)
    return env.from_string(TEMPLATE.read_text()).render(reqs=reqs, hazards=hazards, verdicts=verdicts, runs=runs, findings=findings,
                                        status=status, counts=counts)


# ---- the checks together ------------------------------------------------------------------------
def static_findings() -> tuple[dict, list, Findings]:
    """Everything that needs no test run: the two YAML files, the citations in the source, the
    limits tables, the SOUP list."""
    from mesoprotocol import spec

    reqs, f = load_requirements()
    hazards, fh = load_hazards(reqs)
    f.extend(fh)
    f.extend(check_citations(reqs, hazards, cited_in_source()))
    f.extend(check_limits_tables(PROTOCOL_MD.read_text(), spec))
    f.errors += soup.check()
    return reqs, hazards, f


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="*", type=pathlib.Path, help="--req-report files; the first is the main run")
    ap.add_argument("--static", action="store_true", help="check only what needs no test run")
    ap.add_argument("--html", type=pathlib.Path, help="write the trace report here")
    args = ap.parse_args(argv)
    if not args.static and not args.results:
        ap.error("give the --req-report files of a pytest run, or --static")
    reqs, hazards, findings = static_findings()
    tests, runs = load_results([p for p in args.results if p.exists() or p == args.results[0]]) if args.results else ({}, [])
    verdicts = requirement_verdicts(reqs, tests)
    if args.results:
        findings.extend(check_results(reqs, verdicts, runs))
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(render_html(reqs, hazards, verdicts, runs, findings))
    for w in findings.warnings:
        print(f"trace: warning: {w}", file=sys.stderr)
    for e in findings.errors:
        print(f"trace: {e}", file=sys.stderr)
    active = [r for r, req in reqs.items() if req["status"] == "active"]
    done = sum(verdicts[r]["status"] == "verified" for r in active)
    print(f"trace: {len(reqs)} requirements ({done}/{len(active)} active ones verified by this run), "
          f"{len(hazards)} hazards; {len(findings.errors)} problems"
          + (f"; report {args.html}" if args.html else ""))
    return 1 if findings.errors else 0


if __name__ == "__main__":
    sys.exit(main())
