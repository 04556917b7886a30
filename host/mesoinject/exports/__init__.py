"""Exports of the treatment record.

csv, json: one row per delivery (primes included, with their kind), any number of sessions.
fhir:      one FHIR R4 MedicationAdministration per session (a Bundle for all sessions).
html:      a printable treatment report of one session.

An export never writes an empty file: an empty database, an unknown session or a
session with nothing to list raises NothingToExport, whose message says what to do.
"""

from __future__ import annotations

import csv
import io
import json

from .. import extras
from .common import NothingToExport, check_session

FORMATS = ("csv", "json", "fhir", "html")
EXPORT_COLUMNS = ("session_id", "device_serial", "record_id", "point", "kind", "partial", "programmed_nl",
                  "delivered_nl", "depth_um", "device_time_ms", "received_at", "drug", "patient_ref", "operator",
                  "drug_lot", "device_session")

__all__ = ["EXPORT_COLUMNS", "FORMATS", "NothingToExport", "export"]


def export(store, fmt: str, session_id: int | None = None) -> str:
    """The export as text; session_id None means every session (html needs one)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    check_session(store, session_id)
    if fmt == "fhir":
        extras.require("fhir", "the FHIR export", "fhir.resources")
        from . import fhir

        return fhir.export(store, session_id)
    if fmt == "html":
        from . import report

        return report.export(store, session_id)
    rows = [{k: row[k] for k in EXPORT_COLUMNS} for row in store.deliveries(session_id)]
    if not rows:
        what = f"session {session_id}" if session_id is not None else store.where
        raise NothingToExport(f"{what} has no deliveries to export (the session stopped before the first point, "
                              "or its records are still on the device: `mesoinject sync --port PORT` pulls them)")
    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
