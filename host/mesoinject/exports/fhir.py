"""FHIR R4 export: one MedicationAdministration per session.

Built as plain JSON and validated by the fhir.resources models (R4B: MedicationAdministration,
Medication and Device are unchanged from R4), so what we write is what the library parses.

- medication: a contained Medication, code.text = drug, batch.lotNumber = lot
- subject: the pseudonymous patient reference as an identifier (no Patient resource, no names)
- device: a contained Device (serial number, board, firmware)
- dosage: route intradermal (SNOMED CT), dose = total delivered in mL (primes not counted),
  text = human-readable summary with every point, and one `point-dose` extension per
  delivery (point, kind, programmed, delivered, depth, partial, device record)
- note: clinician notes, adverse events, device alarms, primes
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationadministration import MedicationAdministration

from .common import SessionRecord, ul

# Placeholder naming base for our identifier systems and extension; a clinic's own
# FHIR server profile would replace it (one place to change).
NAMING_BASE = "https://mesoinject.example/fhir"
POINT_DOSE_EXTENSION = f"{NAMING_BASE}/StructureDefinition/point-dose"
UCUM = "http://unitsofmeasure.org"
INTRADERMAL = {"coding": [{"system": "http://snomed.info/sct", "code": "372464004", "display": "Intradermal route"}],
               "text": "intradermal"}


def export(store, session_id: int | None) -> str:
    if session_id is not None:
        return medication_administration(SessionRecord.load(store, session_id)).model_dump_json(indent=1) + "\n"
    return bundle(store).model_dump_json(indent=1) + "\n"


def bundle(store) -> Bundle:
    """Every session, one MedicationAdministration each, as a collection."""
    entries = [{"resource": medication_administration(SessionRecord.load(store, s["id"])).model_dump(mode="json")}
               for s in store.sessions()]
    return Bundle.model_validate({"resourceType": "Bundle", "type": "collection",
                                  "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                  "entry": entries})


def medication_administration(rec: SessionRecord) -> MedicationAdministration:
    s = rec.session
    data = {
        "resourceType": "MedicationAdministration",
        "id": f"mesoinject-session-{s['id']}",
        "identifier": _identifiers(s),
        "status": _status(rec),
        "contained": [_medication(s), _device(s)],
        "medicationReference": {"reference": "#medication", "display": s["drug"]},
        "subject": _subject(s["patient_ref"]),
        "effectivePeriod": {k: v for k, v in (("start", s["started_at"]), ("end", s["ended_at"])) if v},
        "dosage": _dosage(rec),
        "device": [{"reference": "#device", "display": f"mesoinject {s['board']} {s['device_serial']}"}],
    }
    if data["status"] == "stopped":
        data["statusReason"] = [{"text": "; ".join([s["outcome"]] + [a["code"] for a in rec.alarms])}]
    if s["operator"]:
        data["performer"] = [{"actor": {"display": s["operator"]}}]
    notes = _notes(rec)
    if notes:
        data["note"] = notes
    return MedicationAdministration.model_validate(data)


def _status(rec: SessionRecord) -> str:
    outcome = rec.session["outcome"]
    if outcome is None:
        return "in-progress"
    if rec.synced:
        return "unknown"  # run on another host: we hold its records, not how it ended
    if not rec.given:
        return "not-done"
    return "completed" if outcome == "complete" else "stopped"


def _identifiers(s: dict) -> list[dict]:
    ids = [{"system": f"{NAMING_BASE}/records-session", "value": str(s["id"])}]
    if s["device_session"] is not None:
        ids.append({"system": f"{NAMING_BASE}/device-session", "value": f"{s['device_serial']}:{s['device_session']}"})
    return ids


def _medication(s: dict) -> dict:
    med = {"resourceType": "Medication", "id": "medication", "code": {"text": s["drug"]}}
    if s["drug_lot"]:
        med["batch"] = {"lotNumber": s["drug_lot"]}
    return med


def _device(s: dict) -> dict:
    return {"resourceType": "Device", "id": "device", "serialNumber": s["device_serial"],
            "deviceName": [{"name": f"mesoinject {s['board']}", "type": "model-name"}],
            "version": [{"value": s["firmware"]}]}


def _subject(patient_ref: str | None) -> dict:
    if not patient_ref:
        return {"display": "patient reference not recorded"}
    return {"identifier": {"system": f"{NAMING_BASE}/patient-ref", "value": patient_ref},
            "display": f"pseudonymous patient {patient_ref}"}


def _quantity(nl: int, unit: str) -> dict:
    value = Decimal(nl).scaleb(-3 if unit == "uL" else -6)  # exact: nL are integers
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _dosage(rec: SessionRecord) -> dict:
    s = rec.session
    if rec.synced:
        head = "Program unknown (records synced from the device)."
    else:
        head = (f"{s['program_name']} ({s['technique']}): {s['planned']} x {ul(s['volume_nl'])} uL programmed at "
                f"{s['depth_um'] / 1000:g} mm, needle {s['needle']}, syringe {s['syringe']}.")
    total = "" if rec.program_total_nl is None else f" of {ul(rec.program_total_nl)} uL programmed"
    given = (f" Given {len(rec.given)}: {ul(rec.delivered_nl)} uL delivered{total} ({rec.partial} partial)."
             f" Per point, delivered/programmed uL: "
             + ", ".join(f"#{r['point']} {ul(r['delivered_nl'])}/{ul(r['programmed_nl'])}"
                         + (" partial" if r["partial"] else "") for r in rec.given))
    return {"text": head + (given if rec.given else " Nothing delivered."),
            "route": INTRADERMAL,
            "dose": _quantity(rec.delivered_nl, "mL"),
            "extension": [_point_extension(r) for r in rec.given]}


def _point_extension(r: dict) -> dict:
    return {"url": POINT_DOSE_EXTENSION, "extension": [
        {"url": "point", "valueInteger": r["point"]},
        {"url": "kind", "valueCode": r["kind"]},
        {"url": "programmed", "valueQuantity": _quantity(r["programmed_nl"], "uL")},
        {"url": "delivered", "valueQuantity": _quantity(r["delivered_nl"], "uL")},
        {"url": "depth", "valueQuantity": {"value": Decimal(r["depth_um"]).scaleb(-3), "unit": "mm",
                                           "system": UCUM, "code": "mm"}},
        {"url": "partial", "valueBoolean": bool(r["partial"])},
        {"url": "record", "valueString": f"{r['device_serial']}/{r['record_id']}"},  # u32: too big for valueInteger
    ]}


def _notes(rec: SessionRecord) -> list[dict]:
    notes = []
    for n in rec.notes:
        text = f"Adverse event: {n['text']}" if n["kind"] == "adverse-event" else n["text"]
        note = {"text": text, "time": n["at"]}
        if n["author"]:
            note["authorString"] = n["author"]
        notes.append(note)
    for a in rec.alarms:
        notes.append({"text": f"Device alarm {a['code']} (detail {a['detail']}, device time {a['device_time_ms']} ms)",
                      "time": a["received_at"]})
    if rec.primes:
        notes.append({"text": f"Primed {ul(rec.primed_nl)} uL in {len(rec.primes)} prime(s): purged into the air, "
                              "not administered, not counted in the dose."})
    if rec.synced:
        notes.append({"text": "Session run on another host; this record was created when its deliveries were synced "
                              "from the device: the effective period is when they were received."})
    return notes
