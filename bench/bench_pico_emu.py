"""The real firmware on the emulated Pico: figures printed, never asserted.

The MicroPython RPI_PICO uf2 runs in rp2040js (tools/pico-emu/) with the project's pico image on
its littlefs; main.py starts the firmware as on a board, the host talks to it over the emulated
USB CDC (socket://). Emulated time is the chip's own clock (rp2040js counts cycles exactly), and is
shown beside wall time. A probe in the emulator-only boot.py (tools/pico-emu/emu_boot.py) times
each control-loop pass on the chip and counts the steps the firmware hands to its drivers.

- control-pass time p50/p99 (emulated us) idle, while priming (dosing) and in the passes that wrote
  the journal (its checkpoints and close: littlefs programs pages, now and then erases a 4 KB block);
- the flash's erases/programs and the time the CPU was stalled by them;
- STEP pulses counted on the pins vs steps the firmware issued;
- STATUS round trip over the emulated USB CDC;
- trigger release / E-stop -> last STEP pulse while the flash is busy: the worst case the firmware
  avoids (4 words of pulses queued, then a 4 KB erase, the pin changing 0.5 ms into it), with the
  plunger's PIO gate, and without it for contrast.
- with --points N (the full run: 5): N points of 20 uL and of 50 uL on the emulated board whose world is the
  sim's model driven by the STEP/DIR pins (tools/pico-emu/emuboard.py, the HIL tier `--mesoinject-board
  pico-emu`): per-point error of the record vs that ground truth and of the truth vs the program, STEP pulses
  on the pins vs steps the firmware issued on both axes, emulated vs wall time.

- with --only-profile N (~1 min wall): where a control pass's time goes while the real loop doses, no host on the
  link (tools/pico-emu/passprof.py drives the device and sends a signed POLL every 0.1 s of chip time): pass
  p50/p99 priming and delivering, then emulated us per pass inside each function (self and inclusive; the
  timing wrappers' own cost calibrated out: compare functions with it, the pass times come from the first run).

The firmware's files are on the littlefs of the emulated flash (no RAM disk): rp2040js's flash is
erased and programmed through the boot ROM's functions with the W25Q16JV datasheet's typical times
(or --flash-timing max) charged as a CPU stall (tools/pico-emu/flash.mjs).

    python bench/bench_pico_emu.py [--quick] [--flash-timing typ|max] [--profile] [--points N] [--only-points] [--only-busy-gate N]
    python bench/bench_pico_emu.py --only-profile 3 [--profile-nl 50000] [--profile-nappage] [--profile-times-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import secrets
import statistics
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "pico-emu"))
import flashbusy  # noqa: E402
import picoemu  # noqa: E402
from benchlib import percentile  # noqa: E402
from mesoinject.client import Device  # noqa: E402
from mesoinject.keys import KeyStore  # noqa: E402
from mesoinject.link import Link  # noqa: E402
from mesoprotocol import spec  # noqa: E402

# boards/pico/board.py: STEP:DIR pairs, and the switches at rest (trigger up, E-stop closed,
# needle home, syringe not at its end); ADC0 at the pressure sensor's 0 kPa (0.333 V of 3.3 V, 12 bit)
WATCH = {2: 3, 4: 5}
INPUTS = {10: 1, 11: 0, 12: 0, 13: 1, 14: 0}  # ... and the single needle's contact switch closed (on the skin)
ADC0_ZERO_KPA = 413
# ADC1: the syringe clamp's potentiometer with a BD 1 mL barrel (6.6 mm) in it: 300 mV + 6.6 x 120 mV
# (board_stepdir's BARREL_* scale) = 1092 mV, as a 12-bit count of 3.3 V
ADC1_BD_1ML = 1356
# ADC2: the needle head's ID resistor, a single 30G 4 mm needle (spec.HEADS 1: 300 mV) as a 12-bit count of 3.3 V
ADC2_HEAD_30G_4MM = 372
PROGRAM = dict(technique=spec.TECHNIQUE_POINT, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=2000,
               volume_nl=30000, count=20, cadence_mhz=0, flow_nl_s=50000)
BUCKET_US = 50  # emu_boot.py's histogram
POLL_S = 0.1  # the session runner's status poll while a dose runs (session.py poll_s), in emulated seconds


def passes(lines: list[dict]) -> list[int]:
    """Pass times (us, bucket floor) from the probe's "passes step_us steps_p steps_n i:count ..." lines."""
    out: list[int] = []
    for e in lines:
        for pair in e["line"].split()[4:]:
            i, c = pair.split(":")
            out += [int(i) * BUCKET_US] * int(c)
    return out


def probe_lines(board: picoemu.Board, since_us: int, until_us: int | None = None, kind: str = "") -> list[dict]:
    """The pass-time reports (kind "") or the profile reports (kind "prof") in that emulated window."""
    return [e for e in board.probes if e["emulated_us"] > since_us
            and (until_us is None or e["emulated_us"] <= until_us)
            and (e["line"].split()[0] == kind if kind else e["line"][0].isdigit())]


def profile_rows(name: str, lines: list[dict], n_passes: int) -> list[str]:
    """emu_boot.py's PROFILE figures: emulated us per pass inside each function (inclusive), heap per pass."""
    if not lines or not n_passes:
        return []
    total: dict[str, int] = {}
    for e in lines:
        for pair in e["line"].split()[1:]:
            k, v = pair.rsplit(":", 1)
            total[k] = total.get(k, 0) + int(v)
    alloc, gcs, rx = total.pop("alloc", 0), total.pop("gc", 0), total.pop("rxbytes", 0)
    top = sorted(total.items(), key=lambda kv: -kv[1])
    out = [f"  {name}: emulated us per pass inside (inclusive), over {n_passes} passes; "
           f"{alloc / n_passes:.0f} B allocated per pass, {gcs} collections, {rx} bytes from the host"]
    out += ["    " + "  ".join(f"{k} {v / n_passes:7.0f}" for k, v in top[i:i + 5]) for i in range(0, len(top), 5)]
    return out


def write_row(name: str, lines: list[dict]) -> str:
    """emu_boot.py's "write n bucket_us longest_us i:count ..." lines: the passes that wrote the flash."""
    t: list[int] = []
    longest = 0
    for e in lines:
        _, _, bucket, top, *pairs = e["line"].split()
        longest = max(longest, int(top))
        for pair in pairs:
            i, c = pair.split(":")
            t += [int(i) * int(bucket)] * int(c)
    if not t:
        return f"  {name:<28} none"
    return (f"  {name:<28} passes {len(t):5d}: p50 {percentile(t, 50):5d} us  p99 {percentile(t, 99):6d} us  "
            f"max {longest:6d} us   (emulated, 1 ms buckets; max exact)")


def flash_row(name: str, ops: list[dict], span_us: float) -> str:
    """The runner's flash events in a window: erases, programs, the stall they charged."""
    erases = [o for o in ops if o["op"] == "erase"]
    programs = [o for o in ops if o["op"] == "program"]
    busy = sum(o["busy_us"] for o in ops)
    return (f"  {name:<28} {len(erases)} erases ({sum(o['bytes'] for o in erases) // 1024} KB), {len(programs)} programs "
            f"({sum(o['bytes'] for o in programs)} B): CPU stalled {busy / 1000:.1f} ms of {span_us / 1000:.0f} ms "
            f"({busy / span_us * 100 if span_us else 0:.1f} %)")


def dose_erases(ops: list[dict], step_pin: int) -> int:
    """Erases in a dose's window with STEP pulses still to come (each flash event carries the pin's edge counts
    then): inside the dose, as opposed to the journal's settle after its last pulse."""
    total = [sum(o["edges"][str(step_pin)]) for o in ops]
    last = max(total, default=0)
    return sum(1 for o, n in zip(ops, total) if o["op"] == "erase" and n < last)


def ops_in(board: picoemu.Board, since_us: float, until_us: float) -> list[dict]:
    return [o for o in board.flash_ops if since_us <= o["start_us"] < until_us]


def pass_row(name: str, lines: list[dict]) -> str:
    t = passes(lines)
    if not t:
        return f"  {name:<28} no probe report in this phase (each covers <= 100 passes)"
    over = sum(1 for x in t if x >= 1000)
    return (f"  {name:<28} passes {len(t):5d}: p50 {percentile(t, 50):5d} us  p99 {percentile(t, 99):6d} us  "
            f"max {max(t):6d} us  >= 1 ms {over / len(t) * 100:5.1f} %   (emulated, {BUCKET_US} us buckets)")


def wait_probe(board: picoemu.Board, after_us: int, timeout_s: float, passes: int = 1) -> dict:
    """The first pass-time report after after_us covering at least `passes` passes."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        lines = [e for e in probe_lines(board, after_us) if int(e["line"].split()[0]) >= passes]
        if lines:
            return lines[0]
        time.sleep(0.05)  # polling the runner's event list, not synchronising with the chip
    raise AssertionError(f"no probe report within {timeout_s} s wall")


GATE_SCRIPT = r"""
import board, time
b = board.Board()
b.motors(True)
b.plunger_gate(True)

def feed_ms(ms, n):  # a loop that does not look at the inputs: it hands over a tick's steps each ms
    for _ in range(ms):
        b.feed_watchdog()
        b.plunger_step(n)
        time.sleep_ms(1)

for i in range(N):
    print('MARK press', i)
    feed_ms(12, 20)
    print('MARK release', i)
    feed_ms(12, 20)
b.wait_steps()
print('MARK end', 20 * 24 * N - b.plunger_unsent())
"""


def busy_gate_figures_paced(tmpdir: pathlib.Path, n: int, timing: str) -> list[str]:
    """The same with paced words (each 5 pulses over 6.4 ms: a batch standing for the 8 ms paced gap), the pin
    changed 3 ms into the erase."""
    return busy_gate_figures(tmpdir, n, timing, span_us=8000, into_erase_us=3000)


def busy_gate_figures(tmpdir: pathlib.Path, n: int, timing: str, span_us: int = 1000,
                      into_erase_us: int = flashbusy.RELEASE_INTO_ERASE_US) -> list[str]:
    """Trigger release / E-stop press 0.5 ms into a flash erase, 3.2 ms of pulses queued (flashbusy.py)."""
    try:
        samples, run = flashbusy.run(tmpdir, n, timing=timing, span_us=span_us, into_erase_us=into_erase_us)
    except AssertionError as e:
        return [f"  flash-busy gate: {e}"]
    rows = []
    for kind in flashbusy.KINDS:
        got = [x for x in samples if x.kind == kind]
        what = {"trigger": "trigger release", "estop": "E-stop press", "prime": "E-stop, prime",
                "needle": "E-stop, needle", "needle-in": "release, needle in",
                "free": "release, NO gate"}[kind]
        after, late, before = [x.after for x in got], [x.late_us for x in got], [x.before for x in got]
        rows.append(f"  {what:<17} n={len(got)} ({sum(x.in_erase for x in got)} inside the erase; {min(before)}-"
                    f"{max(before)} pulses went out in the stall before it): STEP pulses after it p50 "
                    f"{percentile(after, 50)} max {max(after)}; last pulse after it p99 {percentile(late, 99)} us "
                    f"(0: none); {sum(x.unsent for x in got)} of {sum(x.handed for x in got)} steps kept off the pin")
    rows.append("  pulses on the pins vs steps counted (issued less those reported kept back): " + "; ".join(
        f"{axis} {pin} vs {counted} {'(equal)' if pin == counted else '(DIFFERENT)'}"
        for axis, (pin, counted) in flashbusy.pins_vs_counted(samples, run).items()))
    rows.append(f"  (one boot, {run.flash.get('erases')} erases, {run.flash.get('busy_us', 0) / 1000:.0f} ms stalled; "
                f"emulated {run.emulated_s:.2f} s, wall {run.wall_s:.1f} s)")
    return rows


# The journal's own writes on the chip, the firmware's path in a point: open, a checkpoint every quarter of the
# dose, close. Without the append area (AREA = 0): NOW/point and the cell's 4 KB segment through littlefs, most a
# page programmed, now and then a metadata compaction or a block copy with its erase (the tail). With it (AREA = 1,
# flasharea.py over rp2.Flash() as the pico board sets it up): each a page program in the area, and the settle
# (the records into their cells, the area erased) off the dose, when the loop is idle, timed apart as 'settle'.
JOURNAL_SCRIPT = r"""
import rp2, time
from mesofw import appendlog, flasharea, journal
from mesoprotocol import spec as S
log = appendlog.AppendLog(flasharea.open_area(rp2.Flash(), flasharea.ROM_PAGE)[0]) if AREA else None
j = journal.Journal(256, log=log)
def t(name, f, *a):
    t0 = time.ticks_us()
    f(*a)
    print('J', name, time.ticks_diff(time.ticks_us(), t0))
for i in range(N):
    t('open', j.open, 7, i, S.KIND_POINT, 20000, 1234)
    for k in range(4):
        t('checkpoint', j.checkpoint, 5000 * k, 2000, 1300)
    t('close', j.close, 0, 19990, 2000, 1400)
    j.ack(j.o_id)
    if log and j.settle_due():  # the loop idle between a program's points (app.py)
        t('settle', j.settle)
"""


def journal_figures(tmpdir: pathlib.Path, points: int, timing: str, area: bool = False) -> list[str]:
    """Emulated us per journal write on the chip (open, checkpoint, close), with the flash's stall in them,
    and the erases among those writes (the settle's apart: it runs off the dose)."""
    fs = picoemu.build_fs("pico", tmpdir / "journal.img", without=("main.py",))
    script = JOURNAL_SCRIPT.replace("range(N)", f"range({points})").replace(" if AREA ", f" if {int(area)} ")
    run = picoemu.run_script(script, fs, tmpdir, flash=picoemu.Flash(timing=timing, events=True), timeout_s=900)
    if run.code:
        return [f"  journal: the script failed: {run.stderr or run.error}"]
    took: dict[str, list[int]] = {}
    for line in run.stdout.splitlines():
        if line.startswith("J "):
            _, name, us = line.split()
            took.setdefault(name, []).append(int(us))
    rows = [f"  {name:<10} n={len(t):4d}: p50 {percentile(t, 50):6d} us  p99 {percentile(t, 99):6d} us  "
            f"max {max(t):6d} us  (> 10 ms: {sum(1 for x in t if x > 10000)})" for name, t in took.items()]
    f = run.flash
    rows.append(f"  ({points} points, append area {'on' if area else 'off'}: {f.get('erases')} erases, "
                f"{f.get('programs')} programs ({f.get('unaligned_programs')} unaligned), CPU stalled "
                f"{f.get('busy_us', 0) / 1000:.0f} ms; emulated {run.emulated_s:.2f} s, wall {run.wall_s:.1f} s)")
    return rows


def gate_figures(tmpdir: pathlib.Path, n: int) -> list[str]:
    """The plunger's PIO gate: pulses and time from the pin change to the last STEP edge, trigger and E-stop."""
    fs = picoemu.build_fs("pico", tmpdir / "gate.img", without=("main.py",))
    rows = []
    for pin, name in ((10, "trigger release"), (11, "E-stop press")):
        run = picoemu.run_script(GATE_SCRIPT.replace("range(N)", f"range({n})").replace("20 * 24 * N", f"20 * 24 * {n}"),
                                 fs, tmpdir, watch={2: 3}, inputs={10: 0, 11: 0, 12: 0, 13: 1},
                                 on_mark={"press": {pin: 0}, "release": {pin: 1}}, timeout_s=300)
        if run.code:
            return [f"  gate: the script failed: {run.stderr or run.error}"]
        marks = run.marks
        after, late_us = [], []
        for i, m in enumerate(marks[:-1]):
            if m["name"].startswith("release"):
                nxt = marks[i + 1]
                after.append(sum(nxt["edges"]["2"]) - sum(m["edges"]["2"]))
                late_us.append(max(0, nxt["last_edge_us"].get("2", 0) - m["pins_set_us"]))
        total = sum(marks[-1]["edges"]["2"])
        counted = int(marks[-1]["name"].split()[1])
        rows.append(f"  {name:<16} n={len(after)}: STEP pulses after it p50 {percentile(after, 50)} max {max(after)}; "
                    f"last pulse after it p99 {percentile(late_us, 99)} us (0: none); pin {total} = firmware {counted}"
                    f" ({'equal' if total == counted else 'DIFFERENT'}); emulated {run.emulated_s:.2f} s, wall {run.wall_s:.1f} s")
    return rows


def hello_once_up(dev: Device, wall_s: float):
    """HELLO, asked again until the firmware answers: it compiles its modules on the chip after the USB CDC is
    up, which takes a minute of wall time on a loaded machine."""
    from mesoinject.link import LinkError

    end = time.monotonic() + wall_s
    while True:
        try:
            return dev.hello()
        except LinkError:
            if time.monotonic() > end:
                raise


def dosing_pass_rows(log: pathlib.Path, since_us: float, until_us: float) -> list[str]:
    """The control passes of a window while an axis moved, from emu_boot.py's probe lines in the board's log
    (each report covers <= 100 passes and ends where the motors switch: a report is a moving one when the
    firmware's step counts grew over it), and the passes that wrote the flash."""
    import json

    probes, writes = [], []
    for raw in log.read_bytes().splitlines():
        if raw.startswith(b'{"event":"probe"') or raw.startswith(b'{"event": "probe"'):
            e = json.loads(raw)
            (writes if e["line"].startswith("write") else probes).append(e)
    moving, last = [], None
    for e in probes:
        if not e["line"][:1].isdigit():
            continue
        steps = tuple(e["line"].split()[2:4])
        if since_us < e["emulated_us"] <= until_us and last is not None and steps != last:
            moving.append(e)
        last = steps
    t = passes(moving)
    past = sum(x - 2000 for x in t if x > 2000) / 1000  # dosing.Axis.MAX_GAP_US: what a move lags by
    return [pass_row("passes while moving", moving) + f"; beyond 2 ms {past:.0f} ms (bucket floors)",
            write_row("  of those, writing", [e for e in writes if since_us < e["emulated_us"] <= until_us])]


def point_figures(n: int, tmpdir: pathlib.Path, seed: int) -> list[str]:
    """n points of 20 uL and n of 50 uL on the pin-driven emulated board: record vs truth, truth vs program."""
    import os

    import emuboard
    from mesoinject import program as programs
    from mesoinject.records import RecordStore
    from mesoinject.session import SessionRunner
    from mesosim import VirtualOperator

    os.environ.setdefault("MESOINJECT_KEYS", str(tmpdir / "emu-keys"))
    rows = [f"  points on the pin-driven board (sim model seed {seed}, bore as the table), n={n} each:"]
    with emuboard.EmuBoard(seed=seed, profile={"diameter_error": 0.0}, workdir=tmpdir / "emu") as board:
        rows.append(f"    booted to HELLO: emulated {board.emulated_s:.2f} s, wall {board.wall_s:.1f} s")
        store = RecordStore(tmpdir / "points.db")
        for volume_nl in (20000, 50000):
            # one n-point program (each point's own trigger press; the release between two is what the world
            # holds until the firmware has read it)
            program = dataclasses.replace(programs.load(programs.EXAMPLES / "point-by-point.toml"), count=n,
                                          volume_nl=volume_nl)
            emu0, wall0 = board.emulated_s, board.wall_s
            before = len(board.penetrations)
            with Device.open(board.url) as dev, VirtualOperator(board, gap_s=0.02):
                dev.link.timeout *= board.slowdown
                dev.link.min_rto *= board.slowdown  # as the HIL rig: no retransmission floods the chip
                dev.clock = lambda: board.emulated_s  # the heartbeat every 0.1 s of the board's time
                dev.hello()
                dev.abort()  # as the HIL device fixture: a fault the last run ended in is acknowledged
                runner = SessionRunner(dev, store)
                runner.slowdown = board.slowdown
                lag0 = dev.status()["lag_ms"]
                outcome = runner.run(program, timeout_s=600)
                lag_ms = dev.status()["lag_ms"] - lag0  # how far the moves ran behind their rate (STATUS_REPLY)
            points = [r for r in store.deliveries(outcome.session_id) if r["kind"] == "point"]
            truth = board.penetrations[before:]
            if not outcome.completed or len(points) != len(truth):
                names = [spec.ALARM_NAMES[a] if a < len(spec.ALARM_NAMES) else a for a, _ in outcome.progress.alarms]
                rows.append(f"    {volume_nl / 1000:g} uL: {outcome.outcome} (alarms {names}), {len(points)} records "
                            f"for {len(truth)} needle entries")
            rec = [(r["delivered_nl"] - p.volume_nl) / p.volume_nl * 100 for r, p in zip(points, truth)]
            prog = [(p.volume_nl - volume_nl) / volume_nl * 100 for p in truth]
            depth = [p.max_depth_um for p in truth]
            emu_s, wall_s = board.emulated_s - emu0, board.wall_s - wall0
            for row in dosing_pass_rows(board.log_path, emu0 * 1e6, board.emulated_s * 1e6):
                rows.append("  " + row)
            if rec:
                rows.append(f"    {volume_nl / 1000:g} uL x{len(rec)}: record vs truth mean {statistics.mean(rec):+.2f} % "
                            f"worst {max(rec, key=abs):+.2f} %; truth vs program mean {statistics.mean(prog):+.2f} % "
                            f"worst {max(prog, key=abs):+.2f} %; depth {statistics.mean(depth):.0f} um "
                            f"(programmed {program.depth_um}); emulated {emu_s:.1f} s, wall {wall_s:.0f} s "
                            f"({emu_s / wall_s:.3f}x), primes included; the moves' lag {lag_ms} ms")
        for axis, c in board.steps_on_pins().items():
            rows.append(f"    {axis:<8} STEP pulses on the pin {c['pin']:6d}, steps the firmware issued {c['firmware']:6d} "
                        f"{'(equal)' if c['pin'] == c['firmware'] else '(DIFFERENT)'}; the model moved "
                        f"{sum(board.pin_steps[axis])} (drivers enabled), {board.disabled_edges} edges while disabled")
        store.close()
    return rows


PROFILE_FIELDS = ("technique", "syringe", "head", "needle_length_um", "depth_um", "volume_nl", "count", "cadence_mhz",
                  "flow_nl_s", "vacuum_kpa", "channel", "session", "session_cap_nl")


def pass_profile(tmpdir: pathlib.Path, points: int, volume_nl: int, nappage: bool = False, prime_nl: int = 0,
                 wrapped: bool = True) -> list[str]:
    """Where a control pass's time goes on the chip while the real loop doses (tools/pico-emu/passprof.py): a prime,
    then `points` points (or nappage shots) driven by the script itself, a STATUS every POLL_S of the chip's time;
    emulated us per pass inside each function, self and inclusive, the wrappers' cost taken out."""
    from mesoinject import codec, flash

    build = flash.compile_image("pico", flash.BOARD_ARCH["pico"])
    files = dict(build.files)
    files[flash.CONFIG] = build.config()
    files.pop("main.py", None)
    fs = picoemu.write_fs(files, tmpdir / "profile.img")
    prog = dict(PROGRAM, volume_nl=volume_nl, count=points, channel=1, session=7, session_cap_nl=0)
    if nappage:  # 2 uL shots at 6 Hz, the trigger held through the burst
        prog.update(technique=spec.TECHNIQUE_NAPPAGE, volume_nl=2000, cadence_mhz=6000, depth_um=1000,
                    flow_nl_s=50000)
    head = (f"PROGRAM = {tuple(prog[k] for k in PROFILE_FIELDS)!r}\nPRIME_NL = {prime_nl or spec.HEADS[prog['head']][4] + 500}\n"
            f"POINTS = {points}\nPOLL_MS = {int(POLL_S * 1000)}\nSTATUS_FRAME = {codec.encode(spec.STATUS, 1)!r}\n")
    rows = []
    for wrap in (0, 1) if wrapped else (0,):  # the pass as it runs, then with every named function timed (slower: each call wrapped)
        run = picoemu.run_script(head + f"WRAP = {wrap}\n" + (picoemu.HERE / "passprof.py").read_text(), fs, tmpdir,
                                 inputs=dict(INPUTS), adc={0: ADC0_ZERO_KPA, 1: ADC1_BD_1ML, 2: ADC2_HEAD_30G_4MM},
                                 on_mark={"press": {10: 0}, "release": {10: 1}}, timeout_s=1800,
                                 flash=picoemu.Flash(timing="typ"))
        if run.code:
            return rows + [f"  profile: the script failed: {run.stderr or run.error}", run.stdout[-2000:]]
        lines = [ln.split()[1:] for ln in run.stdout.splitlines() if ln.startswith("PP ")]
        head_row = next(ln for ln in lines if ln[0] == "wrapper_us")
        what = f"{'nappage burst of 2 uL shots' if nappage else f'points of {volume_nl / 1000:g} uL'} x {points}"
        rows.append(f"  {'per-function profile' if wrap else 'pass times'} ({what}, a prime first; "
                    f"{' '.join(head_row[0 if wrap else 6:])}; emulated {run.emulated_s:.1f} s, wall {run.wall_s:.0f} s)")
        for ph, name in (("1", "priming"), ("2", "delivering")):
            t: list[int] = []
            for ln in lines:
                if ln[0] == "hist" and ln[1] == ph:
                    for pair in ln[2:]:
                        i, c = pair.split(":")
                        t += [int(i) * BUCKET_US] * int(c)
            if not t:
                continue
            n = len(t)
            rows.append(f"    {name}: {n} passes, p50 {percentile(t, 50)} us p99 {percentile(t, 99)} us (50 us buckets), "
                        f">= 1 ms {sum(1 for x in t if x >= 1000) / n * 100:.0f} %, mean {sum(t) / n:.0f} us")
            if not wrap:
                continue
            fns = sorted(((int(s), int(inc), int(c), f) for _, p, f, c, inc, s in (ln for ln in lines if ln[0] == "fn")
                          if p == ph), reverse=True)
            rows.append(f"      {'function':<20} {'self us/pass':>12} {'incl us/pass':>12} {'calls/pass':>10}  "
                        f"(self summed: {sum(x[0] for x in fns) / n:.0f} us)")
            rows += [f"      {f:<20} {s / n:12.0f} {inc / n:12.0f} {c / n:10.2f}" for s, inc, c, f in fns if s / n >= 1]
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sample sizes (CI)")
    ap.add_argument("--flash-timing", choices=("typ", "max"), default="typ",
                    help="W25Q16JV erase/program times charged as a CPU stall: typical (default) or maximum")
    ap.add_argument("--points", type=int, default=None, metavar="N",
                    help="N points each of 20 and 50 uL on the pin-driven board (default: 5, none with --quick)")
    ap.add_argument("--only-points", action="store_true", help="the --points figures alone")
    ap.add_argument("--only-busy-gate", type=int, default=0, metavar="N",
                    help="the flash-busy gate figures alone: N trigger releases / E-stops of each kind (flashbusy.py)")
    ap.add_argument("--only-journal", type=int, default=0, metavar="N",
                    help="the journal-write figures alone, N points without and with the append area")
    ap.add_argument("--only-profile", type=int, default=0, metavar="N",
                    help="the per-pass profile alone: a prime, then N points of --profile-nl (tools/pico-emu/passprof.py)")
    ap.add_argument("--profile-nl", type=int, default=30000, help="the profiled points' volume (nL)")
    ap.add_argument("--profile-prime-nl", type=int, default=0, help="the prime's volume (nL; default the head's dead volume + 0.5 uL)")
    ap.add_argument("--profile-times-only", action="store_true", help="the pass times alone (one boot, no wrapped run)")
    ap.add_argument("--profile-nappage", action="store_true", help="profile a nappage burst of N shots instead")
    ap.add_argument("--seed", type=int, default=1, help="the sim model's imperfections (--points)")
    ap.add_argument("--profile", action="store_true",
                    help="time the firmware's functions on the chip too (emu_boot.py PROFILE; slows each pass)")
    ap.add_argument("--primes", type=int, default=1, metavar="N",
                    help="N primes in a row for the pass figures (each journals open, checkpoints, close)")
    ap.add_argument("--no-journal-area", action="store_true",
                    help="the board without its journal append area (flasharea.py): records through littlefs")
    args = ap.parse_args()
    # a dry head's first prime fills at least its dead volume (spec.HEADS: 1.5 uL for the 30G 4 mm)
    n_rtt, prime_nl = (10, spec.HEADS[PROGRAM["head"]][4] + 500) if args.quick else (200, 10000)
    try:
        picoemu.locate()
    except picoemu.Unavailable as e:
        print(f"bench_pico_emu: skipped: {e}")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-pico-emu-") as tmp:
        tmpdir = pathlib.Path(tmp)
        if args.only_busy_gate:
            for row in busy_gate_figures(tmpdir, args.only_busy_gate, args.flash_timing):
                print(row)
            print("  paced words (5 pulses over 6.4 ms each, 25.6 ms queued), the pin changed 3 ms into the erase:")
            for row in busy_gate_figures_paced(tmpdir, args.only_busy_gate, args.flash_timing):
                print(row)
            return 0
        if args.only_journal:
            for area in (False, True):
                for row in journal_figures(tmpdir, args.only_journal, args.flash_timing, area):
                    print(row)
            return 0
        if args.only_profile:
            for row in pass_profile(tmpdir, args.only_profile, args.profile_nl, args.profile_nappage,
                                    args.profile_prime_nl, not args.profile_times_only):
                print(row)
            return 0
        if args.only_points:
            for row in point_figures(args.points or 5, tmpdir, args.seed):
                print(row)
            return 0
        key = secrets.token_bytes(spec.KEY_SIZE)
        fs = picoemu.build_fs("pico", tmpdir / "littlefs.img",
                              {"boot.py": (b"PROFILE = 1\n" if args.profile else b"")
                                           + (b"NO_AREA = 1\n" if args.no_journal_area else b"")
                                           + (picoemu.HERE / "emu_boot.py").read_bytes(), "key": key})
        print(f"bench_pico_emu{' (quick)' if args.quick else ''}: MicroPython RPI_PICO "
              f"({picoemu.locate().uf2.name}) in rp2040js {picoemu.RP2040JS_VERSION}")
        flash = picoemu.Flash(timing=args.flash_timing, events=True)
        with picoemu.Board(fs, watch=WATCH, inputs=INPUTS, adc0=ADC0_ZERO_KPA, flash=flash) as board:
            board.set_adc(1, ADC1_BD_1ML)
            board.set_adc(2, ADC2_HEAD_30G_4MM)
            ready = board.wait("ready", 180)
            print(f"  USB CDC up at emulated {ready['emulated_us'] / 1e6:.2f} s, wall {ready['wall_s']:.1f} s")
            keys = KeyStore(tmpdir / "keys")
            link = Link(board.url, timeout=5.0, min_rto=1.0, patience=300)  # emulator: wall-time jitter, a slow boot
            with Device(link, keys) as dev:
                ident = hello_once_up(dev, 300)
                keys.put(ident.serial, key)
                t = board.stats()
                print(f"  HELLO answered: firmware {ident.firmware} on "
                      f"{ident.board} {ident.serial}, emulated {t['emulated_us'] / 1e6:.2f} s, wall {t['wall_s']:.1f} s")
                print(flash_row("flash until HELLO (boot)", ops_in(board, 0, t["emulated_us"]), t["emulated_us"]))

                idle_from = t["emulated_us"]
                idle_to = wait_probe(board, idle_from, 300, 100)["emulated_us"]  # 100 idle passes

                rtt_wall = []
                a = board.stats()
                for _ in range(n_rtt):
                    t0 = time.perf_counter()
                    dev.status()
                    rtt_wall.append((time.perf_counter() - t0) * 1e3)
                b = board.stats()
                emu_rtt_ms = (b["emulated_us"] - a["emulated_us"]) / n_rtt / 1000
                speed = (b["emulated_us"] - a["emulated_us"]) / 1e6 / (b["wall_s"] - a["wall_s"])

                dev.abort()
                dev.configure(**PROGRAM)
                windows = []  # (start, end) of each prime
                polls = 0
                for _ in range(args.primes):
                    start = board.stats()
                    dev.prime(prime_nl)
                    while dev.status()["state"] == spec.STATE_PRIMING:  # each poll is the link's heartbeat
                        polls += 1
                        dev.next_event(POLL_S / speed)  # a host polls every POLL_S of the board's time, not of ours
                    end = board.stats()
                    windows.append((start["emulated_us"], end["emulated_us"]))
                start = {"emulated_us": windows[0][0], "wall_s": start["wall_s"]}
                retransmits = link.retransmits  # each one sends MAX_FRAME bytes of filler before the frame
                state = dev.status()
            report = wait_probe(board, end["emulated_us"], 300)  # firmware's step count and pin edges, same moment

        print(pass_row("idle", probe_lines(board, idle_from, idle_to)))
        # the probe reports when the motors switch: the first report after PRIME covers the idle passes before it
        priming = [ln for a, b in windows for ln in probe_lines(board, a, b)[1:]]
        print(pass_row(f"priming, host polling{f' ({len(windows)} primes)' if len(windows) > 1 else ''}", priming))
        print(write_row("  passes writing the journal", [ln for a, b in windows for ln in probe_lines(board, a, b, "write")]))
        print(flash_row("  flash while priming", [o for a, b in windows for o in ops_in(board, a, b)],
                        sum(b - a for a, b in windows)))
        print(f"    erases before a prime's last plunger pulse: "
              f"{sum(dose_erases(ops_in(board, a, b), 2) for a, b in windows)} (target 0; "
              f"journal append area {'off' if args.no_journal_area else 'on'})")
        for row in profile_rows("priming", [ln for a, b in windows for ln in probe_lines(board, a, b, "prof")[1:]],
                                len(passes(priming))):
            print(row)
        emu_s = sum(b - a for a, b in windows) / 1e6
        print(f"  prime {prime_nl / 1000:g} uL x {len(windows)}: emulated {emu_s:.3f} s, wall {end['wall_s'] - start['wall_s']:.1f} s, "
              f"{polls} STATUS polls ({retransmits} host retransmissions since HELLO), "
              f"ended in state {state['state']} alarm {state['alarm']}")
        fw_plunger, fw_needle = (int(x) for x in report["line"].split()[2:4])
        edges = report["edges"]
        print("  STEP pulses on the pins vs steps the firmware issued (since boot):")
        for name, pin, issued in (("plunger", 2, fw_plunger), ("needle", 4, fw_needle)):
            low, high = edges[str(pin)]
            print(f"    {name:<8} pin {high:6d} with DIR +, {low:6d} with DIR -; firmware issued {issued:6d} "
                  f"{'(equal)' if high + low == issued else '(DIFFERENT)'}")
        print(f"  STATUS round trip over emulated USB CDC, n={n_rtt}: wall p50 {percentile(rtt_wall, 50):.1f} ms "
              f"p99 {percentile(rtt_wall, 99):.1f} ms; emulated mean {emu_rtt_ms:.2f} ms "
              f"(emulator at {speed:.3f}x real time)")
        f = board.flash_ops
        print(f"  flash: W25Q16JV {args.flash_timing} times (tools/pico-emu/flash.mjs), {len(f)} erases/programs in all")
        print("  trigger release / E-stop 0.5 ms into a 4 KB erase, 3.2 ms of pulses queued (the loop not waiting):")
        if args.quick:  # one more boot: the full run (firmware/tests/test_pico_emu_flash.py checks it in CI)
            print("    figures in the full run (python bench/bench_pico_emu.py)")
        else:
            for row in busy_gate_figures(tmpdir, 20, args.flash_timing):
                print("  " + row)
            print("    paced words (5 pulses over 6.4 ms each, 25.6 ms queued), the pin changed 3 ms into the erase:")
            for row in busy_gate_figures_paced(tmpdir, 20, args.flash_timing):
                print("  " + row)
        print("  journal writes on the chip (emulated us per call: open, each checkpoint, close; flash stall included):")
        if args.quick:
            print("    figures in the full run (python bench/bench_pico_emu.py)")
        else:
            for area in (False, True):
                for row in journal_figures(tmpdir, 40, args.flash_timing, area):
                    print("  " + row)
        n_points = args.points if args.points is not None else 0 if args.quick else 5
        if n_points:
            for row in point_figures(n_points, tmpdir, args.seed):
                print(row)
        else:
            print("  points vs the pin-driven ground truth: in the full run (--points N)")
        print("  plunger gate (board_steppio.py), the loop handing over 20 steps/ms and never reading the inputs:")
        if args.quick:  # two more boots: the full run (firmware/tests/test_pico_emu.py checks the gate in CI)
            print("    figures in the full run (python bench/bench_pico_emu.py)")
        else:
            for row in gate_figures(tmpdir, 40):
                print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
