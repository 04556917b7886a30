"""Record-store fixtures: every `store` test runs on SQLite and on a real PostgreSQL server (and a SQLite file
that can't be written, `read_only_file`); the VirtualDevice (`vdev`, one per module) and a `device` opened on it."""

import os
import shutil
import subprocess
import types

import pytest

from mesoinject import program as programs
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


@pytest.fixture
def read_only_file(tmp_path):
    """A records database (one session) the operating system won't let us write to."""
    path = tmp_path / "r.db"
    ident = types.SimpleNamespace(serial="SIM-0042", board="sim", firmware="0.1.0")
    with RecordStore(path) as store:
        store.begin_session(ident, programs.load(programs.EXAMPLES / "point-by-point.toml"), patient_ref="P-1",
                            operator=None)
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield path
        path.chmod(0o644)
        return
    # root ignores permission bits; the immutable attribute stops root too (ext2/3/4, xfs, btrfs)
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root (ignores file permissions) and chattr +i is not supported here")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


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
