"""PostgreSQL only: what a shared server adds to the file's failure modes (connection, read-only, locks).

The behaviour both backends share is tested on both in test_records.py and test_exports.py.
"""

import types
import urllib.parse

import psycopg
import pytest

from mesoinject import program as programs
from mesoinject.records import RecordStore, RecordStoreError
from mesoprotocol import spec

from test_program import PROGRAMS

IDENT = types.SimpleNamespace(serial="SIM-0042", board="sim", firmware="0.1.0")


def delivery(record_id):
    return dict(record_id=record_id, session=7, point=0, kind=spec.KIND_POINT, flags=0, programmed_nl=30000,
                delivered_nl=29998, depth_um=3000, time_ms=1000)


def begin(store):
    return store.begin_session(IDENT, programs.load(PROGRAMS / "point-by-point.toml"), patient_ref="P-1",
                               operator=None)


def test_an_unreachable_server_is_a_clear_error_without_the_password(pg_server, tmp_path):
    url = f"postgresql://clinic:s3cret@/records?host={urllib.parse.quote(str(tmp_path), safe='')}"
    redacted = r"cannot connect to PostgreSQL at postgresql://clinic:\*\*\*@/records"
    with pytest.raises(RecordStoreError, match=redacted) as e:
        RecordStore(url)
    assert "s3cret" not in str(e.value)


def test_a_read_only_server_reads_but_refuses_writes(pg_url):
    writer = RecordStore(pg_url)
    sid = begin(writer)
    writer.close()
    # what a hot standby or a read-only role looks like to a client
    store = RecordStore(pg_url + "&options=" + urllib.parse.quote("-c default_transaction_read_only=on"))
    assert [s["id"] for s in store.sessions()] == [sid]
    with pytest.raises(RecordStoreError, match="read-only .*nothing was written"):
        store.add_delivery(sid, "SIM-0042", delivery(1))
    assert store.deliveries() == []
    store.close()


def test_a_table_locked_by_another_laptop_times_out_clearly(pg_url):
    store = RecordStore(pg_url, busy_timeout_s=0.2)
    sid = begin(store)
    with psycopg.connect(pg_url) as other:  # a transaction left open on another laptop
        other.execute("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(RecordStoreError, match="locked by another program.*nothing was written"):
            store.add_delivery(sid, "SIM-0042", delivery(1))
        other.rollback()
    assert store.add_delivery(sid, "SIM-0042", delivery(1))  # resent later: stored once
    assert not store.add_delivery(sid, "SIM-0042", delivery(1))
    store.close()


def test_a_dropped_connection_fails_one_write_and_the_next_reconnects(pg_url):
    store = RecordStore(pg_url)
    sid = begin(store)
    with psycopg.connect(pg_url, autocommit=True) as admin:  # the server restarts, or the network drops
        if admin.info.server_version < 140000:
            pytest.skip("pg_terminate_backend(pid, timeout), to wait for the drop, needs PostgreSQL 14")
        # the timeout makes it wait until the backend is gone (PostgreSQL >= 14)
        admin.execute("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                      " WHERE datname = current_database() AND pid != pg_backend_pid()")
    with pytest.raises(RecordStoreError, match="could not store a delivery"):
        store.add_delivery(sid, "SIM-0042", delivery(1))
    assert store.add_delivery(sid, "SIM-0042", delivery(1))  # the device resent it: stored once
    assert len(store.deliveries(sid)) == 1
    store.close()
