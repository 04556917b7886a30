"""The emulated Pico as a HIL board: the real MicroPython RPI_PICO firmware in rp2040js (picoemu.py) wired
to the simulated board's physical model (firmware/boards/sim/board_model.py, the same file, run here in
CPython on the chip's clock), so the HIL suites run on it with `--mesoinject-board pico-emu`.

The model is driven by what the pins do: the runner (run.mjs --lockstep) stops the chip every emulated
millisecond (and at each needle STEP edge, so the home switch is read as a real one would be, and at each
conversion of the pressure ADC, so each read sees the line at its own time with its own noise) and hands over
the STEP edges of both axes since the last stop, signed by their DIR pin and only while the drivers are
enabled, and the vacuum pump's pin. The model moves them (lost motion, compliance, Poiseuille flow, the
wheal...), keeps the ground truth (volume out of the needle, depth, needle entries) and sets what the firmware
reads: the pressure sensor on ADC0, the clamp's potentiometer on ADC1, the head ID on ADC2, the vacuum on ADC3,
the needle-home, syringe-end and skin-contact switches. Then the chip goes on. Emulated time is the board's
time: the model's clock is the chip's (ticks_us as the Pico counts it, wrapping at 2^30).

The operator's inputs and the faults that make sense on a chip (trigger, E-stop, occlusion, an emptying
syringe, a dead pressure sensor, clamp and head-ID readings, skin contact) go through the same BoardControls
as the simulated board's (host/mesosim/control.py) and take effect at the next stop, in emulated-time order.
What needs the unix-port sim (power cuts, link faults, stalls, hangs, a balance, its flash) raises
ControlError saying so: such tests are marked sim_only.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import json
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
import types

import picoemu

REPO = picoemu.REPO
MODEL_FILE = REPO / "firmware" / "boards" / "sim" / "board_model.py"

# boards/pico/board.py's pin map (the firmware's, read by the runner on the pins)
PLUNGER_STEP, PLUNGER_DIR, NEEDLE_STEP, NEEDLE_DIR, MOTOR_EN = 2, 3, 4, 5, 6
TRIGGER, ESTOP, NEEDLE_HOME, PLUNGER_END, CONTACT, VACUUM_PUMP = 10, 11, 12, 13, 14, 15


def _emu_boot_pins() -> dict:
    """emu_boot.py's output pins, as it sets them on the chip (its module-level LED_CODE_PINS, TRIGGER_SEEN_PIN)."""
    tree = ast.parse((pathlib.Path(__file__).parent / "emu_boot.py").read_text())
    return {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name) and t.id in ("LED_CODE_PINS", "TRIGGER_SEEN_PIN")}


# emu_boot.py: the LED code + 1 (bit 0 first); the trigger as the firmware's debounced read last returned it (1: pressed)
LED_CODE_PINS, TRIGGER_SEEN_PIN = _emu_boot_pins()["LED_CODE_PINS"], _emu_boot_pins()["TRIGGER_SEEN_PIN"]
ADC_PRESSURE, ADC_BARREL, ADC_HEAD, ADC_VACUUM = 0, 1, 2, 3
# board_stepdir.py's scales: pressure and vacuum sensors 333 mV + span, the clamp 300 mV + 120 mV/mm
PRESSURE_ZERO_MV, PRESSURE_SPAN_MV, PRESSURE_SPAN_KPA = 333, 2667, 689
VACUUM_SPAN_KPA = 100
BARREL_ZERO_MV, BARREL_MV_PER_MM = 300, 120
TICK_US = 1000  # the world's step: the firmware's control tick
# a finger holds the trigger up or down at least this long (the firmware debounces 3 ms, as a real gun must):
# a release and a press sent back to back reach the pin this far apart, as the sim board makes sure every
# level is read once
FINGER_US = 20000
# ... and until the firmware's debounced read has returned the level (TRIGGER_SEEN_PIN), as the sim board holds
# one until it is read: a 20 ms release between two points that fell in a flash stall (the point's journal close
# stalls the RP2040's core 60-100 ms) was never seen, and the next press was the same hold: TRIGGER_STUCK
TICKS_MASK = (1 << 30) - 1
# the slowest the emulator runs on a loaded 2-core machine (0.05x real time): every host-side wait is
# this many times longer than on the simulated board (waits end when their condition holds, so a faster
# emulator costs nothing)
SLOWDOWN = 20.0
UNSUPPORTED = {
    "stall": "stalls the firmware's loop from outside",
    "hang": "hangs the firmware from outside",
}


def adc12(mv: float) -> int:
    """A voltage (mV of the 3.3 V reference) as the RP2040's 12-bit ADC count."""
    return max(0, min(4095, round(mv * 4096 / 3300)))


class ChipClock:
    """The chip's clock as MicroPython's time module gives it, for the model: emulated us, wrapping at 2^30."""

    def __init__(self) -> None:
        self.now_us = 0  # emulated us since the chip started (unwrapped)

    def ticks_us(self) -> int:
        return self.now_us & TICKS_MASK

    def ticks_ms(self) -> int:
        return (self.now_us // 1000) & TICKS_MASK

    @staticmethod
    def ticks_diff(a: int, b: int) -> int:
        return ((a - b + (1 << 29)) & TICKS_MASK) - (1 << 29)


def load_model(clock: ChipClock) -> types.ModuleType:
    """board_model.py as a CPython module whose `time` is the chip's clock (the file is MicroPython that
    imports ticks_us, ticks_ms and ticks_diff from time; CPython's has none): one model, two interpreters."""
    shim = types.ModuleType("time")
    shim.__dict__.update(time.__dict__)
    shim.ticks_us, shim.ticks_ms, shim.ticks_diff = clock.ticks_us, clock.ticks_ms, clock.ticks_diff  # type: ignore[attr-defined]
    spec = importlib.util.spec_from_file_location(f"emu_board_model_{id(clock)}", MODEL_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules["time"]
    sys.modules["time"] = shim  # only while the file's imports run
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules["time"] = saved
    return module


class _Actions:
    """BoardControls' control channel on the emulated board: a message checked against the sim's schema
    (board_ctrl.py) is queued, and the world takes it at the next stop of the chip."""

    error = None
    connected = True

    def __init__(self, board: EmuBoard):
        self._board = board

    def send(self, kind: str, **fields) -> None:
        from mesosim.control import ControlError, schema

        if kind in UNSUPPORTED:
            raise ControlError(f"{kind}: the emulated Pico cannot do this ({UNSUPPORTED[kind]}): a sim-only test")
        try:
            line = schema().encode(schema().TO_BOARD, dict(kind=kind, **fields))
        except ValueError as e:
            raise ControlError(str(e)) from None
        self._board.queue_action(json.loads(line))


def _controls():
    from mesosim.control import BoardControls

    return BoardControls


class EmuBoard(_controls()):  # type: ignore[misc]
    """An emulated Pico running this checkout's pico firmware image, its world the sim's model.

    seed, profile: the model's imperfections and explicit parameters, as mesosim.SimBoard takes them.
    Use as a context manager; `url` is its USB CDC on socket://, `penetrations`, `truth()`, `set_trigger()`,
    `set_estop()`, `occlude()`, `set_content()`, `wait()`, `led` as on the simulated board.
    """

    slowdown = SLOWDOWN

    def __init__(self, *, syringe: int = 1, head: int = 1, seed: int | None = None, profile: dict | None = None,
                 workdir: str | pathlib.Path | None = None, timeout_s: float = 6 * 3600):
        from mesoprotocol import spec
        from mesosim.harness import imperfections
        from mesosim.heads import head_profile

        self.syringe = syringe
        self.seed = seed
        self.timeout_s = timeout_s
        self._own_workdir = workdir is None
        self.workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="pico-emu-"))
        self.log_path = self.workdir / "board.log"
        self.profile = {
            "diameter_um": spec.SYRINGES[syringe][1],
            "barrel_um": spec.SYRINGES[syringe][4],
            "content_nl": spec.syringe_capacity_nl(syringe),
            "plunger_steps_per_mm": 3200,  # board_stepdir: 200 steps/rev x 16 on a 1 mm lead screw
            "needle_steps_per_mm": 100,
        }
        self.profile.update(head_profile(head, seed))
        if seed is not None:
            self.profile.update(imperfections(seed, syringe))
        # the pico board declares no needle play (board_stepdir has no NEEDLE_PLAY_MAX_UM: it does not measure
        # one at boot): a build with play measures and declares it; the model's axis has none here
        self.profile["needle_play_um"] = 0.0
        self.profile.update(profile or {})
        self._init_controls()
        self.control = _Actions(self)  # type: ignore[assignment]
        self._cond = threading.Condition()
        self._actions: list[dict] = []
        self.clock = ChipClock()
        self.model = None
        self.sensor_failed = False
        self.clamp_um = -1  # the clamp sensor's reading when injected; -1: the loaded syringe's
        self.head_id_mv = -1
        self.pin_steps = {"plunger": [0, 0], "needle": [0, 0]}  # STEP edges on the pins, [DIR -, DIR +], enabled
        self.disabled_edges = 0  # STEP edges while the drivers were disabled (the model ignores them)
        self.ticks = 0
        self.sensor_draws = 0  # readings drawn from the model's pressure sensor (its noise, its lag, at the chip's us)
        self.adc_reads: dict[str, int] = {}  # the chip's ADC conversions since boot, per channel (run.mjs counts them)
        self.compliance_seen: list[list[int]] = []  # per prime: [pushed nL, its estimate pL/kPa or -1, the one in force]
        self.wall_started = 0.0
        self.serial = ""
        self.factory_key = hashlib.sha256(b"pico-emu factory key").digest()[: spec.KEY_SIZE]
        self._inputs = {TRIGGER: 1, ESTOP: 0}  # switches at rest: trigger up, E-stop closed
        self._sent: dict = {}  # what the chip's pins and ADC last got from the world
        self._proc: subprocess.Popen | None = None
        self.balance = None  # no simulated balance under its needle: needs_balance tests skip
        self.probes: list[dict] = []  # emu_boot.py's pass reports (the firmware's step counts, the pins' edges then)
        self._exited: int | None = None
        self._trigger_us = -FINGER_US  # emulated us the trigger last changed
        self._trigger_level = 0  # the level last set: 1 pressed
        self._led_code = -1  # the LED code the firmware set last (emu_boot.py's pins); -1: none yet

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> EmuBoard:
        bins = picoemu.locate()  # picoemu.Unavailable: say how to get the binaries
        self.workdir.mkdir(parents=True, exist_ok=True)
        fs = picoemu.write_fs(self.image(), self.workdir / "littlefs.img")
        self.model = load_model(self.clock).Model(dict(self.profile), self._report)
        read = self.model.sensor.read

        def counted_read():  # the test's accounting: one reading drawn per conversion (test_pins)
            self.sensor_draws += 1
            return read()
        self.model.sensor.read = counted_read
        with contextlib.closing(__import__("socket").socket()) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"socket://127.0.0.1:{port}"
        cmd = picoemu._command(bins, fs, {PLUNGER_STEP: PLUNGER_DIR, NEEDLE_STEP: NEEDLE_DIR},
                               {**self._inputs, NEEDLE_HOME: 0, PLUNGER_END: 1, CONTACT: 0}, self.timeout_s,
                               ["--tcp", str(port), "--lockstep", str(TICK_US), "--sync-on", str(NEEDLE_STEP),
                                "--sync-adc", str(ADC_PRESSURE),
                                "--enable", str(MOTOR_EN), "--outputs",
                                ",".join(map(str, (VACUUM_PUMP, *LED_CODE_PINS, TRIGGER_SEEN_PIN)))])
        self._log = open(self.log_path, "ab")
        self.wall_started = time.monotonic()
        self._proc = subprocess.Popen(cmd, cwd=picoemu.HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._log, bufsize=0)
        threading.Thread(target=self._read, name="pico-emu-world", daemon=True).start()
        try:
            # main.py's Device sets the LED as it starts: the firmware is up (it compiles its modules on the chip)
            self.wait(lambda: self.led_set, 10, "the emulated Pico's firmware did not start")  # ~1.5 s of chip time
            self._pair()
        except BaseException:
            self.stop()
            raise
        return self

    def image(self) -> dict[str, bytes]:
        """What `mesoinject flash --board pico` writes (every module compiled for the Cortex-M0+ by mpy-cross,
        build.json), the factory key, and the emulator's boot.py (emu_boot.py: the pass probe, the
        LED code on spare pins)."""
        from mesoinject import flash

        build = flash.compile_image("pico", flash.BOARD_ARCH["pico"])
        files = dict(build.files)
        files[flash.CONFIG] = build.config()
        files["boot.py"] = (picoemu.HERE / "emu_boot.py").read_bytes()
        files["key"] = self.factory_key
        return files

    def _pair(self) -> None:
        # factory-paired, as the simulated board: its key on its flash and in this host's key store
        from mesoinject.client import Device
        from mesoinject.keys import KeyStore
        from mesoinject.link import Link

        with Device(Link(self.url, timeout=0.25 * self.slowdown), None) as dev:
            self.serial = dev.hello().serial
        KeyStore().put(self.serial, self.factory_key)

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                self._write([{"quit": 1}])
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
        if self._own_workdir:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EmuBoard:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- waiting (as SimBoard.wait, host timeouts x slowdown) ------------------------------------
    def wait(self, predicate, timeout: float, what: str):
        with self._cond:
            ok = self._cond.wait_for(lambda: self._exited is not None or predicate(), timeout * self.slowdown)
            if not ok or (self._exited is not None and not predicate()):
                why = f"the emulator exited ({self._exited})" if self._exited is not None else \
                    f"within {timeout * self.slowdown:.0f} s wall"
                raise TimeoutError(f"{what}: {why} (board log: {self.log_path})")

    def wait_led(self, leds, timeout: float) -> int:
        self.wait(lambda: self.led in leds, timeout, "the status LED did not show %s" % (leds,))
        return self.led

    @property
    def led_set(self) -> bool:
        return self._led_code >= 0

    @property
    def emulated_s(self) -> float:
        return self.clock.now_us / 1e6

    @property
    def wall_s(self) -> float:
        return time.monotonic() - self.wall_started

    def steps_on_pins(self, timeout: float = 5.0) -> dict[str, dict[str, int]]:
        """Per axis, the STEP pulses its pin made since boot ("pin") and the steps the firmware handed to its
        driver ("firmware", emu_boot.py's probe), both at the chip's next pass report."""
        since = self.clock.now_us
        self.wait(lambda: self.probes and self.probes[-1]["emulated_us"] > since, timeout, "no pass report")
        probe = self.probes[-1]
        issued = [int(x) for x in probe["line"].split()[2:4]]
        return {axis: {"pin": sum(probe["edges"][str(pin)]), "firmware": n}
                for axis, pin, n in (("plunger", PLUNGER_STEP, issued[0]), ("needle", NEEDLE_STEP, issued[1]))}

    def pressure_reads(self) -> dict[str, int]:
        """The chip's conversions of the pressure ADC since boot and the readings the model's sensor gave the world
        meanwhile (each with its own noise draw, at its emulated us): equal when each conversion is one reading."""
        with self._cond:
            return {"conversions": self.adc_reads.get(str(ADC_PRESSURE), 0), "sensor": self.sensor_draws}

    # ---- the world's turn: at each stop of the chip ---------------------------------------
    def queue_action(self, msg: dict) -> None:
        with self._cond:
            if self._exited is not None:
                raise ConnectionError("the emulated Pico is not running")
            self._actions.append(msg)

    def _write(self, lines: list[dict]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write("".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines).encode())

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            if not raw.startswith(b"{"):
                continue
            event = json.loads(raw)
            if event["event"] == "tick":
                try:
                    with self._cond:
                        self._tick(event)
                        self._cond.notify_all()
                except BaseException as e:  # a world that fails stops the chip: said in the log, not a hang
                    self._log.write(f"world failed at {self.clock.now_us} us: {e!r}\n".encode())
                    self._log.flush()
                    with contextlib.suppress(OSError):
                        self._write([{"quit": 1}])
                    break
            else:
                self._log.write(raw)
                self._log.flush()
                if event["event"] == "probe" and event["line"].startswith("comp "):
                    with self._cond:  # a prime's compliance estimate (emu_boot.py): pushed nL, estimate, in force
                        self.compliance_seen.append([int(x) for x in event["line"].split()[1:4]])
                if event["event"] == "probe" and event["line"][:1].isdigit():
                    with self._cond:
                        self.probes.append(event)
                        del self.probes[:-100]
                        self._cond.notify_all()
        code = self._proc.wait()
        with self._cond:
            self._exited = code
            self._cond.notify_all()

    def _tick(self, event: dict) -> None:
        m = self.model
        self.clock.now_us = event["t_us"]
        self.ticks += 1
        steps = event["steps"]
        self.disabled_edges += event.get("disabled", 0)
        self.adc_reads = event.get("reads", self.adc_reads)
        for axis, pin in (("needle", NEEDLE_STEP), ("plunger", PLUNGER_STEP)):
            n = steps.get(str(pin), 0)
            if n:
                self.pin_steps[axis][1 if n > 0 else 0] += abs(n)
                (m.needle if axis == "needle" else m.plunger)(n)
        m.advance(self.clock.ticks_us())
        out = event["out"]
        pump = bool(out[str(VACUUM_PUMP)])
        if pump != m.pump:
            m.pump = pump
        code = sum(out[str(p)] << i for i, p in enumerate(LED_CODE_PINS)) - 1
        if code >= 0 and code != self._led_code:
            self._led_code = code
            self._on_world({"kind": "led", "code": code, "t_us": self.clock.ticks_us()})
            self._say(f"led {code}")
        seen = out[str(TRIGGER_SEEN_PIN)] == self._trigger_level
        while self._actions:  # in order; a trigger change waits for the finger (FINGER_US, seen), and what follows it
            msg = self._actions[0]
            if msg["kind"] == "trigger" and (self.clock.now_us - self._trigger_us < FINGER_US or not seen):
                break
            self._take(self._actions.pop(0))
        self._write(self._sense(event.get("adc", ())) + [{"go": 1}])

    def _sense(self, converting=()) -> list[dict]:
        # what the firmware reads, from the world as it is now; only what changed is sent. The pressure sensor
        # only for a conversion under way (converting: run.mjs --sync-adc), one reading of the model's sensor
        # per conversion as on the simulated board: its own noise draw at its own time. Held from one tick to
        # the next, 20-30 of the firmware's tight reads (the line's zero, a prime's dense tail) saw one noise
        # draw: the zero off by a whole draw (0.8 kPa, not 0.15), the tail's moments off by ms - a prime's
        # compliance estimate from the prior to 15x the truth, so a point's top-up, run to run (issue 14)
        m = self.model
        kpa = None
        if ADC_PRESSURE in converting:
            kpa = m.sensed_kpa()  # drawn all the same when dead (pressure_reads: one reading a conversion)
            kpa = 0.0 if self.sensor_failed else kpa
        barrel = m.barrel_um if self.clamp_um < 0 else self.clamp_um
        head = m.head_mv if self.head_id_mv < 0 else self.head_id_mv
        want = {
            ("pin", TRIGGER): self._inputs[TRIGGER], ("pin", ESTOP): self._inputs[ESTOP],
            ("pin", NEEDLE_HOME): 0 if m.depth_um <= 0 else 1,
            ("pin", PLUNGER_END): 0 if m.at_end() else 1,
            ("pin", CONTACT): 0 if m.contact else 1,
            ("adc", ADC_BARREL): adc12(BARREL_ZERO_MV + barrel * BARREL_MV_PER_MM / 1000) if barrel else 0,
            ("adc", ADC_HEAD): adc12(head),
            ("adc", ADC_VACUUM): adc12(PRESSURE_ZERO_MV + m.vacuum_kpa * PRESSURE_SPAN_MV / VACUUM_SPAN_KPA),
        }
        lines = [{k: ch, "value": v} for (k, ch), v in want.items() if self._sent.get((k, ch)) != v]
        self._sent.update(want)
        if kpa is not None:
            lines.append({"adc": ADC_PRESSURE, "value": adc12(PRESSURE_ZERO_MV + kpa * PRESSURE_SPAN_MV / PRESSURE_SPAN_KPA)})
        return lines

    def _report(self, msg: dict) -> None:
        # the model's ground truth (board_ctrl FROM_BOARD), as the sim board sends it to its harness
        if msg["kind"] in ("pen", "truth"):
            self._on_world(msg)

    def _say(self, what: str) -> None:
        # the world's side of the timeline in the board log, beside the chip's probe lines (emulated us, wall s)
        self._log.write(f'{{"event":"world","what":"{what}","emulated_us":{self.clock.now_us},'
                        f'"wall_s":{self.wall_s:.3f}}}\n'.encode())

    def _injected(self, kind: str, value) -> None:
        self._say(f"{kind} {value}")
        m = self.model
        t = self.clock.ticks_us()
        self._on_world({"kind": "took", "input": kind, "value": value, "t_us": t, "edge_us": t,
                        "content_nl": round(m.content_nl, 3), "flash_busy": 0, "forward_steps": m.forward_steps})

    def _take(self, msg: dict) -> None:
        # board.py's _take for what a chip's world can do (the sim board's own faults are refused in _Actions)
        m = self.model
        kind = msg["kind"]
        if kind == "trigger":
            self._inputs[TRIGGER] = 0 if msg["pressed"] else 1  # to GND: low = pressed
            self._trigger_us = self.clock.now_us
            self._trigger_level = 1 if msg["pressed"] else 0
            self._injected(kind, msg["pressed"])
        elif kind == "estop":
            self._inputs[ESTOP] = 1 if msg["pressed"] else 0  # normally closed: high = pressed
            self._injected(kind, msg["pressed"])
        elif kind == "truth?":
            self._on_world(m.truth())
        elif kind == "occlude":
            m.occlusion = msg["factor"]
            m.occlusion_ramp = msg["ramp_per_s"]
            self._injected(kind, msg["factor"])
        elif kind == "content":
            m.content_nl = msg["content_nl"]
            self._injected(kind, msg["content_nl"])
        elif kind == "sensor":
            self.sensor_failed = not msg["working"]
            self._injected(kind, msg["working"])
        elif kind == "load":
            m.load(msg["diameter_um"], msg["content_nl"], msg["barrel_um"])
            self._injected(kind, msg["diameter_um"])
        elif kind == "clamp":
            self.clamp_um = msg["reading_um"]
            self._injected(kind, msg["reading_um"])
        elif kind == "head_id":
            self.head_id_mv = msg["reading_mv"]
            self._injected(kind, msg["reading_mv"])
        elif kind == "contact":
            m.advance(self.clock.ticks_us())
            m.contact = msg["held"]
            self._injected(kind, msg["held"])
        elif kind == "fit_head":
            m.fit_head(msg["id_mv"], msg["dead_nl"], msg["conductance"])
            self._injected(kind, msg["id_mv"])
        elif kind == "block":
            m.block_needle(msg["needle"], msg["factor"])
            self._injected(kind, msg["factor"])
        else:  # asked of the sim board only (head_truth?, drug_truth?, load_channel: its second channel)
            self._log.write(f"world: {kind} is not modelled on the emulated Pico\n".encode())
