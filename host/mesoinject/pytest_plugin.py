"""pytest plugin for injector test rigs (entry point `pytest11`, loaded wherever mesoinject is installed).

The same suites run against the board on a serial port or whatever board the project starts itself:

  --mesoinject-port PORT     the board under test (repeatable: xdist worker gwN takes the N-th)
  --mesoinject-board NAME    what the board must report in HELLO (sim, pico, esp32s3); a mismatch stops the run;
                             pico-emu: the project's conftest starts an emulated Pico (reports pico)
  --mesoinject-balance PORT  the MT-SICS balance under that board's needle (repeatable, as the ports)
  --mesoinject-keys DIR      the command-key store; default the user's, where `mesoinject pair` wrote the key

Fixtures: `rig` (module scope: url, sim, balance), `device` (connected, aborted to IDLE, no events pending),
`sim` (the simulated board's control channel), `sim_or_none` (the same, or None on a real board), `scale`
(a balance under the needle). Markers: `sim_only`
(needs the simulated board's control channel: skipped on a board on a port), `needs_balance` (needs a balance
as ground truth). A test using `sim` or `scale` carries its marker whether or not it says so, so
`-m "not sim_only"` selects exactly what a real board runs. An emulated board (pico-emu) has a control
channel too (ground truth, trigger, E-stop, occlusion, syringe content) but not the unix-port sim's own
powers (power cuts, link faults, stalls, its flash, boards of its own): a test that marks itself sim_only
in its source is skipped there, one that only uses `sim` runs.

Without a port, a conftest provides the board with the `pytest_mesoinject_board_starter` hook (this
repository's hil_tests start a simulated board). Bad options end the run with one line (pytest.UsageError);
a board that cannot be reached, is another board or has no key in the store ends it at its first test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

# the device client is imported where a rig is used: this plugin loads in every pytest run of the environment

BOARD_LOG_TAIL = 60  # lines of a simulated board's log shown beside a failed test
MARKERS = {
    "sim_only": "needs the simulated board's control channel (ground truth, virtual trigger, faults): skipped on "
                "a board given by --mesoinject-port",
    "needs_balance": "needs an MT-SICS balance under the needle as ground truth: the simulated board's, or "
                     "--mesoinject-balance PORT",
}
MARKED_BY_FIXTURE = {"sim": "sim_only", "scale": "needs_balance"}
# boards the project emulates, and the board their firmware reports in HELLO
EMULATED = {"pico-emu": "pico"}
EMULATED_SKIP = ("sim_only: needs the unix-port simulated board (its power cuts, link faults, stalls, flash or "
                 "boards of its own), not the emulated {board}")


@dataclasses.dataclass
class Rig:
    url: str  # the board's serial port or URL
    sim: Any = None  # the mesosim.SimBoard, when the board is simulated (its control channel)
    balance: str | None = None  # serial port of the balance under its needle
    # how many times slower than real time the board runs (an emulator: 0.05-0.25x real time -> 20): the
    # host's link timeout and waits are this many times longer
    slowdown: float = 1.0
    # the board's clock in seconds (the device's heartbeat is scheduled on it); None: real time
    clock: Callable[[], float] | None = None


BoardStarter = Callable[[pytest.FixtureRequest, pytest.TempPathFactory], contextlib.AbstractContextManager[Rig]]


@dataclasses.dataclass
class Options:
    port: str | None
    board: str | None
    balance: str | None


OPTIONS = pytest.StashKey[Options]()
STARTER = pytest.StashKey[BoardStarter]()


class Hooks:
    @pytest.hookspec(firstresult=True)
    def pytest_mesoinject_board_starter(self, config: pytest.Config) -> BoardStarter | None:
        """The board to test when no --mesoinject-port is given: a function (request, tmp_path_factory) ->
        context manager yielding a Rig, started once per test module. Raise pytest.UsageError when the
        options ask for a board it cannot start."""


def pytest_addhooks(pluginmanager):
    pluginmanager.add_hookspecs(Hooks)


def pytest_addoption(parser):
    group = parser.getgroup("mesoinject", "injector test rig (mesoinject)")
    group.addoption("--mesoinject-port", action="append", default=[], metavar="PORT",
                    help="serial port or URL of the board under test; repeat it for pytest-xdist: worker gwN "
                         "takes the N-th (one board per worker)")
    group.addoption("--mesoinject-board", default=None, metavar="NAME",
                    help="the board the rig must be (sim, pico, esp32s3), checked against HELLO")
    group.addoption("--mesoinject-balance", action="append", default=[], metavar="PORT",
                    help="serial port of an MT-SICS balance under the board's needle (ground truth of the "
                         "volume tests); one per --mesoinject-port")
    group.addoption("--mesoinject-keys", default=None, metavar="DIR",
                    help="command-key store (default: the user's, where `mesoinject pair` writes; "
                         "$MESOINJECT_KEYS overrides it)")


def worker_index(config: pytest.Config) -> tuple[int, int]:
    """(this process's xdist worker number, number of workers); (0, 1) without xdist."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        n = config.getoption("numprocesses", default=None)
        return 0, n if isinstance(n, int) and n > 0 else 1
    return int(workerinput["workerid"].removeprefix("gw")), int(workerinput["workercount"])


def read_options(config: pytest.Config) -> Options:
    """This worker's port and balance; pytest.UsageError (one line, run stopped) on bad options."""
    ports = config.getoption("mesoinject_port")
    balances = config.getoption("mesoinject_balance")
    index, workers = worker_index(config)
    if balances and not ports:
        raise pytest.UsageError("--mesoinject-balance needs --mesoinject-port: a balance goes under a real "
                                "board's needle (the simulated board brings its own)")
    if ports and workers > len(ports):
        raise pytest.UsageError(f"{workers} xdist workers but {len(ports)} --mesoinject-port: give one port per "
                                "worker (each board takes one host at a time) or run fewer workers (-n)")
    if balances and len(balances) != len(ports):
        raise pytest.UsageError(f"{len(balances)} --mesoinject-balance for {len(ports)} --mesoinject-port: give "
                                "one balance per board, in the same order")
    keys_dir = config.getoption("mesoinject_keys")
    if keys_dir is not None:
        if not pathlib.Path(keys_dir).is_dir():
            raise pytest.UsageError(f"--mesoinject-keys {keys_dir}: no such folder (it holds SERIAL.key files "
                                    "that `mesoinject pair` writes)")
        os.environ["MESOINJECT_KEYS"] = str(pathlib.Path(keys_dir).resolve())  # CLI runs in tests use it too
    return Options(ports[index] if ports else None, config.getoption("mesoinject_board"),
                   balances[index] if balances else None)


def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    config.stash[OPTIONS] = read_options(config)


def pytest_report_header(config):
    o = config.stash[OPTIONS]
    if o.port is None:
        return None
    from .keys import default_dir

    return (f"mesoinject rig: {o.port}" + (f" (board {o.board})" if o.board else "")
            + (f", balance {o.balance}" if o.balance else "") + f", command keys in {default_dir()}")


def pytest_collection_modifyitems(config, items):
    o = config.stash[OPTIONS]
    if o.port is None and o.board in EMULATED:  # before the fixture markers: the ones the tests wrote
        skip = pytest.mark.skip(reason=EMULATED_SKIP.format(board=o.board))
        for item in items:
            if item.get_closest_marker("sim_only"):
                item.add_marker(skip)
    for item in items:
        for fixture, marker in MARKED_BY_FIXTURE.items():
            if fixture in item.fixturenames and item.get_closest_marker(marker) is None:
                item.add_marker(marker)
    if config.getoption("lg_env", default=None):  # labgrid's pytest plugin: the place's board, on a port
        config.stash[STARTER] = labgrid_board
    if o.port is not None or STARTER in config.stash:
        skip = pytest.mark.skip(reason=f"sim_only: {MARKERS['sim_only'].split(':')[0]}")
        for item in items:
            if item.get_closest_marker("sim_only"):
                item.add_marker(skip)
        if o.port is not None:
            return
    if STARTER not in config.stash and any("rig" in item.fixturenames for item in items):
        starter = config.hook.pytest_mesoinject_board_starter(config=config)
        if starter is None:
            raise pytest.UsageError("no board under test: pass --mesoinject-port PORT (e.g. /dev/ttyACM0 or a "
                                    "simulated board's socket:// URL from `mesoinject sim`)")
        config.stash[STARTER] = starter


def board_problem(config: pytest.Config, url: str) -> str | None:
    """What is wrong with the board on `url` as a board under test (unreachable, not the board the options
    name, no key in the store in use), as one line saying what to do; None when nothing is."""
    from .client import Device
    from .keys import KeyStore
    from .link import LinkError

    expected = config.getoption("mesoinject_board")
    expected = EMULATED.get(expected, expected)
    try:
        with Device.open(url) as dev:
            ident = dev.hello()
    except LinkError as e:
        return f"mesoinject rig: {e}"
    if expected and ident.board != expected:
        return (f"mesoinject rig: the board on {url} reports board {ident.board!r} (serial {ident.serial}), "
                f"not {expected!r} as --mesoinject-board says: check the port or the option")
    store = KeyStore()
    if not ident.paired or store.get(ident.serial) is None:
        why = "the device has no key" if not ident.paired else f"no key for it in {store.dir}"
        return (f"mesoinject rig: board {ident.serial} on {url} is not paired with this host ({why}): run "
                f"`mesoinject pair --port {url}` (E-stop pressed + trigger held 3 s), or pass "
                "--mesoinject-keys DIR where its key is")
    return None


def check_board(config: pytest.Config, url: str) -> None:
    """The run stops at once, with one line, on a board it cannot test (from a fixture)."""
    problem = board_problem(config, url)
    if problem:
        pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """Every board on --mesoinject-port is checked before any test (and before xdist starts its workers,
    which then trust it): a problem is a usage error, one line."""
    config = session.config
    if hasattr(config, "workerinput"):
        return
    for port in config.getoption("mesoinject_port"):
        problem = board_problem(config, port)
        if problem:
            raise pytest.UsageError(problem)


@contextlib.contextmanager
def labgrid_board(request, tmp_path_factory):
    """The board of labgrid's target `main` (--lg-env): its InjectorStrategy brought to ready, once a session."""
    target = request.getfixturevalue("target")
    strategy = target.get_driver("InjectorStrategy")
    strategy.transition("ready")
    url = strategy.injector.url
    if not request.config.stash.get(LABGRID_CHECKED, False):
        check_board(request.config, url)
        request.config.stash[LABGRID_CHECKED] = True
    yield Rig(url, None, strategy.balance.url if strategy.balance is not None else None)


LABGRID_CHECKED = pytest.StashKey[bool]()


@pytest.fixture(scope="module")
def rig(request, tmp_path_factory):
    """The board under test: the one on --mesoinject-port, or one the project's conftest starts per module."""
    config = request.config
    if config.stash[OPTIONS].port is not None:
        yield Rig(config.stash[OPTIONS].port, None, config.stash[OPTIONS].balance)  # checked at session start
        return
    with config.stash[STARTER](request, tmp_path_factory) as started:
        if config.getoption("mesoinject_board"):
            check_board(config, started.url)
        yield started


@pytest.fixture
def sim(rig):
    if rig.sim is None:
        pytest.skip("needs the simulated board's control channel (ground truth and virtual trigger)")
    return rig.sim


@pytest.fixture
def sim_or_none(rig):
    """The simulated board's control channel, or None on a real board: for a test whose claim needs no
    ground truth and that checks the ground truth too where there is one."""
    return rig.sim


@pytest.fixture(scope="module")
def scale(rig):
    """A balance weighing what leaves the needle into the air: the simulated board's, or --mesoinject-balance."""
    from .balance import Balance

    simulated = getattr(rig.sim, "balance", None)  # the simulated board's; an emulated board has none
    port = simulated.port if simulated is not None else rig.balance
    if not port:
        pytest.skip("needs ground truth: put an MT-SICS balance under the needle and pass --mesoinject-balance PORT")
    balance = Balance(port)
    yield balance
    balance.close()


@pytest.fixture
def device(rig):
    """A connected device, reset to IDLE with no events pending."""
    from .client import Device

    with Device.open(rig.url) as dev:
        dev.link.timeout *= rig.slowdown  # its first wait and longest retransmission timeout
        # and its least one: every retransmission costs the board MAX_FRAME bytes of filler to parse
        dev.link.min_rto *= rig.slowdown
        if rig.clock is not None:
            dev.clock = rig.clock
        dev.hello()
        dev.abort()
        while dev.next_event(0) is not None:
            pass
        yield dev
        try:
            if rig.sim is not None:  # let go of every input a failed test may have left pressed
                rig.sim.set_trigger(False)
                rig.sim.set_estop(False)
            dev.abort()
        except Exception:
            pass


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test on a simulated board shows the end of the board's log (firmware tracebacks, reboots)."""
    report = yield
    rig = item.funcargs.get("rig") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(rig, Rig) and rig.sim is not None:
        log = rig.sim.log_path
        try:
            tail = log.read_bytes().decode(errors="replace").splitlines()[-BOARD_LOG_TAIL:]
        except OSError as e:
            tail = [f"(no board log: {e})"]
        report.sections.append((f"board log {log} (last {BOARD_LOG_TAIL} lines)", "\n".join(tail)))
    return report
