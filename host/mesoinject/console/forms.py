"""The console's set-up form <-> dose programs and session details.

The page sends strings with units ("30 uL"); they go through the same parser and
limit checks as a program file, so the browser holds no rule of its own.
"""

from __future__ import annotations

import pathlib

from mesoprotocol import spec

from .. import plan as plans
from .. import program as programs
from .. import people, units
from ..program import Program, ProgramError

# form key -> program file key (volume and count depend on the technique)
_QUANTITIES = ("depth", "cadence", "flow_rate", "prime_volume")
PATIENT_REF = people.PATIENT_REF  # one rule for the console and the CLI


def to_program(form: dict) -> Program:
    """A Program from the form, or ProgramError naming the field."""
    technique = str(form.get("technique", ""))
    nappage = technique == "nappage"
    data = {key: form[key] for key in ("name", "technique", "drug", "syringe") if form.get(key) not in (None, "")}
    data.setdefault("name", f"{technique} (console)")
    for key in _QUANTITIES:
        if form.get(key) not in (None, "") and (key != "cadence" or nappage):
            data[key] = form[key]
    data["volume_per_shot" if nappage else "volume_per_point"] = form.get("volume")
    data["shots" if nappage else "points"] = _integer(form, "count", "shots" if nappage else "points")
    data["needle"] = {"gauge": _integer(form, "needle_gauge", "needle"), "length": form.get("needle_length")}
    return programs.parse(data)


def check(form: dict, limits: dict) -> Program:
    """to_program, then the device's limits (IDENTITY's, or the hard ceilings when none is known)."""
    program = to_program(form)
    program.check_limits(limits)
    return program


def _integer(form: dict, key: str, field: str) -> int:
    value = form.get(key)
    if value in (None, ""):
        raise ProgramError(field, "missing: give a whole number")
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # its size is the program's to judge
    if not isinstance(value, str) or len(value) > 32:
        raise ProgramError(field, f"{programs.shown(value)} is not a whole number")
    try:
        return int(str(value).strip())
    except ValueError:
        raise ProgramError(field, f"{value!r} is not a whole number") from None


def who(form: dict) -> tuple[str, str, str | None]:
    """Patient reference, operator and drug lot of the session, or ProgramError naming the field.

    The patient reference is a pseudonym such as P-0042, never a name: no spaces."""
    patient = people.patient_ref(_string(form, "patient_ref"))
    operator = _string(form, "operator")
    if not operator:
        raise ProgramError("operator", "give the operator's name or initials (the record says who treated)")
    return patient, operator, _string(form, "lot") or None


def _string(form: dict, key: str) -> str:
    value = form.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProgramError(key, f"must be text, got {programs.shown(value)}")
    return value.strip()


def library(folder: pathlib.Path) -> list[dict]:
    """The program files of a folder as form values; files that do not parse are listed with their error."""
    entries: list[dict] = []
    for path in sorted(folder.glob("*.toml")):
        try:
            program = programs.load(path)
        except ProgramError as e:
            entries.append({"file": path.name, "name": path.stem, "error": str(e), "form": None})
            continue
        if program.needles > 1:  # the form has a single needle's fields: a head's program would lose its head
            entries.append({"file": path.name, "name": program.name, "form": None,
                            "error": f"{program.head_name} head: multi-needle heads are not in the console yet; "
                                     f"run it with `mesoinject run {path.name}`"})
            continue
        entries.append({"file": path.name, "name": program.name, "error": None, "form": form_of(program)})
    return entries


def plan_library(folder: pathlib.Path) -> list[dict]:
    """The plan files of the library's plans/ folder; files that do not parse are listed with their error."""
    entries: list[dict] = []
    for path in sorted((folder / "plans").glob("*.toml")):
        try:
            plan = plans.load(path)
        except ProgramError as e:
            entries.append({"file": path.name, "name": path.stem, "error": str(e), "steps": None})
            continue
        entries.append({"file": path.name, "name": plan.name, "error": None, "summary": plan.summary(),
                        "steps": [{"step": st.number, "zone": st.zone.id, "zone_name": st.zone.en,
                                   "summary": st.summary()} for st in plan.steps]})
    return entries


def plan_of(form: dict, folder: pathlib.Path, limits: dict) -> plans.Plan:
    """The library plan the form names (a file in folder/plans), checked against the device's limits."""
    name = str(form.get("plan", ""))
    path = folder / "plans" / name
    if "/" in name or "\\" in name or not name.endswith(".toml") or not path.is_file():
        raise ProgramError("plan", f"{name!r} is not a plan of the library ({folder / 'plans'})")
    plan = plans.load(path)
    plan.check_limits(limits)
    return plan


def form_of(program: Program) -> dict:
    """The form's values for a program, each quantity as a number in its input's unit (units.FORM): the
    parser read "0.03 mL" or "30 microliter", so the page shows 30 in its uL field and converts nothing."""
    wire = {"volume": program.volume_nl, "depth": program.depth_um, "needle_length": program.needle_length_um,
            "cadence": program.cadence_mhz, "flow_rate": program.flow_nl_s, "prime_volume": program.prime_nl}
    form: dict[str, float | None] = {key: units.value(wire[key], quantity) for key, quantity in units.FORM.items()}
    if program.technique != "nappage":
        form["cadence"] = None
    return {**form, "name": program.name, "technique": program.technique, "drug": program.drug,
            "syringe": program.syringe_name, "count": program.count, "needle_gauge": program.needle_gauge}


def limits_in_units(limits: dict) -> dict:
    """IDENTITY's limits and the protocol's fixed bounds in the units the form shows."""
    return {
        "max_point_ul": units.ul(limits["max_point_nl"]), "max_shot_ul": units.ul(limits["max_shot_nl"]),
        "max_session_ul": units.ul(limits["max_session_nl"]), "max_depth_mm": units.mm(limits["max_depth_um"]),
        "max_cadence_hz": units.hz(limits["max_cadence_mhz"]), "max_flow_ul_s": units.ul_s(limits["max_flow_nl_s"]),
        "min_volume_ul": units.ul(spec.MIN_VOLUME_NL), "min_depth_mm": units.mm(spec.MIN_DEPTH_UM),
        "needle_margin_mm": units.mm(spec.NEEDLE_MARGIN_UM), "max_points": spec.MAX_POINTS,
        "max_shots": spec.MAX_SHOTS, "max_prime_ul": units.ul(spec.MAX_PRIME_NL),
        "max_test_dose_ul": units.ul(spec.MAX_TEST_DOSE_NL), "min_cadence_hz": units.hz(spec.MIN_CADENCE_MHZ),
        "min_flow_ul_s": units.ul_s(spec.MIN_FLOW_NL_S),
    }


def syringes() -> list[dict]:
    return [{"name": row[0], "capacity_ul": units.ul(spec.syringe_capacity_nl(code))}
            for code, row in sorted(spec.SYRINGES.items())]
