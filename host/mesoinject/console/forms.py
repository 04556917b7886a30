"""The console's set-up form <-> dose programs and session details.

The page sends strings with units ("30 uL"); they go through the same parser and
limit checks as a program file, so the browser holds no rule of its own.
"""

from __future__ import annotations

import pathlib
import re

from mesoprotocol import spec

from .. import program as programs
from ..program import Program, ProgramError

# form key -> program file key (volume and count depend on the technique)
_QUANTITIES = ("depth", "cadence", "flow_rate", "prime_volume")
PATIENT_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


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
    try:
        return int(str(value).strip())
    except ValueError:
        raise ProgramError(field, f"{value!r} is not a whole number") from None


def who(form: dict) -> tuple[str, str, str | None]:
    """Patient reference, operator and drug lot of the session, or ProgramError naming the field.

    The patient reference is a pseudonym such as P-0042, never a name: no spaces."""
    patient = str(form.get("patient_ref") or "").strip()
    if not PATIENT_REF.fullmatch(patient):
        raise ProgramError("patient_ref", "give the pseudonymous patient reference (letters, digits, '.', '_' or "
                           "'-', up to 32, no spaces), e.g. P-0042; never the patient's name")
    operator = str(form.get("operator") or "").strip()
    if not operator:
        raise ProgramError("operator", "give the operator's name or initials (the record says who treated)")
    return patient, operator, str(form.get("lot") or "").strip() or None


def library(folder: pathlib.Path) -> list[dict]:
    """The program files of a folder as form values; files that do not parse are listed with their error."""
    entries = []
    for path in sorted(folder.glob("*.toml")):
        try:
            data = programs.tomllib.loads(path.read_text(encoding="utf-8"))
            programs.parse(data)
        except (OSError, programs.tomllib.TOMLDecodeError, ProgramError) as e:
            entries.append({"file": path.name, "name": path.stem, "error": str(e), "form": None})
            continue
        entries.append({"file": path.name, "name": data["name"], "error": None, "form": _form_of(data)})
    return entries


def _form_of(data: dict) -> dict:
    nappage = data["technique"] == "nappage"
    form = {key: data[key] for key in ("name", "technique", "drug", "syringe", *_QUANTITIES) if key in data}
    form.setdefault("flow_rate", programs.DEFAULT_FLOW)
    form.setdefault("prime_volume", programs.DEFAULT_PRIME)
    form["volume"] = data["volume_per_shot" if nappage else "volume_per_point"]
    form["count"] = data["shots" if nappage else "points"]
    form["needle_gauge"] = data["needle"]["gauge"]
    form["needle_length"] = data["needle"]["length"]
    return form


def limits_in_units(limits: dict) -> dict:
    """IDENTITY's limits and the protocol's fixed bounds in the units the form shows."""
    return {
        "max_point_ul": limits["max_point_nl"] / 1000, "max_shot_ul": limits["max_shot_nl"] / 1000,
        "max_session_ul": limits["max_session_nl"] / 1000, "max_depth_mm": limits["max_depth_um"] / 1000,
        "max_cadence_hz": limits["max_cadence_mhz"] / 1000, "max_flow_ul_s": limits["max_flow_nl_s"] / 1000,
        "min_volume_ul": spec.MIN_VOLUME_NL / 1000, "min_depth_mm": spec.MIN_DEPTH_UM / 1000,
        "needle_margin_mm": spec.NEEDLE_MARGIN_UM / 1000, "max_points": spec.MAX_POINTS,
        "max_shots": spec.MAX_SHOTS, "max_prime_ul": spec.MAX_PRIME_NL / 1000,
        "max_test_dose_ul": spec.MAX_TEST_DOSE_NL / 1000, "min_cadence_hz": spec.MIN_CADENCE_MHZ / 1000,
        "min_flow_ul_s": spec.MIN_FLOW_NL_S / 1000,
    }


def syringes() -> list[dict]:
    return [{"name": row[0], "capacity_ul": spec.syringe_capacity_nl(code) / 1000}
            for code, row in sorted(spec.SYRINGES.items())]
