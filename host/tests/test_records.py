"""The SQLite record store: durable, idempotent per (device, record id), exportable."""

import csv
import io
import json
import sqlite3

import pytest

from mesoinject import program as programs
from mesoinject.client import Identity
from mesoinject.records import SCHEMA_VERSION, RecordConflict, RecordStore
from mesoprotocol import spec

from test_program import PROGRAMS

IDENT = Identity(1, "0.1.0", "sim", "SIM-0042", 1, 1000000, "POWER_ON", 3, {})


def delivery(record_id, point=0, delivered=29998, flags=0, kind=spec.KIND_POINT):
    return dict(record_id=record_id, point=point, kind=kind, flags=flags, programmed_nl=30000,
                delivered_nl=delivered, depth_um=3000, time_ms=1000 + record_id)


@pytest.fixture
def store(tmp_path):
    s = RecordStore(tmp_path / "r.db")
    yield s
    s.close()


@pytest.fixture
def session(store):
    prog = programs.load(PROGRAMS / "point-by-point.toml")
    return store.begin_session(IDENT, prog, patient_ref="P-17", operator="dr x")


def test_replayed_delivery_is_stored_once(store, session):
    assert store.add_delivery(session, "SIM-0042", delivery(1))
    assert not store.add_delivery(session, "SIM-0042", delivery(1))  # the same event again
    assert store.add_delivery(session, "SIM-0043", delivery(1))  # another device's record 1
    assert len(store.deliveries(session)) == 2


def test_reused_record_id_with_other_content_raises(store, session):
    store.add_delivery(session, "SIM-0042", delivery(1))
    with pytest.raises(RecordConflict, match="record counter was reset"):
        store.add_delivery(session, "SIM-0042", delivery(1, point=5, delivered=100))
    assert store.deliveries(session)[0]["delivered_nl"] == 29998  # the stored one is kept


def test_records_survive_reopening_and_are_wal(tmp_path, store, session):
    store.add_delivery(session, "SIM-0042", delivery(7, flags=spec.FLAG_PARTIAL, delivered=1234))
    store.end_session(session, "aborted")
    other = sqlite3.connect(tmp_path / "r.db")  # a second process sees the committed row
    assert other.execute("SELECT delivered_nl, partial FROM deliveries").fetchall() == [(1234, 1)]
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    reopened = RecordStore(tmp_path / "r.db")
    assert reopened.sessions()[0]["outcome"] == "aborted"


def test_a_newer_schema_is_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "new.db")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="upgrade mesoinject"):
        RecordStore(tmp_path / "new.db")


def test_prime_is_recorded_but_not_counted(store, session):
    store.add_delivery(session, "SIM-0042", delivery(1, kind=spec.KIND_PRIME, delivered=10000))
    store.add_delivery(session, "SIM-0042", delivery(2, point=0))
    row = store.sessions()[0]
    assert (row["points_done"], row["delivered_nl"]) == (1, 29998)


def test_exports_one_row_per_delivery(store, session):
    for i in range(3):
        store.add_delivery(session, "SIM-0042", delivery(i + 1, point=i))
    rows = list(csv.DictReader(io.StringIO(store.export("csv"))))
    assert [r["point"] for r in rows] == ["0", "1", "2"]
    assert rows[0]["patient_ref"] == "P-17" and rows[0]["drug"] == "lidocaine 1%"
    data = json.loads(store.export("json", session))
    assert [d["record_id"] for d in data] == [1, 2, 3]
