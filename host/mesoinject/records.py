"""Durable treatment records in SQLite: sessions, every delivery, device alarms.

A delivery is committed before anything else looks at it, and stored once per
(device serial, record id): a replayed event can never be counted twice.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import pathlib
import sqlite3

import platformdirs

from mesoprotocol import spec

SCHEMA_VERSION = 1
MIGRATIONS = {
    1: """
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        outcome TEXT,                 -- complete | aborted | fault | interrupted | NULL while running
        device_serial TEXT NOT NULL,
        board TEXT NOT NULL,
        firmware TEXT NOT NULL,
        program_name TEXT NOT NULL,
        technique TEXT NOT NULL,
        drug TEXT NOT NULL,
        syringe TEXT NOT NULL,
        needle TEXT NOT NULL,
        depth_um INTEGER NOT NULL,
        volume_nl INTEGER NOT NULL,
        planned INTEGER NOT NULL,
        cadence_mhz INTEGER NOT NULL,
        program_json TEXT NOT NULL,   -- the whole program as sent
        patient_ref TEXT,             -- pseudonymous, never a name
        operator TEXT
    );
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        session_id INTEGER REFERENCES sessions(id),
        device_serial TEXT NOT NULL,
        record_id INTEGER NOT NULL,
        point INTEGER NOT NULL,
        kind TEXT NOT NULL,           -- point | shot | test-dose | prime
        partial INTEGER NOT NULL,
        flags INTEGER NOT NULL,
        programmed_nl INTEGER NOT NULL,
        delivered_nl INTEGER NOT NULL,
        depth_um INTEGER NOT NULL,
        device_time_ms INTEGER NOT NULL,
        received_at TEXT NOT NULL,
        UNIQUE (device_serial, record_id)
    );
    CREATE TABLE alarms (
        id INTEGER PRIMARY KEY,
        session_id INTEGER REFERENCES sessions(id),
        device_serial TEXT NOT NULL,
        code TEXT NOT NULL,
        detail INTEGER NOT NULL,
        device_time_ms INTEGER NOT NULL,
        received_at TEXT NOT NULL
    );
    """,
}
EXPORT_COLUMNS = ("session_id", "device_serial", "record_id", "point", "kind", "partial", "programmed_nl",
                  "delivered_nl", "depth_um", "device_time_ms", "received_at", "drug", "patient_ref", "operator")


class RecordConflict(RuntimeError):
    """A device reused a record id for a different delivery."""


def default_path() -> pathlib.Path:
    return pathlib.Path(platformdirs.user_data_dir("mesoinject")) / "records.db"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class RecordStore:
    def __init__(self, path: str | pathlib.Path):
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a committed delivery survives a power cut
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} has schema {version}, newer than this mesoinject ({SCHEMA_VERSION}); upgrade mesoinject")
        for v in range(version + 1, SCHEMA_VERSION + 1):
            with self.db:
                self.db.execute("BEGIN")
                for statement in _statements(MIGRATIONS[v]):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={v}")

    def close(self) -> None:
        self.db.close()

    def begin_session(self, identity, program, *, patient_ref: str | None, operator: str | None) -> int:
        needle = f"{program.needle_gauge}G {program.needle_length_um / 1000:g} mm"
        with self.db:
            cur = self.db.execute(
                "INSERT INTO sessions (started_at, device_serial, board, firmware, program_name, technique, drug,"
                " syringe, needle, depth_um, volume_nl, planned, cadence_mhz, program_json, patient_ref, operator)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (_now(), identity.serial, identity.board, identity.firmware, program.name, program.technique,
                 program.drug, program.syringe_name, needle, program.depth_um, program.volume_nl, program.count,
                 program.cadence_mhz, json.dumps(dataclasses.asdict(program)), patient_ref, operator))
        return cur.lastrowid

    def end_session(self, session_id: int, outcome: str) -> None:
        with self.db:
            self.db.execute("UPDATE sessions SET ended_at=?, outcome=? WHERE id=?", (_now(), outcome, session_id))

    def add_delivery(self, session_id: int, device_serial: str, f: dict) -> bool:
        """Store one DELIVERY event; False if this (device, record id) was already stored.

        A stored id with different content is not a replay but a device whose record
        counter went back (flash erased): that raises, it is never silently dropped.
        """
        with self.db:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO deliveries (session_id, device_serial, record_id, point, kind, partial, flags,"
                " programmed_nl, delivered_nl, depth_um, device_time_ms, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (session_id, device_serial, f["record_id"], f["point"], spec.KIND_NAMES[f["kind"]],
                 1 if f["flags"] & spec.FLAG_PARTIAL else 0, f["flags"], f["programmed_nl"], f["delivered_nl"],
                 f["depth_um"], f["time_ms"], _now()))
        if cur.rowcount == 1:
            return True
        old = self.db.execute("SELECT point, programmed_nl, delivered_nl, device_time_ms FROM deliveries"
                              " WHERE device_serial=? AND record_id=?", (device_serial, f["record_id"])).fetchone()
        if tuple(old) != (f["point"], f["programmed_nl"], f["delivered_nl"], f["time_ms"]):
            raise RecordConflict(f"device {device_serial} sent record {f['record_id']} again with different content "
                                 f"(stored {tuple(old)}, now {f}): its record counter was reset; records kept as stored")
        return False

    def add_alarm(self, session_id: int | None, device_serial: str, f: dict) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO alarms (session_id, device_serial, code, detail, device_time_ms, received_at)"
                " VALUES (?,?,?,?,?,?)",
                (session_id, device_serial, spec.ALARM_NAMES[f["code"]], f["detail"], f["time_ms"], _now()))

    def sessions(self) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT s.*, COUNT(d.id) FILTER (WHERE d.kind != 'prime') AS points_done,"
            " COALESCE(SUM(d.delivered_nl) FILTER (WHERE d.kind != 'prime'), 0) AS delivered_nl"
            " FROM sessions s LEFT JOIN deliveries d ON d.session_id = s.id GROUP BY s.id ORDER BY s.id").fetchall()

    def deliveries(self, session_id: int | None = None) -> list[sqlite3.Row]:
        where, args = ("WHERE d.session_id = ?", (session_id,)) if session_id is not None else ("", ())
        return self.db.execute(
            "SELECT d.*, s.drug, s.patient_ref, s.operator FROM deliveries d JOIN sessions s ON s.id = d.session_id "
            f"{where} ORDER BY d.session_id, d.record_id", args).fetchall()

    def export(self, fmt: str, session_id: int | None = None) -> str:
        rows = [{k: row[k] for k in EXPORT_COLUMNS} for row in self.deliveries(session_id)]
        if fmt == "json":
            return json.dumps(rows, indent=1) + "\n"
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
