"""A throwaway PostgreSQL server for the record-store tests.

initdb + pg_ctl in a fresh temporary directory, listening on a unix socket only
(no TCP port to collide with), trust authentication, stopped and removed after.
PostgreSQL refuses to run as root: as root the server runs as the `postgres`
user (Debian's package creates it) or `nobody`, via runuser.
"""

from __future__ import annotations

import glob
import itertools
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import urllib.parse

SUPERUSER = "mesoinject"
PORT = 5432  # only names the socket file inside our private directory


def find_bin_dir() -> pathlib.Path | None:
    """The directory holding initdb, pg_ctl and postgres: PATH first, then Debian's versioned directories."""
    candidates = [shutil.which("pg_ctl")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                         key=lambda p: int(pathlib.Path(p).parts[-3]) if pathlib.Path(p).parts[-3].isdigit() else 0,
                         reverse=True)
    for pg_ctl in filter(None, candidates):
        bindir = pathlib.Path(pg_ctl).resolve().parent  # /usr/local/bin/pg_ctl may be a symlink
        if all((bindir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def unavailable_reason() -> str | None:
    """Why no server can be started here, or None."""
    if find_bin_dir() is None:
        return ("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH nor in "
                "/usr/lib/postgresql/*/bin: `apt-get install postgresql` (.ci/run does)")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root, which PostgreSQL refuses, and runuser is not available to drop privileges"
    return None


class PostgresServer:
    def __init__(self) -> None:
        self.bindir = find_bin_dir()
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="mesoinject-pg-"))
        self.data, self.log = self.dir / "data", self.dir / "server.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self.as_user = ["runuser", "-u", user, "--"]
        self._names = itertools.count(1)

    def _run(self, tool: str, *args: str) -> None:
        # cwd: the server's user may not be allowed into the directory pytest runs from
        r = subprocess.run([*self.as_user, str(self.bindir / tool), *args], cwd=self.dir, capture_output=True,
                           text=True, timeout=120)
        if r.returncode:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({r.returncode}): {r.stdout}{r.stderr}{log}")

    def start(self) -> PostgresServer:
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-locale")
        options = f"-c listen_addresses='' -c unix_socket_directories={self.dir} -p {PORT} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start")
        return self

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, dbname: str = "postgres", **params: str) -> str:
        query = urllib.parse.urlencode({"host": str(self.dir), "port": PORT, **params})
        return f"postgresql://{SUPERUSER}@/{dbname}?{query}"

    def new_database(self) -> str:
        """A fresh, empty database for one test; its URL."""
        import psycopg

        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
