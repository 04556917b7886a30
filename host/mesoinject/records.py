"""Durable treatment records: sessions, every delivery, device alarms, notes.

A SQLite file by default (WAL, synchronous=FULL); a postgresql:// URL gives the
same schema, migrations and behaviour on a server that several laptops share.
A delivery is committed before anything else looks at it, and stored once per
(device serial, record id): a replayed event can never be counted twice. Every
write is one transaction: it is all stored, or nothing is and RecordStoreError
says why (the device then keeps the record unacknowledged and sends it again).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import pathlib
import re
import sqlite3
import time
from typing import Any

import platformdirs

from mesoprotocol import spec

from . import extras

SCHEMA_VERSION = 9
MIGRATIONS: dict[int, str | dict[str, str]] = {
    1: """
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        outcome TEXT,                 -- complete | aborted | fault | interrupted | synced | NULL while running
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
    2: """
    -- the u32 tag the host sends in CONFIGURE, journalled by the device with every record
    ALTER TABLE sessions ADD COLUMN device_session INTEGER;
    ALTER TABLE sessions ADD COLUMN drug_lot TEXT;
    CREATE UNIQUE INDEX sessions_device_session ON sessions (device_serial, device_session)
        WHERE device_session IS NOT NULL;
    -- the tag each record came with (NULL for records stored before v2)
    ALTER TABLE deliveries ADD COLUMN device_session INTEGER;
    CREATE INDEX deliveries_session ON deliveries (session_id);
    CREATE TABLE session_notes (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES sessions(id),
        at TEXT NOT NULL,
        author TEXT,
        kind TEXT NOT NULL CHECK (kind IN ('note', 'adverse-event')),
        text TEXT NOT NULL
    );
    """,
    3: {  # the journal epoch: a device whose flash was erased counts its record ids again in a new epoch
        "sqlite": """
        CREATE TABLE deliveries_v3 (
            id INTEGER PRIMARY KEY,
            session_id INTEGER REFERENCES sessions(id),
            device_serial TEXT NOT NULL,
            record_id INTEGER NOT NULL,
            point INTEGER NOT NULL,
            kind TEXT NOT NULL,
            partial INTEGER NOT NULL,
            flags INTEGER NOT NULL,
            programmed_nl INTEGER NOT NULL,
            delivered_nl INTEGER NOT NULL,
            depth_um INTEGER NOT NULL,
            device_time_ms INTEGER NOT NULL,
            received_at TEXT NOT NULL,
            device_session INTEGER,
            journal_epoch INTEGER NOT NULL DEFAULT 0,   -- 0: stored before epochs, or firmware without them
            UNIQUE (device_serial, journal_epoch, record_id)
        );
        INSERT INTO deliveries_v3 (id, session_id, device_serial, record_id, point, kind, partial, flags,
            programmed_nl, delivered_nl, depth_um, device_time_ms, received_at, device_session)
            SELECT id, session_id, device_serial, record_id, point, kind, partial, flags, programmed_nl,
            delivered_nl, depth_um, device_time_ms, received_at, device_session FROM deliveries;
        DROP TABLE deliveries;
        ALTER TABLE deliveries_v3 RENAME TO deliveries;
        CREATE INDEX deliveries_session ON deliveries (session_id);
        """,
        "postgres": """
        ALTER TABLE deliveries ADD COLUMN journal_epoch INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE deliveries DROP CONSTRAINT deliveries_device_serial_record_id_key;
        ALTER TABLE deliveries ADD CONSTRAINT deliveries_record UNIQUE (device_serial, journal_epoch, record_id);
        """,
        "both": """
        -- an alarm journalled on the device (record_id, journal_epoch) is stored once (NULL: not journalled)
        ALTER TABLE alarms ADD COLUMN record_id INTEGER;
        ALTER TABLE alarms ADD COLUMN journal_epoch INTEGER;
        CREATE UNIQUE INDEX alarms_record ON alarms (device_serial, journal_epoch, record_id)
            WHERE record_id IS NOT NULL;
        """,
    },
    4: """
    -- how the session ended in words (complete with 1 partial point, stopped on OCCLUSION): outcome stays the code
    ALTER TABLE sessions ADD COLUMN outcome_text TEXT;
    """,
    5: """
    -- treatment plans (mesoinject.plan): the plan a session ran (NULL: one program), and the step and
    -- anatomical zone (mesoinject.zones id) of each delivery (NULL: not part of a plan, or synced later)
    ALTER TABLE sessions ADD COLUMN plan_json TEXT;
    ALTER TABLE deliveries ADD COLUMN plan_step INTEGER;
    ALTER TABLE deliveries ADD COLUMN zone TEXT;
    CREATE INDEX sessions_patient ON sessions (patient_ref);
    -- where a point went, tapped on the injection map (map coordinates, mesoinject.zonemap): optional
    CREATE TABLE point_marks (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES sessions(id),
        plan_step INTEGER,
        zone TEXT NOT NULL,
        point INTEGER,                -- the point (from 1) given last when tapped, NULL if none yet
        x REAL NOT NULL,
        y REAL NOT NULL,
        at TEXT NOT NULL
    );
    """,
    6: """
    -- two drugs: the syringe channel each record came from (NULL for records stored before v6)
    ALTER TABLE deliveries ADD COLUMN channel INTEGER;
    """,
    7: """
    -- skin contact: the least vacuum (kPa below ambient) a multi-needle head held while the dose ran, as the
    -- device journalled it (0: a switch head, a prime, NULL: stored before v7)
    ALTER TABLE deliveries ADD COLUMN vacuum_kpa INTEGER;
    """,
    8: """
    -- one RESET per boot (PROTOCOL.md 8): the boot an alarm was raised in (the device's boot_count, NULL: stored
    -- before v8, or a journalled alarm synced later, whose record has no boot), and the boot a session began in.
    -- A RESET is stored once per (serial, journal epoch, boot) however the host learnt of it (its event, STATUS,
    -- HELLO) and however often it reconnected. A RESET of a later boot than its session's cut the session short
    ALTER TABLE alarms ADD COLUMN boot_count INTEGER;
    CREATE UNIQUE INDEX alarms_reset ON alarms (device_serial, journal_epoch, boot_count)
        WHERE code = 'RESET' AND boot_count IS NOT NULL;
    ALTER TABLE sessions ADD COLUMN boot_count INTEGER;
    """,
    9: """
    -- the journal a session's records belong to (IDENTITY journal_epoch as it began, a placeholder's: its records').
    -- A boot_count names a boot of one journal only: a device whose flash was erased has a new epoch and counts its
    -- boots from 1 again, so a session's boot_count without its epoch cannot say which restart cut it short.
    -- Filled in from the session's deliveries where they are of one epoch (NULL: no record says, stored before v9)
    ALTER TABLE sessions ADD COLUMN journal_epoch INTEGER;
    UPDATE sessions SET journal_epoch = (SELECT MIN(d.journal_epoch) FROM deliveries d WHERE d.session_id = sessions.id)
        WHERE (SELECT COUNT(DISTINCT d.journal_epoch) FROM deliveries d WHERE d.session_id = sessions.id) = 1
    """,
}
TABLES = {"sessions", "deliveries", "alarms", "session_notes", "point_marks"}
# outcomes a device's journal may fill in (the host's own, once stored, stand; 'interrupted' is the
# host losing sight of a session, which the device's record then says more about)
DEVICE_OUTCOMES = {spec.END_COMPLETE: "complete", spec.END_ABORTED: "aborted"}
_REPLACEABLE_OUTCOMES = ("interrupted", "synced")
NOTE_KINDS = ("note", "adverse-event")
SYNCED_PROGRAM = "unknown (synced from device)"
URL_SCHEMES = ("postgresql://", "postgres://")
_PG_MIGRATION_LOCK = 0x6D65736F  # pg_advisory_xact_lock key: one laptop migrates, the others wait


class RecordStoreError(RuntimeError):
    """The records database can't be used as it is; the message says what is wrong and what to do.

    Nothing of the failed operation was written.
    """


class RecordConflict(RuntimeError):
    """A device reused a record id for a different delivery."""


def default_path() -> pathlib.Path:
    return pathlib.Path(platformdirs.user_data_dir("mesoinject")) / "records.db"


def is_url(db: str | os.PathLike | None) -> bool:
    return isinstance(db, str) and db.startswith(URL_SCHEMES)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class RecordStore:
    """One class for both backends; the differences live in the few `_` helpers that test self.postgres."""

    def __init__(self, db: str | os.PathLike, *, busy_timeout_s: float = 5.0):
        self.postgres = is_url(db)
        self.path = None if self.postgres else pathlib.Path(db)
        self.where = _redacted(str(db)) if self.postgres else str(self.path)
        self.busy_timeout_s = busy_timeout_s
        self._url = str(db) if self.postgres else None
        self.db: Any = None  # sqlite3 or psycopg: one DB-API surface, the dialect helpers below
        try:
            with self._errors("open"):
                self.db = self._connect_postgres() if self.postgres else self._connect_sqlite()
                self._migrate()
                if not self.postgres:  # after the version check: a database we refuse is left byte for byte
                    self._wal()
        except BaseException:
            self.close()
            raise

    def _connect_sqlite(self) -> sqlite3.Connection:
        assert self.path is not None  # a file store
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=FULL")  # a committed delivery survives a power cut
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def _wal(self) -> None:
        # WAL: readers beside a writer. Switching to it needs the file to itself, and SQLite does not wait for
        # that with the busy timeout: hosts opening a new file together met "database is locked" at once
        # while another only read it. Retried here within the busy timeout; nothing to do once it is WAL.
        deadline = time.monotonic() + self.busy_timeout_s
        while self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)  # back off: another host holds the file for a moment

    def _connect_postgres(self):
        extras.require("postgres", "a PostgreSQL record store", "psycopg")
        import psycopg
        from psycopg.rows import dict_row

        db = psycopg.connect(self._url, autocommit=True, row_factory=dict_row, connect_timeout=10)
        # a row another laptop holds locked: wait as long as SQLite's busy timeout, then say so
        db.execute(f"SET lock_timeout = {int(self.busy_timeout_s * 1000)}")
        return db

    def reopen(self) -> RecordStore:
        """Another connection to the same store (e.g. for reads on another thread)."""
        return RecordStore(self._url or str(self.path), busy_timeout_s=self.busy_timeout_s)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- schema ---

    def _migrate(self) -> None:
        version = self._version()  # SQLite: the first read, where a file that is no database fails
        if version == SCHEMA_VERSION:
            return
        self._refuse_newer(version)
        with self._tx("migrate the schema"):
            if self.postgres:
                self._execute("SELECT pg_advisory_xact_lock(?)", (_PG_MIGRATION_LOCK,))
            version = self._version()  # read again under the lock: another process may have migrated
            self._refuse_newer(version)
            if version == 0 and self._tables() & TABLES:
                raise RecordStoreError(f"{self.where} already holds tables named like ours but no mesoinject schema "
                                       "version: it is not a mesoinject records database; pass another --db")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                script = MIGRATIONS[v]
                if isinstance(script, dict):  # a step the two dialects take differently, then a common part
                    script = script["postgres" if self.postgres else "sqlite"] + ";" + script.get("both", "")
                for statement in _statements(script):
                    self._execute(_pg_ddl(statement) if self.postgres else statement)
            self._set_version(SCHEMA_VERSION)

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise RecordStoreError(
                f"{self.where} has schema version {version}, newer than this mesoinject understands "
                f"({SCHEMA_VERSION}): upgrade mesoinject (pip install -U mesoinject); the database is left as it is")

    def _version(self) -> int:
        if not self.postgres:
            return self.db.execute("PRAGMA user_version").fetchone()[0]
        # a catalog scan, not to_regclass(): that reads a cache an advisory lock doesn't refresh, and
        # would miss the table another laptop's migration just committed
        if "schema_version" not in self._tables():
            return 0
        return self._execute("SELECT version FROM schema_version").fetchone()["version"]

    def _set_version(self, version: int) -> None:
        if not self.postgres:
            self.db.execute(f"PRAGMA user_version={int(version)}")  # transactional: rolled back with the rest
            return
        self._execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        self._execute("DELETE FROM schema_version")
        self._execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def _tables(self) -> set[str]:
        sql = ("SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()" if self.postgres
               else "SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row["name"] for row in self._execute(sql).fetchall()}

    # --- the dialect layer: placeholders, inserted ids, transactions, errors ---

    def _execute(self, sql: str, args: tuple = ()):
        return self.db.execute(sql.replace("?", "%s") if self.postgres else sql, args)

    def _rows(self, sql: str, args: tuple = ()) -> list[dict]:
        with self._errors("read"):
            self._reconnect_if_lost()
            return [dict(row) for row in self._execute(sql, args).fetchall()]

    def _insert_new(self, sql: str, args: tuple) -> int:
        """The new row's id, for an INSERT that either adds a row or raises (no ON CONFLICT)."""
        new_id = self._insert(sql, args)
        if new_id is None:
            raise RecordStoreError(f"{self.where} did not add the row it was asked to add")
        return new_id

    def _insert(self, sql: str, args: tuple) -> int | None:
        """The new row's id, or None when ON CONFLICT DO NOTHING skipped it."""
        if self.postgres:
            row = self._execute(sql + " RETURNING id", args).fetchone()
            return row["id"] if row else None
        cur = self._execute(sql, args)
        return cur.lastrowid if cur.rowcount == 1 else None

    @contextlib.contextmanager
    def _tx(self, action: str):
        """One write transaction: committed whole, or rolled back and reported as RecordStoreError."""
        with self._errors(action):
            if self.postgres:
                self._reconnect_if_lost()
                with self.db.transaction():
                    yield
                return
            self.db.execute("BEGIN IMMEDIATE")  # the write lock now, so a busy database fails before any change
            try:
                yield
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.rollback()
                raise

    def _reconnect_if_lost(self) -> None:
        # a server restart or a network drop breaks the connection: the operation that met it
        # failed (and its record stayed on the device); the next one gets a new connection
        if self.postgres and self.db.broken:
            self.db = self._connect_postgres()

    @contextlib.contextmanager
    def _errors(self, action: str):
        db_errors: tuple = (sqlite3.Error,)
        if self.postgres:
            import psycopg

            db_errors += (psycopg.Error,)
        try:
            yield
        except db_errors as e:
            raise RecordStoreError(self._explain(e, action)) from e

    def _explain(self, e: Exception, action: str) -> str:
        text = (str(e).strip().splitlines() or [type(e).__name__])[0]
        low, state, w = text.lower(), getattr(e, "sqlstate", None), self.where
        if "locked" in low or "busy" in low or state == "55P03":
            return (f"{w} is locked by another program holding a write transaction (another mesoinject, a "
                    f"database browser?): waited {self.busy_timeout_s:g} s, nothing was written. Close the other "
                    "program and try again")
        if "readonly" in low or "read-only" in low or state == "25006":
            return (f"{w} is read-only (file permissions, a read-only disk or server), so it could not {action}; "
                    "nothing was written. Make it writable, or pass --db with a writable database")
        if "not a database" in low or "malformed" in low:
            return (f"{w} is not a SQLite database, or it is corrupt ({text}); nothing was written. Keep the file "
                    "for inspection, restore the records from a backup, or pass --db with another file")
        if "unable to open" in low:
            return f"cannot open {w} ({text}): check that its folder exists and is writable, or pass --db"
        if self.postgres and self.db is None:
            return f"cannot connect to PostgreSQL at {w}: {text}. Check the URL, that the server runs, and the network"
        return f"{w}: could not {action}: {text}"

    # --- writing ---

    def begin_session(self, identity, program, *, patient_ref: str | None, operator: str | None,
                      device_session: int | None = None, drug_lot: str | None = None, plan=None) -> int:
        """plan: the mesoinject.plan.Plan this session runs (program: its first step); the session then
        carries the plan's name and its whole count."""
        if device_session is not None and not 0 <= device_session < 1 << 32:
            raise ValueError(f"device_session {device_session} is not a u32")
        needle = program.head_name  # "30G 4 mm", "5-needle 30G 4 mm" (spec.HEADS)
        with self._tx("begin a session"):
            if device_session is not None:
                taken = self._execute("SELECT id FROM sessions WHERE device_serial=? AND device_session=?",
                                      (identity.serial, device_session)).fetchone()
                if taken:
                    raise RecordStoreError(f"device {identity.serial} session tag {device_session} is already "
                                           f"session {taken['id']} in {self.where}: begin with a new tag")
            name, planned, technique, plan_json = program.name, program.count, program.technique, None
            if plan is not None:
                techniques = {step.program.technique for step in plan.steps}
                name, planned, plan_json = plan.name, plan.count, json.dumps(plan.record())
                technique = techniques.pop() if len(techniques) == 1 else "plan"
            return self._insert_new(
                "INSERT INTO sessions (started_at, device_serial, board, firmware, program_name, technique, drug,"
                " syringe, needle, depth_um, volume_nl, planned, cadence_mhz, program_json, patient_ref, operator,"
                " device_session, drug_lot, plan_json, boot_count, journal_epoch)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (_now(), identity.serial, identity.board, identity.firmware, name, technique,
                 program.drug, program.syringe_name, needle, program.depth_um, program.volume_nl, planned,
                 program.cadence_mhz, json.dumps(dataclasses.asdict(program)), patient_ref, operator,
                 device_session, drug_lot, plan_json, getattr(identity, "boot_count", None),
                 getattr(identity, "journal_epoch", None)))

    def session_for_device(self, device_serial: str, device_session: int, *, board: str = "?",
                           firmware: str = "?", epoch: int | None = None) -> int:
        """The session begun with this device's tag; a placeholder for one this store never saw (synced),
        of journal `epoch` (its records').

        Idempotent, also for two laptops syncing at once: the unique index on
        (device_serial, device_session) lets one placeholder in.
        """
        find = "SELECT id FROM sessions WHERE device_serial=? AND device_session=?"
        with self._tx("find the session of a device record"):
            row = self._execute(find, (device_serial, device_session)).fetchone()
            if row:
                return row["id"]
            now = _now()
            new = self._insert(
                "INSERT INTO sessions (started_at, ended_at, outcome, device_serial, board, firmware, program_name,"
                " technique, drug, syringe, needle, depth_um, volume_nl, planned, cadence_mhz, program_json,"
                " device_session, journal_epoch)"
                " VALUES (?,?,'synced',?,?,?,?,'unknown','unknown','unknown','unknown',0,0,0,0,'{}',?,?)"
                " ON CONFLICT DO NOTHING",
                (now, now, device_serial, board, firmware, SYNCED_PROGRAM, device_session, epoch))
            return new if new is not None else self._execute(find, (device_serial, device_session)).fetchone()["id"]

    def end_session(self, session_id: int, outcome: str, text: str | None = None) -> None:
        """outcome: the code; text: the same in words (mesoinject.outcomes), as the operator was told."""
        with self._tx("end the session"):
            self._execute("UPDATE sessions SET ended_at=?, outcome=?, outcome_text=? WHERE id=?",
                          (_now(), outcome, text, session_id))

    def reopen_session(self, session_id: int) -> None:
        """The remaining points of a session stopped on an alarm are given: it is running again."""
        with self._tx("reopen the session"):
            self._execute("UPDATE sessions SET ended_at=NULL, outcome=NULL, outcome_text=NULL WHERE id=?",
                          (session_id,))

    def add_delivery(self, session_id: int, device_serial: str, f: dict, *, plan_step: int | None = None,
                     zone: str | None = None) -> bool:
        """Store one DELIVERY (event or journal record); False if this (device, record id) was already stored.
        plan_step, zone: where it went, for a session that runs a plan (the host knows; the device does not).

        Records are named by (journal epoch, record id): a device whose flash was erased starts a
        new epoch. A stored id with different content in the same epoch is not a replay but a
        device whose record counter went back: that raises, it is never silently dropped.
        """
        epoch = f.get("epoch", 0)
        with self._tx("store a delivery"):
            new = self._insert(
                "INSERT INTO deliveries (session_id, device_serial, record_id, point, kind, partial, flags,"
                " programmed_nl, delivered_nl, depth_um, device_time_ms, received_at, device_session, journal_epoch,"
                " plan_step, zone, channel, vacuum_kpa) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (session_id, device_serial, f["record_id"], f["point"], spec.KIND_NAMES[f["kind"]],
                 1 if f["flags"] & spec.FLAG_PARTIAL else 0, f["flags"], f["programmed_nl"], f["delivered_nl"],
                 f["depth_um"], f["time_ms"], _now(), f.get("session"), epoch, plan_step, zone, f.get("channel") or None,
                 f.get("vacuum_kpa")))
            if new is not None:
                return True
            old = self._execute("SELECT point, programmed_nl, delivered_nl, device_time_ms FROM deliveries"
                                " WHERE device_serial=? AND journal_epoch=? AND record_id=?",
                                (device_serial, epoch, f["record_id"])).fetchone()
        stored = tuple(old[k] for k in ("point", "programmed_nl", "delivered_nl", "device_time_ms"))
        if stored != (f["point"], f["programmed_nl"], f["delivered_nl"], f["time_ms"]):
            raise RecordConflict(f"device {device_serial} sent record {f['record_id']} again with different content "
                                 f"(stored {stored}, now {f}): its record counter was reset; records kept as stored")
        return False

    def add_alarm(self, session_id: int | None, device_serial: str, f: dict) -> bool:
        """Store one alarm; False if its journal record (epoch, record_id) was already stored, or it is the
        RESET of a boot (epoch, boot_count) already stored (PROTOCOL.md 8 "One RESET per boot").

        An alarm the device journalled also ends its session as 'fault' if the host could not
        record how it ended (see apply_outcome)."""
        record_id = f.get("record_id") or None  # 0: not journalled (a RESET, or a full journal)
        boot = f.get("boot_count")  # the boot it was raised in (None: not known)
        epoch = f.get("epoch", 0) if record_id or boot is not None else None
        with self._tx("store an alarm"):
            new = self._insert(
                "INSERT INTO alarms (session_id, device_serial, code, detail, device_time_ms, received_at, record_id,"
                " journal_epoch, boot_count) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (session_id, device_serial, spec.ALARM_NAMES[f["code"]], f["detail"], f["time_ms"], _now(),
                 record_id, epoch, boot))
            if new is not None and record_id and session_id is not None:
                self._outcome(session_id, "fault")
        return new is not None

    def apply_outcome(self, session_id: int, outcome: str) -> bool:
        """How the device says a session ended (its journal's END record), where the host could not
        store it: a session still running, interrupted or synced; never one the host closed itself.
        True if it changed the session."""
        with self._tx("record the session's outcome"):
            return self._outcome(session_id, outcome)

    def _outcome(self, session_id: int, outcome: str) -> bool:
        return self._execute("UPDATE sessions SET outcome=?, outcome_text=NULL, ended_at=COALESCE(ended_at, ?)"
                      " WHERE id=? AND"
                      f" (outcome IS NULL OR outcome IN {_REPLACEABLE_OUTCOMES!r})", (outcome, _now(), session_id)).rowcount > 0

    def earlier_epochs(self, device_serial: str, epoch: int) -> int:
        """Records this store holds of the device under other journal epochs, if it has none yet
        under `epoch` (the device's flash was erased since); 0 otherwise."""
        count = ("SELECT COUNT(*) AS n FROM deliveries WHERE device_serial = ? AND journal_epoch "
                 + "%s ?")
        if self._rows(count % "=", (device_serial, epoch))[0]["n"]:
            return 0
        return self._rows(count % "!=", (device_serial, epoch))[0]["n"]

    def add_note(self, session_id: int, text: str, *, kind: str = "note", author: str | None = None) -> int:
        """A free-text note or an adverse event on a session's record; returns the note's id."""
        if kind not in NOTE_KINDS:
            raise ValueError(f"note kind {kind!r} is not one of {NOTE_KINDS}")
        if not text.strip():
            raise ValueError("a note needs some text")
        with self._tx("add a note"):
            if not self._execute("SELECT 1 FROM sessions WHERE id=?", (session_id,)).fetchone():
                raise RecordStoreError(f"there is no session {session_id} in {self.where}; "
                                       "`mesoinject records list` shows the sessions")
            return self._insert_new("INSERT INTO session_notes (session_id, at, author, kind, text) VALUES (?,?,?,?,?)",
                                (session_id, _now(), author, kind, text.strip()))

    def add_mark(self, session_id: int, zone: str, x: float, y: float, *, plan_step: int | None = None,
                 point: int | None = None) -> int:
        """Where a point went, as the clinician tapped it on the injection map; returns the mark's id."""
        with self._tx("mark a point on the map"):
            return self._insert_new("INSERT INTO point_marks (session_id, plan_step, zone, point, x, y, at)"
                                    " VALUES (?,?,?,?,?,?,?)", (session_id, plan_step, zone, point, x, y, _now()))

    def marks(self, session_id: int) -> list[dict]:
        return self._rows("SELECT * FROM point_marks WHERE session_id = ? ORDER BY id", (session_id,))

    # --- reading ---

    def sessions(self, patient_ref: str | None = None) -> list[dict]:
        """Every session (or one patient's), oldest first, with what it delivered (primes excluded)."""
        where, args = ("WHERE s.patient_ref = ?", (patient_ref,)) if patient_ref is not None else ("", ())
        return self._rows(
            "SELECT s.*, COUNT(d.id) FILTER (WHERE d.kind != 'prime') AS points_done,"
            " CAST(COALESCE(SUM(d.delivered_nl) FILTER (WHERE d.kind != 'prime'), 0) AS BIGINT) AS delivered_nl,"
            " (SELECT COUNT(*) FROM session_notes n WHERE n.session_id = s.id AND n.kind = 'adverse-event')"
            f" AS adverse_events FROM sessions s LEFT JOIN deliveries d ON d.session_id = s.id {where}"
            " GROUP BY s.id ORDER BY s.id", args)

    def drug_totals(self, patient_ref: str) -> list[dict]:
        """What one patient received of each drug over time: sessions, total (primes excluded), first
        and last session; by drug, then by month (YYYY-MM, UTC) in `months`."""
        rows = self._rows(
            "SELECT s.drug, SUBSTR(s.started_at, 1, 7) AS month, COUNT(DISTINCT s.id) AS sessions,"
            " CAST(COALESCE(SUM(d.delivered_nl) FILTER (WHERE d.kind != 'prime'), 0) AS BIGINT) AS delivered_nl,"
            " MIN(s.started_at) AS first, MAX(s.started_at) AS last"
            " FROM sessions s LEFT JOIN deliveries d ON d.session_id = s.id WHERE s.patient_ref = ?"
            " GROUP BY s.drug, SUBSTR(s.started_at, 1, 7) ORDER BY s.drug, month", (patient_ref,))
        drugs: dict[str, dict] = {}
        for r in rows:
            d = drugs.setdefault(r["drug"], {"drug": r["drug"], "sessions": 0, "delivered_nl": 0, "first": r["first"],
                                             "last": r["last"], "months": []})
            d["sessions"] += r["sessions"]
            d["delivered_nl"] += r["delivered_nl"]
            d["first"], d["last"] = min(d["first"], r["first"]), max(d["last"], r["last"])
            d["months"].append({"month": r["month"], "sessions": r["sessions"], "delivered_nl": r["delivered_nl"]})
        return list(drugs.values())

    def session(self, session_id: int) -> dict | None:
        rows = self._rows("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return rows[0] if rows else None

    def deliveries(self, session_id: int | None = None) -> list[dict]:
        where, args = ("WHERE d.session_id = ?", (session_id,)) if session_id is not None else ("", ())
        return self._rows(
            "SELECT d.*, s.drug, s.drug_lot, s.patient_ref, s.operator FROM deliveries d"
            f" JOIN sessions s ON s.id = d.session_id {where} ORDER BY d.session_id, d.record_id", args)

    def zone_totals(self, session_id: int) -> list[dict]:
        """What each zone of a plan session received, by step: the stored records (primes excluded)."""
        return self._rows(
            "SELECT plan_step, zone, COUNT(*) AS records, CAST(SUM(partial) AS BIGINT) AS partial,"
            " CAST(SUM(delivered_nl) AS BIGINT) AS delivered_nl FROM deliveries"
            " WHERE session_id = ? AND kind != 'prime' GROUP BY plan_step, zone ORDER BY plan_step", (session_id,))

    def alarms(self, session_id: int) -> list[dict]:
        return self._rows("SELECT * FROM alarms WHERE session_id = ? ORDER BY id", (session_id,))

    def cut_short_session(self, device_serial: str, epoch: int, boot_count: int) -> int | None:
        """The session a restart into boot `boot_count` of journal `epoch` cut short: the device's latest session
        begun in an earlier boot of that journal, if no host saw it end (running, or interrupted: the host lost it);
        None otherwise. (A session begun in this boot - the one that found the RESET at its start - was cut short by
        nothing; one of another journal neither: the device's flash was erased since, its boots counted again.)"""
        rows = self._rows("SELECT id, outcome FROM sessions WHERE device_serial = ? AND journal_epoch = ?"
                          " AND boot_count < ? ORDER BY id DESC LIMIT 1", (device_serial, epoch, boot_count))
        return rows[0]["id"] if rows and rows[0]["outcome"] in (None, "interrupted") else None

    def notes(self, session_id: int) -> list[dict]:
        return self._rows("SELECT * FROM session_notes WHERE session_id = ? ORDER BY id", (session_id,))

    def export(self, fmt: str, session_id: int | None = None, *, lang: str | None = None) -> str:
        """csv | json | fhir | html; see mesoinject.exports. lang: the html report's (default: the clinic file's)."""
        from . import exports

        return exports.export(self, fmt, session_id, lang=lang)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _pg_ddl(statement: str) -> str:
    # SQLite's INTEGER is 64-bit and INTEGER PRIMARY KEY numbers rows itself; PostgreSQL's is 32-bit
    # (record ids and session tags are u32) and needs an identity column
    statement = statement.replace("INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    return re.sub(r"\bINTEGER\b", "BIGINT", statement)


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    url = re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", url)
    return re.sub(r"(password=)[^&]*", r"\1***", url)
