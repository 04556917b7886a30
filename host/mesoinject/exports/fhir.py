"""FHIR R4 export: one MedicationAdministration per session.

Built as plain JSON and validated by the fhir.resources models (R4B: MedicationAdministration,
Medication and Device are unchanged from R4), so what we write is what the library parses.

- medication: a contained Medication, code.text = drug (a plan's step: its own), batch.lotNumber = lot, a
  `syringe-channel` extension naming the two-drug gun's syringe it came from
- subject: the pseudonymous patient reference as an identifier (no Patient resource, no names)
- device: a contained Device (serial number, board, firmware)
- dosage: route intradermal (SNOMED CT), dose = total delivered in mL (primes not counted),
  text = human-readable summary with every point, and one `point-dose` extension per
  delivery (point, kind, programmed, delivered, depth, partial, channel, vacuum held, device record)
- note: clinician notes, adverse events, device alarms, primes
- a session that ran a treatment plan: one MedicationAdministration per step (a drug given at one site),
  dosage.site the step's zone (SNOMED CT body structure where mesoinject.zones has one, else text only),
  each point's extension naming its site too; a single session's export is then a Bundle of them
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationadministration import MedicationAdministration

import dataclasses
import json

from .. import zones
from .common import SessionRecord, ul

# Placeholder naming base for our identifier systems and extension; a clinic's own
# FHIR server profile would replace it (one place to change).
NAMING_BASE = "https://mesoinject.example/fhir"
POINT_DOSE_EXTENSION = f"{NAMING_BASE}/StructureDefinition/point-dose"
CHANNEL_EXTENSION = f"{NAMING_BASE}/StructureDefinition/syringe-channel"
UCUM = "http://unitsofmeasure.org"
INTRADERMAL = {"coding": [{"system": "http://snomed.info/sct", "code": "372464004", "display": "Intradermal route"}],
               "text": "intradermal"}


def export(store, session_id: int | None) -> str:
    if session_id is not None:
        found = administrations(SessionRecord.load(store, session_id))
        if len(found) == 1:
            return found[0].model_dump_json(indent=1) + "\n"
        return _collection(found).model_dump_json(indent=1) + "\n"
    return bundle(store).model_dump_json(indent=1) + "\n"


def bundle(store) -> Bundle:
    """Every session, one MedicationAdministration each (one per step for a plan), as a collection."""
    return _collection([ma for s in store.sessions() for ma in administrations(SessionRecord.load(store, s["id"]))])


def site(zone_id: str | None) -> dict | None:
    """A zone as FHIR's dosage.site: its SNOMED CT body structure where there is one, its name always."""
    zone = zones.ZONES.get(zone_id or "")
    if zone is None:
        return {"text": zone_id} if zone_id else None
    concept: dict = {"text": zone.en}
    if zone.snomed:
        concept["coding"] = [{"system": zones.SNOMED, "code": zone.snomed, "display": zone.snomed_display}]
    return concept


def administrations(rec: SessionRecord) -> list[MedicationAdministration]:
    """A session's administrations: one, or one per step of the plan it ran (each at its zone)."""
    plan = json.loads(rec.session.get("plan_json") or "null")
    if not plan:
        return [medication_administration(rec)]
    found = []
    for step in plan["steps"]:
        program = step["program"]
        # a step gives its own drug from its own channel (a plan of two drugs); steps stored before: the session's
        session = {**rec.session, "drug": program.get("drug") or rec.session["drug"], "channel": program.get("channel"),
                   "program_name": program["name"], "technique": program["technique"],
                   "planned": program["count"], "volume_nl": program["volume_nl"], "depth_um": program["depth_um"],
                   "step": step["step"], "zone": step["zone"], "steps": len(plan["steps"]), "plan_name": plan["name"]}
        first = step["step"] == 1  # the session's primes, alarms and notes go once, on its first step
        part = dataclasses.replace(rec, session=session, given=[r for r in rec.given if r.get("plan_step") == step["step"]],
                                   primes=rec.primes if first else [], alarms=rec.alarms if first else [],
                                   notes=rec.notes if first else [])
        found.append(medication_administration(part))
    return found


def _collection(resources: list[MedicationAdministration]) -> Bundle:
    entries = [{"resource": r.model_dump(mode="json")} for r in resources]
    return Bundle.model_validate({"resourceType": "Bundle", "type": "collection",
                                  "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                  "entry": entries})


def medication_administration(rec: SessionRecord) -> MedicationAdministration:
    s = rec.session
    step = s.get("step")
    data: dict = {
        "resourceType": "MedicationAdministration",
        "id": f"mesoinject-session-{s['id']}" + (f"-step-{step}" if step else ""),
        "identifier": _identifiers(s),
        "status": _status(rec),
        "contained": [_medication(s, _channel(rec)), _device(s)],
        "medicationReference": {"reference": "#medication", "display": s["drug"]},
        "subject": _subject(s["patient_ref"]),
        "effectivePeriod": {k: v for k, v in (("start", s["started_at"]), ("end", s["ended_at"])) if v},
        "dosage": _dosage(rec),
        "device": [{"reference": "#device", "display": f"mesoinject {s['board']} {s['device_serial']}"}],
    }
    if step and step > 1:
        data["note"] = [{"text": f"Step {step} of {s['steps']} of the plan {s['plan_name']!r}: the session's primes, "
                                 f"alarms and notes are on mesoinject-session-{s['id']}-step-1."}]
    if data["status"] == "stopped":
        data["statusReason"] = [{"text": "; ".join([s["outcome"]] + [a["code"] for a in rec.alarms])}]
    if s["operator"]:
        data["performer"] = [{"actor": {"display": s["operator"]}}]
    notes = _notes(rec)
    if notes:
        data["note"] = [*data.get("note", []), *notes]
    return MedicationAdministration.model_validate(data)


def _status(rec: SessionRecord) -> str:
    outcome = rec.session["outcome"]
    if outcome is None:
        return "in-progress"
    if rec.synced:
        return "unknown"  # run on another host: we hold its records, not how it ended
    if not rec.given:
        return "not-done"
    if rec.session.get("step"):  # a plan's step: done when each of its points was, whole
        return "completed" if len(rec.given) >= rec.session["planned"] and not rec.partial else "stopped"
    return "completed" if outcome == "complete" else "stopped"


def _identifiers(s: dict) -> list[dict]:
    ids = [{"system": f"{NAMING_BASE}/records-session", "value": str(s["id"])}]
    if s.get("step"):
        ids.append({"system": f"{NAMING_BASE}/plan-step", "value": f"{s['id']}:{s['step']}"})
    if s["device_session"] is not None:
        ids.append({"system": f"{NAMING_BASE}/device-session", "value": f"{s['device_serial']}:{s['device_session']}"})
    return ids


def _medication(s: dict, channel: int | None) -> dict:
    med: dict = {"resourceType": "Medication", "id": "medication", "code": {"text": s["drug"]}}
    if s["drug_lot"]:
        med["batch"] = {"lotNumber": s["drug_lot"]}
    if channel:  # which of a two-drug gun's syringes held it
        med["extension"] = [{"url": CHANNEL_EXTENSION, "valueInteger": channel}]
    return med


def _channel(rec: SessionRecord) -> int | None:
    """The syringe channel the administration's drug came from: the step's program's, else its records' (one
    administration is one drug); None when stored before two-drug firmware."""
    if rec.session.get("channel"):
        return rec.session["channel"]
    found = {r.get("channel") for r in rec.given + rec.primes if r.get("channel")}
    return found.pop() if len(found) == 1 else None


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
    dosage = {"text": head + (given if rec.given else " Nothing delivered."),
              "route": INTRADERMAL,
              "dose": _quantity(rec.delivered_nl, "mL"),
              "extension": [_point_extension(r) for r in rec.given]}
    where = site(s.get("zone"))
    if where:
        dosage["site"] = where
    return dosage


def _point_extension(r: dict) -> dict:
    return {"url": POINT_DOSE_EXTENSION, "extension": [
        {"url": "point", "valueInteger": r["point"]},
        {"url": "kind", "valueCode": r["kind"]},
        {"url": "programmed", "valueQuantity": _quantity(r["programmed_nl"], "uL")},
        {"url": "delivered", "valueQuantity": _quantity(r["delivered_nl"], "uL")},
        {"url": "depth", "valueQuantity": {"value": Decimal(r["depth_um"]).scaleb(-3), "unit": "mm",
                                           "system": UCUM, "code": "mm"}},
        {"url": "partial", "valueBoolean": bool(r["partial"])},
    ] + ([{"url": "channel", "valueInteger": r["channel"]}] if r.get("channel") else []) + (
        [{"url": "vacuum", "valueQuantity": {"value": r["vacuum_kpa"], "unit": "kPa", "system": UCUM, "code": "kPa"}}]
        if r.get("vacuum_kpa") else []) + [
        {"url": "record", "valueString": f"{r['device_serial']}/{r['record_id']}"},  # u32: too big for valueInteger
    ] + ([{"url": "site", "valueCodeableConcept": site(r["zone"])}] if r.get("zone") else [])}


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
