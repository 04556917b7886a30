"""The record store: durable, idempotent per (device, record id), migrated in place, clear about bad databases.

Tests taking `store` or `db` run twice: on a SQLite file and on a real PostgreSQL
server (conftest.py). The file-level failures (locked, read-only, corrupt) are SQLite's.
"""

import csv
import io
import json
import sqlite3
import threading
import types

import pytest

from mesoinject import program as programs
from mesoinject.records import (MIGRATIONS, SCHEMA_VERSION, SYNCED_PROGRAM, RecordConflict, RecordStore,
                                RecordStoreError, _pg_ddl, _statements)
from mesoprotocol import spec

from test_program import PROGRAMS

IDENT = types.SimpleNamespace(serial="SIM-0042", board="sim", firmware="0.1.0")  # what the store reads of an Identity
U32_MAX = (1 << 32) - 1


def delivery(record_id, point=0, delivered=29998, flags=0, kind=spec.KIND_POINT, session=7):
    return dict(record_id=record_id, session=session, point=point, kind=kind, flags=flags, programmed_nl=30000,
                delivered_nl=delivered, depth_um=3000, time_ms=1000 + record_id)


@pytest.fixture
def program():
    return programs.load(PROGRAMS / "point-by-point.toml")


@pytest.fixture
def session(store, program):
    return store.begin_session(IDENT, program, patient_ref="P-17", operator="dr x", device_session=7,
                               drug_lot="L2301")


def raw(db):
    """A second, plain connection to the same database (another process, another laptop)."""
    if isinstance(db, str):
        import psycopg

        return psycopg.connect(db, autocommit=True)
    return sqlite3.connect(db, isolation_level=None)


def sql(db, statement):
    return statement.replace("?", "%s") if isinstance(db, str) else statement


def set_version(db, version):
    con = raw(db)
    if isinstance(db, str):
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        con.execute("DELETE FROM schema_version")
        con.execute("INSERT INTO schema_version VALUES (%s)", (version,))
    else:
        con.execute(f"PRAGMA user_version={version}")
    con.close()


def schema_version(db):
    con = raw(db)
    version = (con.execute("SELECT version FROM schema_version") if isinstance(db, str)
               else con.execute("PRAGMA user_version")).fetchone()[0]
    con.close()
    return version


def make_v1(db):
    """A database as mesoinject wrote it before schema 2, with one session and one delivery."""
    con = raw(db)
    for statement in _statements(MIGRATIONS[1]):
        con.execute(_pg_ddl(statement) if isinstance(db, str) else statement)
    con.execute(sql(db, "INSERT INTO sessions (started_at, device_serial, board, firmware, program_name, technique,"
                        " drug, syringe, needle, depth_um, volume_nl, planned, cadence_mhz, program_json) VALUES"
                        " ('2024-05-01T10:00:00+00:00', 'SIM-0042', 'sim', '0.1.0', 'old', 'point-by-point',"
                        " 'saline', 'BD 1 mL', '30G 4 mm', 3000, 30000, 20, 0, '{}')"))
    con.execute(sql(db, "INSERT INTO deliveries (session_id, device_serial, record_id, point, kind, partial, flags,"
                        " programmed_nl, delivered_nl, depth_um, device_time_ms, received_at)"
                        " VALUES (1, 'SIM-0042', 1, 0, 'point', 0, 0, 30000, 29990, 3000, 5, 'then')"))
    con.close()
    set_version(db, 1)


# --- behaviour, on both backends ---

@pytest.mark.req("SR-054")
def test_replayed_delivery_is_stored_once(store, session):
    assert store.add_delivery(session, "SIM-0042", delivery(1))
    assert not store.add_delivery(session, "SIM-0042", delivery(1))  # the same event again
    assert store.add_delivery(session, "SIM-0043", delivery(1))  # another device's record 1
    assert len(store.deliveries(session)) == 2


@pytest.mark.req("SR-054")
def test_reused_record_id_with_other_content_raises(store, session):
    store.add_delivery(session, "SIM-0042", delivery(1))
    with pytest.raises(RecordConflict, match="record counter was reset"):
        store.add_delivery(session, "SIM-0042", delivery(1, point=5, delivered=100))
    assert store.deliveries(session)[0]["delivered_nl"] == 29998  # the stored one is kept


def test_u32_record_ids_and_session_tags_fit(store, program):
    # PostgreSQL's INTEGER is 32-bit signed: the schema must use BIGINT there
    sid = store.begin_session(IDENT, program, patient_ref=None, operator=None, device_session=U32_MAX)
    assert store.add_delivery(sid, "SIM-0042", delivery(U32_MAX, session=U32_MAX))
    assert store.deliveries(sid)[0]["record_id"] == U32_MAX
    assert store.session_for_device("SIM-0042", U32_MAX) == sid


def test_records_survive_reopening(db, store, session):
    store.add_delivery(session, "SIM-0042", delivery(7, flags=spec.FLAG_PARTIAL, delivered=1234))
    store.end_session(session, "aborted")
    reopened = RecordStore(db)
    row = reopened.sessions()[0]
    assert (row["outcome"], row["drug_lot"], row["device_session"], row["delivered_nl"]) == \
        ("aborted", "L2301", 7, 1234)
    assert reopened.deliveries(session)[0]["partial"] == 1
    reopened.close()


@pytest.mark.req("SR-059")
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
    assert rows[0]["patient_ref"] == "P-17" and rows[0]["drug"] == "lidocaine 1%" and rows[0]["drug_lot"] == "L2301"
    data = json.loads(store.export("json", session))
    assert [d["record_id"] for d in data] == [1, 2, 3] and data[0]["device_session"] == 7


def test_session_for_device_finds_the_session_begun_with_that_tag(store, session):
    assert store.session_for_device("SIM-0042", 7) == session
    assert len(store.sessions()) == 1


def test_records_of_an_unknown_session_get_one_placeholder(store, session):
    first = store.session_for_device("SIM-0042", 99, board="pico", firmware="0.2.0", epoch=0x1111)
    assert first != session
    assert store.session_for_device("SIM-0042", 99) == first  # idempotent
    assert store.session_for_device("SIM-0043", 99) not in (first, session)  # the tag is per device
    placeholder = store.session(first)
    assert placeholder["program_name"] == SYNCED_PROGRAM and placeholder["outcome"] == "synced"
    assert (placeholder["board"], placeholder["firmware"], placeholder["drug"], placeholder["planned"]) == \
        ("pico", "0.2.0", "unknown", 0)
    assert placeholder["journal_epoch"] == 0x1111  # its records' journal
    assert store.add_delivery(first, "SIM-0042", delivery(1, session=99))
    assert not store.add_delivery(store.session_for_device("SIM-0042", 99), "SIM-0042", delivery(1, session=99))


@pytest.mark.req("SR-054")
def test_two_hosts_on_one_database_share_placeholders_and_replays(db, store, session):
    other = RecordStore(db)  # a second laptop (or a second process)
    try:
        assert other.session_for_device("SIM-0042", 7) == session
        tag_99 = store.session_for_device("SIM-0042", 99)
        assert other.session_for_device("SIM-0042", 99) == tag_99
        assert store.add_delivery(session, "SIM-0042", delivery(1))
        assert not other.add_delivery(session, "SIM-0042", delivery(1))
    finally:
        other.close()


def test_a_session_tag_is_used_once_per_device(store, session, program):
    with pytest.raises(RecordStoreError, match="tag 7 is already session"):
        store.begin_session(IDENT, program, patient_ref=None, operator=None, device_session=7)
    assert len(store.sessions()) == 1
    with pytest.raises(ValueError, match="u32"):
        store.begin_session(IDENT, program, patient_ref=None, operator=None, device_session=1 << 32)


def test_notes_and_adverse_events(store, session):
    store.add_note(session, "papules at L4-L5 as planned", author="dr x")
    store.add_note(session, "  vasovagal reaction, recovered in 5 min  ", kind="adverse-event")
    notes = store.notes(session)
    assert [(n["kind"], n["text"], n["author"]) for n in notes] == [
        ("note", "papules at L4-L5 as planned", "dr x"),
        ("adverse-event", "vasovagal reaction, recovered in 5 min", None)]
    assert store.sessions()[0]["adverse_events"] == 1
    with pytest.raises(RecordStoreError, match="no session 404"):
        store.add_note(404, "lost")
    with pytest.raises(ValueError, match="kind"):
        store.add_note(session, "x", kind="gossip")
    with pytest.raises(ValueError, match="text"):
        store.add_note(session, "   ")
    assert len(store.notes(session)) == 2


def test_a_v1_database_is_migrated_in_place(db):
    make_v1(db)
    store = RecordStore(db)
    try:
        (old,) = store.sessions()
        assert (old["program_name"], old["delivered_nl"], old["device_session"], old["drug_lot"]) == \
            ("old", 29990, None, None)
        store.add_note(old["id"], "migrated")
        assert store.session_for_device("SIM-0042", 5) != old["id"]  # NULL tags never match
    finally:
        store.close()
    assert schema_version(db) == SCHEMA_VERSION


def test_a_failed_migration_leaves_the_database_as_it_was(db):
    make_v1(db)
    con = raw(db)
    con.execute("CREATE TABLE session_notes (x TEXT)")  # makes schema 2's last step fail, after its ALTERs
    con.close()
    with pytest.raises(RecordStoreError, match="could not migrate"):
        RecordStore(db)
    con = raw(db)
    columns = ([r[0] for r in con.execute("SELECT column_name FROM information_schema.columns"
                                          " WHERE table_name = 'sessions'")] if isinstance(db, str)
               else [r[1] for r in con.execute("PRAGMA table_info(sessions)")])
    con.close()
    assert "drug_lot" not in columns and schema_version(db) == 1  # the ALTERs were rolled back with the rest


def test_a_newer_schema_is_refused_and_left_alone(db):
    RecordStore(db).close()
    set_version(db, 99)
    with pytest.raises(RecordStoreError, match="schema version 99, newer .* upgrade mesoinject"):
        RecordStore(db)
    with pytest.raises(RuntimeError):  # what callers of the v1 store caught
        RecordStore(db)


def test_a_database_of_something_else_is_refused(db):
    con = raw(db)
    con.execute("CREATE TABLE sessions (id INTEGER PRIMARY KEY, user_name TEXT)")  # another app's table
    con.close()
    with pytest.raises(RecordStoreError, match="not a mesoinject records database"):
        RecordStore(db)


def together(n, fn):
    """Run fn(i) on n threads released at the same instant; their results, or the first exception."""
    barrier, results, errors = threading.Barrier(n), [None] * n, []

    def run(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as e:  # reported to the test below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results


def test_hosts_starting_together_migrate_once(db):
    stores = together(4, lambda i: RecordStore(db))
    assert schema_version(db) == SCHEMA_VERSION
    for s in stores:
        s.close()


def test_hosts_syncing_the_same_device_together_get_one_placeholder(db):
    stores = [RecordStore(db) for _ in range(4)]
    ids = together(4, lambda i: stores[i].session_for_device("SIM-0042", 1234))
    assert len(set(ids)) == 1
    stored = together(4, lambda i: stores[i].add_delivery(ids[i], "SIM-0042", delivery(1, session=1234)))
    assert sorted(stored) == [False, False, False, True]  # the same record, stored by exactly one
    assert len(stores[0].sessions()) == 1 and len(stores[0].deliveries()) == 1
    for s in stores:
        s.close()


# --- SQLite files that can't be used ---

def test_sqlite_is_wal_with_its_version_in_user_version(tmp_path, program):
    store = RecordStore(tmp_path / "r.db")
    store.begin_session(IDENT, program, patient_ref=None, operator=None)
    other = sqlite3.connect(tmp_path / "r.db")  # a second process sees the committed row
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert other.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1
    other.close()
    store.close()


@pytest.mark.req("SR-051")
def test_a_locked_database_times_out_with_a_clear_error_and_writes_nothing(tmp_path, program):
    path = tmp_path / "r.db"
    store = RecordStore(path, busy_timeout_s=0.2)
    sid = store.begin_session(IDENT, program, patient_ref=None, operator=None)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer in the middle of a transaction
    with pytest.raises(RecordStoreError, match="locked by another program.*waited 0.2 s, nothing was written"):
        store.add_delivery(sid, "SIM-0042", delivery(1))
    with pytest.raises(RecordStoreError, match="locked"):
        store.add_note(sid, "x")
    assert store.deliveries(sid) == []  # reading still works in WAL mode
    holder.execute("ROLLBACK")
    holder.close()
    assert store.add_delivery(sid, "SIM-0042", delivery(1))  # the device resent it: stored once now
    store.close()


def test_a_migration_waits_for_a_lock_and_leaves_v1_intact(tmp_path):
    path = tmp_path / "r.db"
    make_v1(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(RecordStoreError, match="locked"):
        RecordStore(path, busy_timeout_s=0.1)
    holder.execute("ROLLBACK")
    assert holder.execute("PRAGMA user_version").fetchone()[0] == 1
    holder.close()
    store = RecordStore(path)
    assert store.sessions()[0]["program_name"] == "old"
    store.close()


def test_a_read_only_database_reads_but_refuses_writes_clearly(read_only_file):
    store = RecordStore(read_only_file)
    (row,) = store.sessions()  # list and export still work
    with pytest.raises(RecordStoreError, match="read-only .* nothing was written"):
        store.add_delivery(row["id"], "SIM-0042", delivery(1))
    with pytest.raises(RecordStoreError, match="read-only"):
        store.add_note(row["id"], "x")
    assert store.deliveries() == [] and store.notes(row["id"]) == []
    store.close()


def test_a_corrupt_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "r.db"
    garbage = bytes(range(256)) * 64
    path.write_bytes(garbage)
    with pytest.raises(RecordStoreError, match="not a SQLite database, or it is corrupt.*backup"):
        RecordStore(path)
    assert path.read_bytes() == garbage


def test_a_newer_sqlite_schema_is_left_untouched(tmp_path):
    path = tmp_path / "r.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version=99")
    con.close()
    before = path.read_bytes()
    with pytest.raises(RecordStoreError, match="upgrade mesoinject"):
        RecordStore(path)
    assert path.read_bytes() == before


def make_v4(db):
    """A database as mesoinject wrote it before plans (schema 4): one program session and its delivery."""
    make_v1(db)
    con = raw(db)
    for v in (2, 3, 4):
        script = MIGRATIONS[v]
        if isinstance(script, dict):
            script = script["postgres" if isinstance(db, str) else "sqlite"] + ";" + script.get("both", "")
        for statement in _statements(script):
            con.execute(_pg_ddl(statement) if isinstance(db, str) else statement)
    con.close()
    set_version(db, 4)


@pytest.mark.req("SR-147")
def test_a_v4_database_gains_plan_step_and_zone_and_keeps_its_records(db):
    from mesoinject import plan as plans

    make_v4(db)
    store = RecordStore(db)
    try:
        (old,) = store.deliveries()
        assert (old["delivered_nl"], old["plan_step"], old["zone"]) == (29990, None, None)  # not part of a plan
        assert old["channel"] is None  # schema 6: stored before two-drug firmware
        assert old["vacuum_kpa"] is None  # schema 7: stored before the journal kept the vacuum
        plan = plans.load("lumbar-pain")
        sid = store.begin_session(IDENT, plan.steps[0].program, patient_ref="P-9", operator="dr x", device_session=9,
                                  plan=plan)
        store.add_delivery(sid, IDENT.serial, delivery(2, session=9), plan_step=1, zone="lumbar")
        assert [(r["plan_step"], r["zone"], r["delivered_nl"]) for r in store.zone_totals(sid)] == [(1, "lumbar", 29998)]
        assert json.loads(store.session(sid)["plan_json"])["steps"][0]["zone"] == "lumbar"
        assert store.session(sid)["program_name"] == plan.name
        store.add_mark(sid, "lumbar", 432.5, 130.0, plan_step=1, point=1)
        assert [(m["zone"], m["x"], m["point"]) for m in store.marks(sid)] == [("lumbar", 432.5, 1)]
    finally:
        store.close()
    assert schema_version(db) == SCHEMA_VERSION == 9  # 6: deliveries.channel (two drugs); 7: deliveries.vacuum_kpa
    # 8: alarms.boot_count, sessions.boot_count (one RESET per boot); 9: sessions.journal_epoch


def make_v7(db):
    """A database as mesoinject wrote it before boots were kept (schema 7): a session and a RESET found at its start,
    stored with no boot (and stored again, as the old host did when it began twice on the same held RESET)."""
    make_v4(db)
    con = raw(db)
    for v in (5, 6, 7):
        for statement in _statements(MIGRATIONS[v]):
            con.execute(_pg_ddl(statement) if isinstance(db, str) else statement)
    for _ in range(2):
        con.execute(sql(db, "INSERT INTO alarms (session_id, device_serial, code, detail, device_time_ms, received_at)"
                            " VALUES (1, 'SIM-0042', 'RESET', 2, 12, 'then')"))
    con.close()
    set_version(db, 7)


@pytest.mark.req("SR-207")
def test_a_v7_database_keeps_its_alarms_and_then_stores_one_reset_per_boot(db):
    make_v7(db)
    store = RecordStore(db)
    try:
        old = store.alarms(1)
        assert [(a["code"], a["detail"], a["boot_count"]) for a in old] == [("RESET", 2, None)] * 2  # kept as they were
        assert store.session(1)["boot_count"] is None
        reset = {"code": spec.ALARM_RESET, "detail": spec.RESET_WATCHDOG, "time_ms": 12, "record_id": 0,
                 "epoch": 0x2A5A0D03, "boot_count": 41}
        assert store.add_alarm(1, IDENT.serial, reset) is True
        assert store.add_alarm(None, IDENT.serial, dict(reset, time_ms=15)) is False  # the same boot, told again
        assert store.add_alarm(1, IDENT.serial, dict(reset, epoch=7)) is True  # another journal: another boot 41
        assert store.add_alarm(1, "SIM-0043", reset) is True  # another device
        assert store.add_alarm(1, IDENT.serial, dict(reset, boot_count=42, detail=spec.RESET_POWER_ON)) is True
        occlusion = {"code": spec.ALARM_OCCLUSION, "detail": 400, "time_ms": 20, "record_id": 0, "boot_count": 42}
        assert store.add_alarm(1, IDENT.serial, occlusion) and store.add_alarm(1, IDENT.serial, occlusion)  # not a RESET
        assert [(a["code"], a["boot_count"]) for a in store.alarms(1)][2:] == \
            [("RESET", 41), ("RESET", 41), ("RESET", 41), ("RESET", 42), ("OCCLUSION", 42), ("OCCLUSION", 42)]
    finally:
        store.close()
    assert schema_version(db) == SCHEMA_VERSION


@pytest.mark.req("SR-207")
def test_a_restart_goes_on_the_session_it_cut_short(store, program):
    epoch = 0x2A5A0D03
    ident = types.SimpleNamespace(serial="SIM-0042", board="sim", firmware="0.1.0", boot_count=40, journal_epoch=epoch)
    first = store.begin_session(ident, program, patient_ref="P-1", operator="dr x", device_session=1)
    assert (store.session(first)["boot_count"], store.session(first)["journal_epoch"]) == (40, epoch)
    assert store.cut_short_session("SIM-0042", epoch, 40) is None  # its own boot: found at its start, cut nothing
    assert store.cut_short_session("SIM-0042", epoch, 41) == first  # still running as far as any host saw
    store.end_session(first, "interrupted", "interrupted: LINK LOST")
    assert store.cut_short_session("SIM-0042", epoch, 41) == first  # the host lost it: the restart is its last word
    assert store.cut_short_session("SIM-0043", epoch, 41) is None  # another device
    after = store.begin_session(types.SimpleNamespace(**dict(vars(ident), boot_count=41)), program, patient_ref="P-1",
                                operator="dr x", device_session=2)
    assert store.cut_short_session("SIM-0042", epoch, 41) == first  # the session that found the RESET cut nothing short
    store.end_session(after, "complete", "complete")
    store.end_session(first, "complete", "complete")
    assert store.cut_short_session("SIM-0042", epoch, 41) is None  # it ended: the restart came after


@pytest.mark.req("SR-207")
def test_a_restart_after_the_flash_was_erased_cuts_short_no_session_of_the_old_journal(store, program):
    # the device's flash erased (a new journal epoch, its boots counted from 1 again) after a session its host lost:
    # the new journal's boot 2 is no restart of that session. Before, sessions kept no epoch and the RESET went on it
    from mesoinject import boots

    old = types.SimpleNamespace(serial="SIM-0042", board="sim", firmware="0.1.0", boot_count=1, journal_epoch=0x1111)
    lost = store.begin_session(old, program, patient_ref="P-1", operator="dr x", device_session=1)
    store.end_session(lost, "interrupted", "interrupted: LINK LOST")
    erased = types.SimpleNamespace(**dict(vars(old), boot_count=2, journal_epoch=0x2222, reset_cause="WATCHDOG"))
    assert boots.store_reset(store, erased, boots.reset_of(erased)) is True
    assert store.alarms(lost) == []  # not on the old journal's session
    (r,) = store.db.execute("SELECT session_id, journal_epoch, boot_count FROM alarms").fetchall()
    assert (r["session_id"], r["journal_epoch"], r["boot_count"]) == (None, 0x2222, 2)  # stored, as the device's own
    # the same boot of the old journal did cut it short
    assert boots.store_reset(store, old, boots.reset_of(types.SimpleNamespace(**dict(vars(old), boot_count=2,
                                                                                  reset_cause="WATCHDOG")))) is True
    assert [(a["code"], a["boot_count"]) for a in store.alarms(lost)] == [("RESET", 2)]


def make_v8(db):
    """A database as mesoinject wrote it before sessions kept their journal's epoch (schema 8): the v1 session (one
    delivery, epoch 0) and a session with deliveries of epoch 0x1111, one with none."""
    make_v7(db)
    con = raw(db)
    for statement in _statements(MIGRATIONS[8]):
        con.execute(_pg_ddl(statement) if isinstance(db, str) else statement)
    for tag in (2, 3):
        con.execute(sql(db, "INSERT INTO sessions (started_at, device_serial, board, firmware, program_name, technique,"
                            " drug, syringe, needle, depth_um, volume_nl, planned, cadence_mhz, program_json,"
                            " device_session, boot_count) VALUES ('2026-11-01T10:00:00+00:00', 'SIM-0042', 'sim',"
                            " '0.2.0', 'v8', 'point-by-point', 'saline', 'BD 1 mL', '30G 4 mm', 3000, 30000, 20, 0,"
                            f" '{{}}', {tag}, 7)"))
    for record_id in (2, 3):
        con.execute(sql(db, "INSERT INTO deliveries (session_id, device_serial, record_id, point, kind, partial, flags,"
                            " programmed_nl, delivered_nl, depth_um, device_time_ms, received_at, journal_epoch)"
                            f" VALUES (2, 'SIM-0042', {record_id}, 0, 'point', 0, 0, 30000, 29990, 3000, 5, 'then',"
                            f" {0x1111})"))
    con.close()
    set_version(db, 8)


@pytest.mark.req("SR-207")
def test_a_v8_database_gets_each_sessions_epoch_from_its_records(db):
    make_v8(db)
    store = RecordStore(db)
    try:
        assert [(s["id"], s["journal_epoch"]) for s in store.sessions()] == [(1, 0), (2, 0x1111), (3, None)]
        assert store.cut_short_session("SIM-0042", 0x1111, 8) == 2  # still running as far as any host saw
        assert store.cut_short_session("SIM-0042", 0x2222, 8) is None  # another journal's boot 8
    finally:
        store.close()
    assert schema_version(db) == SCHEMA_VERSION


@pytest.mark.req("SR-149")
def test_a_patients_history_and_totals_per_drug(store, program):
    import dataclasses

    other_drug = dataclasses.replace(program, drug="vitamin complex")
    sessions = [store.begin_session(IDENT, prog, patient_ref=ref, operator="dr x", device_session=tag)
                for tag, (prog, ref) in enumerate([(program, "P-1"), (other_drug, "P-1"), (program, "P-2"),
                                                   (program, "P-1")], start=100)]
    for n, (sid, tag) in enumerate(zip(sessions, range(100, 104))):
        store.add_delivery(sid, IDENT.serial, delivery(10 + n, session=tag, delivered=10000 * (n + 1)))
        store.add_delivery(sid, IDENT.serial, delivery(20 + n, session=tag, kind=spec.KIND_PRIME, delivered=5000))
    assert [s["id"] for s in store.sessions("P-1")] == [sessions[0], sessions[1], sessions[3]]
    assert store.sessions("P-3") == []
    totals = {d["drug"]: d for d in store.drug_totals("P-1")}
    assert totals.keys() == {program.drug, "vitamin complex"}
    assert (totals[program.drug]["sessions"], totals[program.drug]["delivered_nl"]) == (2, 10000 + 40000)  # no primes
    assert (totals["vitamin complex"]["sessions"], totals["vitamin complex"]["delivered_nl"]) == (1, 20000)
    assert sum(m["delivered_nl"] for m in totals[program.drug]["months"]) == 50000
