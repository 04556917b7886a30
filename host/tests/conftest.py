"""Record-store fixtures: every `store` test runs on SQLite and on a real PostgreSQL server."""

import pytest

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
