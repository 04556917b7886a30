"""Record-store fixtures: every `store` test runs on SQLite and on a real PostgreSQL server; the VirtualDevice
(`vdev`, one per module) and a `device` opened on it."""

import pytest

from mesoinject.client import Device
from mesoinject.records import RecordStore

import pgserver


@pytest.fixture(scope="session")
def pg_server():
    reason = pgserver.unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = pgserver.PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server):
    """A fresh empty database on the test server."""
    return pg_server.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """Where a records database lives: a SQLite file or a postgresql:// URL."""
    if request.param == "sqlite":
        return tmp_path / "r.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(db):
    s = RecordStore(db)
    yield s
    s.close()


@pytest.fixture(scope="module")
def vdev():
    from mesoinject.virtual import VirtualDevice

    try:
        with VirtualDevice() as v:
            yield v
    except Exception as e:  # noqa: BLE001
        if type(e).__name__ == "MissingExtra":
            pytest.skip(str(e))
        raise


@pytest.fixture
def device(vdev):
    vdev.release_trigger()
    with Device.open(vdev.url) as dev:
        dev.hello()
        dev.abort()
        yield dev
        dev.abort()
