"""The anatomical zones a treatment plan names: id, English and French names, SNOMED CT code.

A plan step says where it goes by zone id ("forehead", "scalp", "lumbar"); records, reports and
FHIR exports carry the id and, where SNOMED CT has a body structure for the zone, its code (FHIR
MedicationAdministration.dosage.site). Zones a mesotherapist draws that SNOMED CT does not name as
one structure (the periorbital "crow's feet", the jowls) have no code: the export then carries the
text only, never a guessed code.

Codes: SNOMED CT International body structures (descendants of 442083009 |Anatomical or acquired
body structure|, the FHIR body-site value set http://hl7.org/fhir/ValueSet/body-site), as used in
published FHIR examples and implementation guides. Check them against a licensed SNOMED CT browser
for your national edition before clinical use.
"""

from __future__ import annotations

import dataclasses

SNOMED = "http://snomed.info/sct"


@dataclasses.dataclass(frozen=True)
class Zone:
    id: str
    en: str
    fr: str
    region: str  # face | body: which diagram draws it
    snomed: str | None = None  # SNOMED CT body structure concept id, None where none fits the zone
    snomed_display: str | None = None

    def name(self, lang: str = "en") -> str:
        return self.fr if lang == "fr" else self.en


ZONES: dict[str, Zone] = {z.id: z for z in (
    # face (rejuvenation: nappage or micro-papules over each unit)
    Zone("face", "Whole face", "Visage entier", "face", "89545001", "Face structure"),
    Zone("forehead", "Forehead", "Front", "face", "52795006", "Forehead structure"),
    Zone("periorbital", "Periorbital (crow's feet)", "Région périorbitaire (pattes-d'oie)", "face"),
    Zone("cheeks", "Cheeks", "Joues", "face", "60819002", "Buccal region of face"),
    Zone("nasolabial", "Nasolabial folds", "Sillons nasogéniens", "face"),
    Zone("perioral", "Perioral", "Région péribuccale", "face"),
    Zone("jawline", "Jawline", "Ovale du visage", "face"),
    Zone("neck", "Neck", "Cou", "body", "45048000", "Neck structure"),
    Zone("decollete", "Décolleté (anterior chest)", "Décolleté", "body", "63698005", "Anterior chest wall structure"),
    Zone("scalp", "Scalp", "Cuir chevelu", "face", "41695006", "Scalp structure"),
    # body (lipolysis, cellulite, pain: point-by-point along lines or grids)
    Zone("abdomen", "Abdomen", "Abdomen", "body", "818983003", "Abdomen structure"),
    Zone("thighs", "Thighs", "Cuisses", "body", "68367000", "Thigh structure"),
    Zone("buttocks", "Buttocks", "Fesses", "body", "46862004", "Buttock structure"),
    Zone("lumbar", "Lumbar region (lower back)", "Région lombaire", "body", "37822005", "Lower back structure"),
)}


class UnknownZone(ValueError):
    pass


def get(zone_id: str) -> Zone:
    """The zone of this id, or UnknownZone listing the ids there are."""
    try:
        return ZONES[zone_id]
    except (KeyError, TypeError):
        raise UnknownZone(f"{zone_id!r} is not a zone; known zones: {', '.join(ZONES)}") from None


def name(zone_id: str | None, lang: str = "en") -> str:
    """A stored zone id in words ('' for none; an id this version does not know, as it is)."""
    if not zone_id:
        return ""
    zone = ZONES.get(zone_id)
    return zone.name(lang) if zone else zone_id
