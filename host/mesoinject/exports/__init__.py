"""Exports of the treatment record.

csv, json: one row per delivery (primes included, with their kind), any number of sessions.
           In csv a text cell starting = + - @ tab or CR gets a leading ' (OWASP CSV injection).
fhir:      one FHIR R4 MedicationAdministration per session (a Bundle for all sessions).
html:      a printable treatment report of one session.

An export never writes an empty file: an empty database, an unknown session or a
session with nothing to list raises NothingToExport, whose message says what to do.
"""

from __future__ import annotations

import csv
import io
import json

from mesoprotocol import spec

from .. import extras, zones
from .common import NothingToExport, check_session, numbered, ul

FORMATS = ("csv", "json", "fhir", "html")
EXPORT_COLUMNS = ("session_id", "device_serial", "record_id", "point", "kind", "partial", "programmed_nl",
                  "delivered_nl", "depth_um", "device_time_ms", "received_at", "drug", "patient_ref", "operator",
                  "drug_lot", "device_session")

# beside the integer wire units: what a person reads (the report's numbers and words)
# calibrated: "no" when the device had no calibration for the syringe (DELIVERY FLAG_UNCALIBRATED): the volume
# is an estimate from the table's bore
READABLE_COLUMNS = ("number", "counted", "delivered_ul", "programmed_ul", "depth_mm", "outcome", "calibrated")
# where it went, for a session that ran a plan (blank otherwise): step from 1, zone id and name, SNOMED CT code
PLAN_COLUMNS = ("plan_step", "zone", "zone_name", "site_snomed")
# two-drug guns: the syringe channel the row's drug came from (blank: stored before two-drug firmware)
DRUG_COLUMNS = ("channel",)
# skin contact: the least vacuum (kPa) a multi-needle head held while the row's dose ran (0: a single needle's
# switch, a prime; blank: stored before the journal kept it)
CONTACT_COLUMNS = ("vacuum_kpa",)

__all__ = ["EXPORT_COLUMNS", "FORMATS", "NothingToExport", "export"]


def export(store, fmt: str, session_id: int | None = None, *, lang: str | None = None) -> str:
    """The export as text; session_id None means every session (html needs one); lang: the html report's."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    check_session(store, session_id)
    if fmt == "fhir":
        extras.require("fhir", "the FHIR export", "fhir.resources")
        from . import fhir

        return fhir.export(store, session_id)
    if fmt == "html":
        from . import report

        return report.export(store, session_id, lang=lang)
    records = store.deliveries(session_id)
    rows = [{k: row[k] for k in EXPORT_COLUMNS} for row in records]
    _add_readable_columns(store, records, rows)
    if not rows:
        what = f"session {session_id}" if session_id is not None else store.where
        raise NothingToExport(f"{what} has no deliveries to export (the session stopped before the first point, "
                              "or its records are still on the device: `mesoinject sync --port PORT` pulls them)")
    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    out = io.StringIO()
    # CRLF as RFC 4180 has it: a line terminator of "\n" alone leaves a bare CR in a cell unquoted, splitting its row
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS + READABLE_COLUMNS + PLAN_COLUMNS + DRUG_COLUMNS + CONTACT_COLUMNS,
                            lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)
    return out.getvalue()


def _add_readable_columns(store, records: list[dict], rows: list[dict]) -> None:
    """number: the point from 1 (blank for a prime); counted: no for a prime (purged into the air, never in a
    total); volumes in µL and depth in mm as text (the same in CSV and JSON); outcome: how the row's session
    ended, in words."""
    by_session: dict = {}
    for record in records:
        by_session.setdefault(record.get("session_id"), []).append(record)
    numbers: dict[int, int | None] = {}
    step_drugs: dict = {}  # (session, plan step) -> the step's drug: a plan of two drugs gives each from its step
    for session_id, group in by_session.items():
        numbers.update(zip(map(id, group), numbered(group)))
        session = store.session(session_id) or {}
        by_session[session_id] = session.get("outcome_text") or session.get("outcome") or ""
        for step in (json.loads(session.get("plan_json") or "null") or {}).get("steps", []):
            if step.get("program", {}).get("drug"):
                step_drugs[(session_id, step["step"])] = step["program"]["drug"]
    for record, row in zip(records, rows):
        prime = record["kind"] == "prime"
        row.update(number="" if prime else numbers[id(record)], counted="no" if prime else "yes",
                   delivered_ul=ul(record["delivered_nl"]), programmed_ul=ul(record["programmed_nl"]),
                   depth_mm=f"{record['depth_um'] / 1000:.2f}", outcome=by_session[record.get("session_id")],
                   calibrated="no" if record.get("flags", 0) & spec.FLAG_UNCALIBRATED else "yes")
        row["channel"] = record.get("channel") or ""  # blank: stored before two-drug firmware (as plan_step)
        row["drug"] = step_drugs.get((record.get("session_id"), record.get("plan_step")), row["drug"])
        vacuum = record.get("vacuum_kpa")
        row["vacuum_kpa"] = "" if vacuum is None else vacuum
        zone = zones.ZONES.get(record.get("zone") or "")
        row.update(plan_step=record.get("plan_step") or "", zone=record.get("zone") or "",
                   zone_name=zones.name(record.get("zone")), site_snomed=(zone.snomed or "") if zone else "")


# a spreadsheet runs a cell that starts with one of these as a formula (OWASP, CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A text cell a spreadsheet would run, prefixed with ' so it is shown as text; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
