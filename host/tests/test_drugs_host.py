"""Two drugs (issue 17 part 3) on the host: a program names its syringe channel; records and exports carry
the channel each administration came from, beside its drug."""

import csv
import io
import json
import types

import pytest

from mesoinject import program as programs
from mesoinject.client import DeviceRefused
from mesoprotocol import rules, spec

POINT = {"name": "p", "technique": "point-by-point", "drug": "lidocaine", "syringe": "BD 1 mL",
         "volume_per_point": "10 uL", "depth": "2 mm", "points": 5, "needle": {"gauge": 30, "length": "4 mm"}}
IDENT = types.SimpleNamespace(serial="SIM-0042", board="sim", firmware="0.1.0")


@pytest.mark.req("SR-110")
def test_a_program_names_its_channel_and_configure_carries_it():
    assert programs.parse(POINT).configure_fields()["channel"] == 1  # a one-syringe program of before
    prog = programs.parse(dict(POINT, channel=2))
    assert prog.configure_fields()["channel"] == 2
    assert prog.configure_tuple()[spec.CFG_CHANNEL] == 2
    prog.check_limits(programs.DEFAULT_LIMITS)  # the device's own rules accept it


@pytest.mark.req("SR-110")
@pytest.mark.parametrize("channel", [0, 3, "2", True, 1.5])
def test_a_channel_the_gun_has_not_is_refused_naming_the_field(channel):
    with pytest.raises(programs.ProgramError) as refused:
        programs.parse(dict(POINT, channel=channel))
    assert refused.value.field == "channel" and "1 or 2" in str(refused.value)


@pytest.mark.req("SR-111")
def test_the_devices_channel_refusals_say_what_to_do():
    prime = DeviceRefused(dict(command=spec.PRIME, reason=spec.NACK_CHANNEL, field=1, state=spec.STATE_CONFIGURED,
                               value=2000, limit=3000))
    assert "prime at least 3 uL (prime_volume) to flush it" in str(prime), str(prime)
    arm = DeviceRefused(dict(command=spec.ARM, reason=spec.NACK_CHANNEL, field=0, state=spec.STATE_PRIMED, value=2,
                             limit=1))
    assert "channel 1's drug" in str(arm) and "prime this channel" in str(arm)
    assert rules.F_CHANNEL == spec.CFG_CHANNEL + 1


@pytest.mark.req("SR-110")
def test_records_and_exports_carry_the_channel_and_drug_of_each_administration(store):
    prog = programs.parse(dict(POINT, channel=2, drug="hyaluronic acid"))
    sid = store.begin_session(IDENT, prog, patient_ref="P-1", operator="dr x", device_session=7)
    for rid, channel in ((1, 2), (2, 2), (3, 0)):  # 0: a record of earlier firmware
        store.add_delivery(sid, "SIM-0042", dict(record_id=rid, session=7, point=rid, kind=spec.KIND_POINT, flags=0,
                                                 programmed_nl=10000, delivered_nl=10000, depth_um=2000,
                                                 time_ms=rid, channel=channel))
    store.end_session(sid, "complete")
    rows = list(csv.DictReader(io.StringIO(store.export("csv", sid))))
    assert [(r["channel"], r["drug"]) for r in rows] == [("2", "hyaluronic acid"), ("2", "hyaluronic acid"),
                                                         ("", "hyaluronic acid")]
    assert [r["channel"] for r in json.loads(store.export("json", sid))] == [2, 2, ""]


@pytest.mark.req("SR-171")
def test_records_and_exports_carry_each_doses_vacuum_and_fhir_the_drug_and_channel_of_each_administration(store):
    pytest.importorskip("fhir.resources")
    prog = programs.parse(dict(POINT, channel=2, drug="hyaluronic acid"))
    sid = store.begin_session(IDENT, prog, patient_ref="P-1", operator="dr x", device_session=7)
    for rid, vacuum in ((1, 37), (2, 41)):  # as DELIVERY and RECORD carry it
        store.add_delivery(sid, "SIM-0042", dict(record_id=rid, session=7, point=rid, kind=spec.KIND_POINT, flags=0,
                                                 programmed_nl=10000, delivered_nl=10000, depth_um=2000,
                                                 time_ms=rid, channel=2, vacuum_kpa=vacuum))
    store.add_delivery(sid, "SIM-0042", dict(record_id=3, session=7, point=3, kind=spec.KIND_POINT, flags=0,
                                             programmed_nl=10000, delivered_nl=10000, depth_um=2000, time_ms=3,
                                             channel=2))  # stored without one (earlier firmware's RECORD)
    store.end_session(sid, "complete")
    rows = list(csv.DictReader(io.StringIO(store.export("csv", sid))))
    assert [r["vacuum_kpa"] for r in rows] == ["37", "41", ""]
    assert [r["vacuum_kpa"] for r in json.loads(store.export("json", sid))] == [37, 41, ""]
    fhir = json.loads(store.export("fhir", sid))
    medication = fhir["contained"][0]
    assert medication["code"]["text"] == "hyaluronic acid" == fhir["medicationReference"]["display"]
    assert medication["extension"] == [{"url": "https://mesoinject.example/fhir/StructureDefinition/syringe-channel",
                                        "valueInteger": 2}]
    points = [{e["url"]: e for e in x["extension"]} for x in fhir["dosage"]["extension"]]
    assert [p["channel"]["valueInteger"] for p in points] == [2, 2, 2]
    assert [p["vacuum"]["valueQuantity"]["value"] for p in points if "vacuum" in p] == [37, 41]
