"""A lab of injector rigs through labgrid, on this machine: simulated boards exported as network serial ports.

Starts N simulated boards, a labgrid coordinator and an exporter on loopback (each board's pty and its
balance's pty as RawSerialPort: the exporter serves them through ser2net, as it would /dev/ttyACM0),
one place per rig (tag rig=injector). Then each pytest run reserves a place, locks it, runs
`pytest -p labgrid.pytestplugin --lg-env hil_tests/lab-env.yaml` on it through the mesoinject plugin,
and unlocks it. Prints the suite's wall time on one rig and on N rigs in parallel (the suite split by file).

  python bench/bench_lab.py            # the tests that run on a real board: 1 rig, then 4 rigs in parallel
  python bench/bench_lab.py --quick    # 2 rigs, two short runs in parallel (./test.sh: under 30 s)

Needs the `lab` extra (labgrid) and ser2net (Debian: apt-get install ser2net; .ci/run does).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / "hil_tests" / "lab-env.yaml"
BIN = pathlib.Path(sys.executable).parent
# the suites that need no ground truth and no control channel, split for parallel rigs
FULL = ["hil_tests/test_limits.py", "hil_tests/test_link.py hil_tests/test_rules.py",
        "hil_tests/test_one_host.py hil_tests/test_auth.py hil_tests/test_journal.py",
        "hil_tests/test_balance.py hil_tests/test_handshake.py"]
QUICK = ["hil_tests/test_handshake.py", "hil_tests/test_link.py -k 'garbage or unknown_type or sequence_byte'"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing() -> str | None:
    try:
        import labgrid  # noqa: F401
    except ImportError:
        return "labgrid missing: pip install 'mesoinject[lab]'"
    if not (shutil.which("ser2net") or os.path.exists("/usr/sbin/ser2net")):
        return "ser2net missing (the labgrid exporter serves serial ports through it): apt-get install ser2net"
    return None


class Lab:
    """Coordinator + exporter on loopback, one place per simulated board."""

    def __init__(self, n: int, workdir: pathlib.Path):
        self.n, self.dir = n, workdir
        self.keys = workdir / "keys"
        self.keys.mkdir()
        self.coordinator = f"127.0.0.1:{free_port()}"
        self.env = dict(os.environ, LG_COORDINATOR=self.coordinator, MESOINJECT_KEYS=str(self.keys),
                        PATH=f"{BIN}:/usr/sbin:{os.environ.get('PATH', '')}")
        self.stack = contextlib.ExitStack()

    def client(self, *args: str, env: dict | None = None) -> str:
        r = subprocess.run([str(BIN / "labgrid-client"), *args], env=env or self.env, capture_output=True,
                           text=True, timeout=60)
        if r.returncode:
            raise RuntimeError(f"labgrid-client {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def process(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "w")
        p = subprocess.Popen([str(BIN / name), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                             cwd=self.dir)
        self.stack.callback(log.close)
        self.stack.callback(stop, p)
        return p

    def __enter__(self) -> Lab:
        try:
            return self.start()
        except BaseException:
            self.stack.close()  # no coordinator, exporter or board left behind
            raise

    def start(self) -> Lab:
        from mesoinject.simulated import SimBoard

        os.environ["MESOINJECT_KEYS"] = str(self.keys)  # the boards' factory keys, for the runs' --mesoinject-keys
        boards = [self.stack.enter_context(SimBoard(serial=f"LAB-{i + 1}", workdir=self.dir / f"board{i + 1}"))
                  for i in range(self.n)]
        self.process("labgrid-coordinator", "--listen", self.coordinator)
        wait_until(lambda: connectable(self.coordinator), "the coordinator")
        config = "".join(f"rig{i + 1}:\n  board:\n    cls: RawSerialPort\n    port: {b.pty_path}\n    speed: 115200\n"
                         f"  balance:\n    cls: RawSerialPort\n    port: {b.balance.port}\n    speed: 9600\n"
                         for i, b in enumerate(boards))
        (self.dir / "exporter.yaml").write_text(config)
        self.process("labgrid-exporter", "--name", "lab", "--hostname", "127.0.0.1", "exporter.yaml")
        wait_until(lambda: all(f"lab/rig{i + 1}/" in self.client("resources") for i in range(self.n)),
                   "the exporter's resources")
        for i in range(self.n):
            place = f"rig{i + 1}"
            self.client("-p", place, "create")
            self.client("-p", place, "add-match", f"lab/{place}/*")
            self.client("-p", place, "set-tags", "rig=injector")
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()

    def run(self, tests: str) -> tuple[str, float, int, str, tuple[float, float]]:
        """Reserve a rig, lock it, run the tests on it, unlock it: (place, seconds, pytest's exit code, summary,
        (when it was locked, when unlocked))."""
        out = self.client("reserve", "--wait", "--shell", "rig=injector")
        token = out.split("LG_TOKEN=")[1].split()[0]
        env = dict(self.env, LG_TOKEN=token)
        place = self.client("-p", "+", "lock", env=env).split("acquired place ")[1].split()[0]
        locked = time.monotonic()
        start = time.monotonic()
        try:
            r = subprocess.run(f"{sys.executable} -m pytest -q -p no:cacheprovider -p labgrid.pytestplugin "
                               f"--lg-env {ENV_FILE} --mesoinject-keys {self.keys} {tests}", shell=True,
                               env=dict(env, LG_PLACE=place), cwd=ROOT, capture_output=True, text=True)
        finally:
            unlocked = time.monotonic()
            self.client("-p", place, "unlock", env=env)
            self.client("cancel-reservation", token, env=env)
        lines = (r.stdout + r.stderr).strip().splitlines()
        summary = "\n".join(lines[-1:] if r.returncode == 0 else lines[-30:])
        return place, time.monotonic() - start, r.returncode, summary, (locked, unlocked)

    def run_parallel(self, shards: list[str]) -> tuple[float, list]:
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(len(shards)) as pool:
            results = list(pool.map(self.run, shards))
        return time.monotonic() - start, results


def connectable(hostport: str) -> bool:
    host, port = hostport.rsplit(":", 1)
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=0.5):
        return True
    return False


def wait_until(ready, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(RuntimeError):
            if ready():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not up within {timeout} s")
        time.sleep(0.2)  # polling a child process's start-up: nothing to wait on


def stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def report(label: str, wall: float, results: list) -> bool:
    ok = all(code == 0 for _, _, code, _, _ in results)
    print(f"{label}: {wall:.1f} s wall")
    for place, seconds, code, summary, _ in results:
        print(f"  {place}: {seconds:.1f} s, exit {code}: {summary}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 rigs, two short runs in parallel")
    ap.add_argument("--rigs", type=int, default=4)
    args = ap.parse_args()
    why = missing()
    if why:
        print(f"bench_lab skipped: {why}")
        return 0
    shards = QUICK if args.quick else FULL
    n = len(QUICK) if args.quick else args.rigs
    with tempfile.TemporaryDirectory(prefix="mesoinject-lab-") as tmp, Lab(n, pathlib.Path(tmp)) as lab:
        ok = True
        if not args.quick:
            wall, results = lab.run_parallel([" ".join(shards)])
            ok &= report("one rig, the whole suite", wall, results)
            one = wall
        wall, results = lab.run_parallel(shards)
        ok &= report(f"{len(shards)} rigs in parallel, each locked by its own pytest run", wall, results)
        overlapping = [(a[0], b[0]) for i, a in enumerate(results) for b in results[i + 1:]
                       if a[4][0] < b[4][1] and b[4][0] < a[4][1]]
        print(f"  runs holding their locks at the same time: {len(overlapping)} pairs, on places {overlapping}")
        if any(x == y for x, y in overlapping):
            print("FAIL: two runs held the same place at once")
            ok = False
        if not args.quick:
            print(f"speed-up: {one / wall:.2f}x on {len(shards)} rigs ({os.cpu_count()} CPUs)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
