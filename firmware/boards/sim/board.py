# Board layer of the simulated injector: the same interface a real board's
# board.py offers, backed by the physical model in board_model.py.
# Serial to the host is the process's stdin/stdout (a raw pty); the harness talks
# to the model over a separate loopback control socket (MESOSIM_CTRL=host:port), in JSON lines
# whose one schema is board_ctrl.py (imported once the firmware is up: see _schema).
import json
import os
import select
import socket
import sys
import termios
from time import _SCHED_MASK, excuse, sleep_ms, ticks_add, ticks_diff, ticks_ms, ticks_us, time_ns

from time import _stat as board_clock_stat  # noqa: E402

import board_flash
import time as board_clock  # (the board clock's totals: taken off, asked for)

NAME = "sim"
PLUNGER_STEPS_PER_MM = 3200  # 200 steps/rev x 16 microsteps, 1 mm lead
NEEDLE_STEPS_PER_MM = 100
NEEDLE_SPEED_UM_S = 50000
WDT_REPORT_MS = 100  # how often the watchdog feed is passed on to the harness
GAP_REPORT_US = 8000  # a gap this long between two control passes is reported, with what the flash did in it
# (more than the firmware's idle wait of 5 ms: while it ticks, passes are 1 ms apart)


def safe_mode():
    # the inputs held while the board powers up (the harness's boot_inputs): the service gesture
    # is the E-stop pressed and the trigger held
    held = (os.getenv("MESOSIM_BOOT_INPUTS") or "").split(",")
    return "trigger" in held and "estop" in held


# The physical world the board is wired to: the model and its hidden profile (bore, compliance, play,
# sensor errors...). Only this module holds them: the Board object the firmware gets has no path to
# them, and the profile leaves the environment once read (firmware/tests/test_ground_truth_hidden.py).
# board_model is imported only as the world is built, so a stand-in board (firmware/virtual) that reads only the
# constants does not load the physics into its heap; mypy takes MYPY as true and sees the type
MYPY = False
if MYPY:
    import board_model
_world: "board_model.Model" = None  # type: ignore[assignment]  # built by the Board (_build_world)
_CONFIG_KEYS = ("serial", "flash_erase_ms", "flash_page_us", "journal_area")  # the board's own settings, not physics
_profile: dict = {}


def _world_config():
    global _profile
    _profile = json.loads(os.getenv("MESOSIM_PROFILE") or "{}")
    _profile["state"] = os.getenv("MESOSIM_STATE") or ""
    os.unsetenv("MESOSIM_PROFILE")
    os.unsetenv("MESOSIM_STATE")
    return {k: _profile.pop(k) for k in _CONFIG_KEYS if k in _profile}


def _build_world(report):
    global _world, _profile
    import board_model

    _world = board_model.Model(_profile, report)
    _profile = {}


def _raw_nonblocking(fd):
    # raw bytes (no CR/LF mangling, no signals on 0x03) and reads that return
    # what is there: VMIN=0, VTIME=0
    termios.setraw(fd)
    attr = termios.tcgetattr(fd)
    attr[6][5] = 0
    attr[6][6] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attr)


def _edge_us(at_ns):
    # the board time of a pin edge the harness made at at_ns (its time.time_ns(): the same machine's
    # wall clock): this process took it later, when it next read its control socket (a pass, a flash
    # stall or the OS's scheduling later); latency figures count from the edge, not from that read
    now = ticks_us()
    return ticks_add(now, -max(0, (time_ns() - at_ns) // 1000))


class Board:
    NAME = NAME
    PLUNGER_STEPS_PER_MM = PLUNGER_STEPS_PER_MM
    NEEDLE_STEPS_PER_MM = NEEDLE_STEPS_PER_MM
    NEEDLE_SPEED_UM_S = NEEDLE_SPEED_UM_S
    PLUNGER_PLAY_MAX_UM = 120  # worst-case lead-screw backlash + stopper breakaway
    ANTIDRIP_UM = 20  # suck-back beyond the play: draws the drop back into the needle
    NEEDLE_PLAY_MAX_UM = 100  # the depth axis's lost motion at most (measured at boot against the home switch)
    PRESSURE_LAG_US = 900  # the pressure sensor's filter time constant (nominal)
    JOURNAL_CELLS = int(os.getenv("MESOSIM_JOURNAL_CELLS") or 6000)  # records; tests shrink it

    def __init__(self):
        import micropython

        micropython.kbd_intr(-1)
        _raw_nonblocking(0)
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        config = _world_config()  # this board's own settings; the physics go to the model only
        self._serial = config.get("serial", "SIM-0000")
        self._trigger = False
        self._trigger_read = True
        self._trigger_next = None
        self._estop = False
        self._hang = False
        self._sensor_failed = False
        self._clamp_um = -1  # the clamp sensor's reading when injected (a sensor fault); -1: the syringe loaded
        self._head_id_mv = -1  # the head ID's reading when injected (a fault); -1: the head fitted
        self._stall_ms = 0  # one injected stall of the control loop (a long flash erase, a GC): load
        self._motors = False
        self._gate = False  # the Pico's step PIO gate (board_steppio.py), modelled: see plunger_step
        self._unsent = 0
        self._estop_gate = False  # ... and its E-stop gate on every other move (both axes), outside FAULT
        self._needle_unsent = 0
        self._ctrl_buf = b""
        self._ctrl_schema = None  # board_ctrl, once the firmware has its own memory (see _schema)
        self._fed_ms = ticks_ms()
        host, port = (os.getenv("MESOSIM_CTRL") or "127.0.0.1:0").split(":")
        self._ctrl = socket.socket()
        self._ctrl.connect(socket.getaddrinfo(host, int(port))[0][-1])
        self._ctrl.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: ground truth must not wait for Nagle
        self._poll = select.poll()
        self._poll.register(0, select.POLLIN)
        self._poll.register(self._ctrl, select.POLLIN)
        self._ctrl_poll = select.poll()
        self._ctrl_poll.register(self._ctrl, select.POLLIN)
        _build_world(self._send)
        self._flash_busy = 0  # 1 while the data flash erases or programs (the firmware is stalled)
        # the journal's folder on flash that takes its datasheet time (board_flash.py)
        self.flash = board_flash.mount("journal.d", config.get("flash_erase_ms", board_flash.ERASE_MS),
                                       config.get("flash_page_us", board_flash.PAGE_US), self._flash_wait)
        # the journal's append area (profile journal_area 0: none, the Pico's and ESP32-S3's path today)
        self._journal_area = self.flash.log_area if config.get("journal_area", 1) else None
        self._pass_us = ticks_us()  # the last control pass, and the flash's counters then (gap reports)
        self._pass_reads = self._pass_busy = 0
        self._sched = board_clock_stat  # (time.py: the board clock reads the same file)
        self._pass_cpu = self._pass_wait = self._pass_io = self._pass_sent = self._pass_idle = 0
        self._pass_taken = self._pass_asked = 0
        self._idle_us = 0  # time in wait_input: the firmware had nothing to do
        self._sent_us = 0  # time in serial writes and control-channel sends (blocked if the harness does not read)
        self._send({"kind": "boot", "reset_cause": self.reset_cause()})

    # ---- identity ---------------------------------------------------------------
    def serial_number(self):
        return self._serial

    def reset_cause(self):
        return int(os.getenv("MESOSIM_RESET") or 0)

    # ---- host serial port --------------------------------------------------------
    def host_read(self, buf):
        return self._in.readinto(buf) or 0

    def host_write(self, buf, n):
        t = ticks_us()
        self._out.write(buf, n)  # a MicroPython stream's write(buf, max_len): no slice allocated
        self._sent_us += ticks_diff(ticks_us(), t)

    def wait_input(self, timeout_ms):
        # sleep until host or control input, or timeout; serves the control channel
        t = ticks_us()
        excuse(timeout_ms * 1000)  # the firmware's own wait (the board clock keeps it)
        for obj, _ in self._poll.poll(timeout_ms):
            if obj is self._ctrl:
                self._serve_ctrl()
        self._idle_us += ticks_diff(ticks_us(), t)

    # ---- actuators and sensors -----------------------------------------------------
    def motors(self, on):
        self._motors = on

    CHANNELS = 2  # two syringes, two plunger axes (board_model: the second syringe, the shared path)

    def plunger_channel(self, channel):
        # the plunger axis plunger_step drives, and the clamp syringe_barrel_um and the end switch read
        _world.select(channel)

    def plunger_step(self, n):
        if (self._gate and n > 0 and (not self._trigger or self._estop)) or (self._estop_gate and self._estop):
            self._unsent += n  # the gate keeps them off the pin, as the Pico's PIO does
            return
        if self._motors:  # a disabled driver ignores step pulses
            _world.plunger(n)

    def plunger_gate(self, on):
        self._gate = on

    def plunger_unsent(self):
        n = self._unsent
        self._unsent = 0
        return n

    def estop_gate(self, on):
        self._estop_gate = on

    def needle_unsent(self):
        n = self._needle_unsent
        self._needle_unsent = 0
        return n

    def needle_step(self, n):
        if (self._gate and n > 0 and (not self._trigger or self._estop)) or (self._estop_gate and self._estop):
            self._needle_unsent += n
            return
        if self._motors:
            _world.needle(n)

    def wait_steps(self):
        pass  # the model moves within the step call

    def plunger_busy(self):
        # the driver still letting out the last batch of steps (the model spreads a batch over ~1-2 ms)
        return _world.pending_nl > 0

    def trigger(self):
        # every level the operator sets is seen by at least one read: a change that came
        # before the previous one was read waits for this read (a real finger is not that quick)
        value = self._trigger
        self._trigger_read = True
        if self._trigger_next is not None:
            self._set_trigger(self._trigger_next, ticks_us())  # the level changes now
        return value

    def _set_trigger(self, pressed, edge_us):
        self._trigger = pressed
        self._trigger_next = None
        self._trigger_read = False
        self._injected("trigger", pressed, edge_us)

    def estop(self):
        return self._estop

    def pressure_kpa(self):
        # a read is of the line now (the model advanced to this instant), as an ADC conversion is: the
        # firmware's dense reads of a prime's tail (compliance.Probe.tail) see it fall between passes
        _world.advance(ticks_us())
        return 0 if self._sensor_failed else int(_world.sensed_kpa())

    def compliance_measured(self, probe, *given):
        # a prime's estimate (given: the volume pushed, the estimate or -1, the one now in force) and what the
        # firmware derived it from (compliance.Probe's fields, named as in board_ctrl's "probe"), to the harness
        # beside the model's truth: a diagnosis (the firmware hands out what it measured; the truth stays here).
        # Names from the schema, not literals: each literal is a string on the standin's 192 KB heap too
        ctrl = self._schema()
        msg = _world.probe_truth()
        for i, name in enumerate(ctrl.fields(ctrl.FROM_BOARD, "probe")):
            if i < len(given):
                msg[name] = given[i]
            elif hasattr(probe, name):
                msg[name] = getattr(probe, name)
        sched = self._sched
        sched.read()
        msg["t_us"] = ticks_us()
        msg["waited_us"] = (sched.wait - self._pass_wait) & _SCHED_MASK
        msg["taken_us"] = (board_clock.taken_us - self._pass_taken) & _SCHED_MASK
        self._send(msg)

    def syringe_barrel_um(self):
        # the clamp sensor: outer diameter of the syringe barrel in the clamp, um (0: no reading)
        return _world.barrel_um if self._clamp_um < 0 else self._clamp_um

    def head_id_mv(self):
        # the needle head's ID resistor against the board's pull-up, mV (spec.HEADS)
        return _world.head_mv if self._head_id_mv < 0 else self._head_id_mv

    def skin_contact(self):
        # a single-needle head's contact switch: closed while the gun is held on the skin
        return _world.contact

    def vacuum_kpa(self):
        # the vacuum sensor under a multi-needle head, kPa below ambient
        _world.advance(ticks_us())
        return int(_world.vacuum_kpa)

    def vacuum_pump(self, on):
        _world.advance(ticks_us())
        _world.pump = on

    def plunger_stalled(self):
        # the stepper driver's stall flag, cleared when read
        stalled = _world.stalled
        _world.stalled = False
        return stalled

    def syringe_end(self):
        return _world.at_end()

    def needle_home(self):
        return _world.depth_um <= 0

    def led(self, code):
        self._send({"kind": "led", "code": code, "t_us": ticks_us()})

    def reset(self):
        # the harness pulls the reset line: it restarts the process (a soft reset, as on an MCU)
        self._motors = False
        self._send({"kind": "reset"})
        while True:
            sleep_ms(100)

    def journal_log(self):
        # the journal's append area (board_flash.Area: raw flash beside the littlefs)
        return self._journal_area

    def needle_figures(self, prime, watch, verdict):
        # the blocked-needle watch's figures of a judged dose, with the model's truth (bench_heads)
        w = _world
        self._send({"kind": "needle_figures", "prime": prime, "verdict": verdict, "flow16": watch.flow16,
                    "mean16": watch.mean16, "ref16": watch.ref_flow16, "zero16": watch.zero16, "n1": watch.n1,
                    "n2": watch.n2, "line_kpa_s_per_nl": w.resistance * w.occlusion / w._head_conductance(),
                    "offset_kpa": w.sensor.offset, "noise_kpa": w.sensor.noise})

    def feed_watchdog(self):
        now = ticks_ms()
        if ticks_diff(now, self._fed_ms) >= WDT_REPORT_MS:
            self._fed_ms = now
            self._send({"kind": "wdt"})

    def service(self, now_us):
        if self._ctrl_schema is None:
            self._schema()
        # the world to now, not to the pass's start (now_us): the pass's reads and steps brought it past that,
        # and the model takes an earlier time as its clock - the next advance ran the span again, the line
        # discharging twice over it: every read of a steady flow 10-15 % low, by as much as the pass's work
        # took, so the prime's and a point's flow pressures came 5-10 % apart a board (#17)
        _world.advance(ticks_us())
        self._gap(ticks_us())
        if self._ctrl_poll.poll(0):
            self._serve_ctrl()
        if _world.moved:  # physical state changed: the harness keeps it across resets
            self._send(_world.snapshot())
        while self._hang:  # injected firmware hang: nothing runs, nothing is fed
            pass
        if self._stall_ms:  # injected load: this pass takes that much longer, once
            until = ticks_add(ticks_ms(), self._stall_ms)
            self._stall_ms = 0
            while ticks_diff(until, ticks_ms()) > 0:
                pass

    def _gap(self, now_us):
        # a long gap between two passes (service() to service(), so the counters cover the same span)
        # while anything could move, and what filled it: littlefs reading
        # (a traversal), the flash busy (erase/program time), or neither (a collection, or the host
        # machine took the CPU away)
        flash = self.flash
        gap = ticks_diff(now_us, self._pass_us)
        sched = self._sched
        if self._motors:
            sched.read()
        cpu = sched.cpu
        wait = sched.wait
        if gap >= GAP_REPORT_US and self._motors:
            self._send({"kind": "gap", "t_us": now_us, "us": gap, "reads": flash.reads - self._pass_reads,
                        "busy_us": flash.busy_us - self._pass_busy, "cpu_us": (cpu - self._pass_cpu) & _SCHED_MASK,
                        "waited_us": (wait - self._pass_wait) & _SCHED_MASK, "io_us": flash.io_us - self._pass_io,
                        "send_us": self._sent_us - self._pass_sent, "idle_us": self._idle_us - self._pass_idle,
                        "taken_us": (board_clock.taken_us - self._pass_taken) & _SCHED_MASK,
                        "asked_us": (board_clock.asked_us - self._pass_asked) & _SCHED_MASK})
        self._pass_idle = self._idle_us
        self._pass_taken = board_clock.taken_us
        self._pass_asked = board_clock.asked_us
        self._pass_io = flash.io_us
        self._pass_sent = self._sent_us
        self._pass_cpu = cpu
        self._pass_wait = wait
        self._pass_us = now_us
        self._pass_reads = flash.reads
        self._pass_busy = flash.busy_us

    def _flash_wait(self, until_us, erasing):
        # the flash is busy until until_us and the CPU with it: the firmware runs nothing, but the
        # operator and the harness go on (their inputs are taken and stamped as they come)
        self._flash_busy = 1
        if erasing:
            self._send({"kind": "erase", "t_us": ticks_us()})
        while True:
            left = ticks_diff(until_us, ticks_us())
            if left <= 0:
                break
            if left >= 1000:
                excuse(left // 1000 * 1000)  # the flash's own time (the board clock keeps it)
                if self._ctrl_poll.poll(left // 1000):
                    self._serve_ctrl()
        self._flash_busy = 0

    # ---- control channel (harness <-> model): JSON lines, board_ctrl.py's schema ------------
    def _schema(self):
        # board_ctrl is compiled after the firmware has allocated its long-lived buffers (the journal's
        # index is 6 KB in one piece): compiled before them, it leaves a 192 KB heap too fragmented
        if self._ctrl_schema is None:
            import board_ctrl

            self._ctrl_schema = board_ctrl
        return self._ctrl_schema

    def _send(self, msg):
        # not checked here (each loop pass sends one): the harness checks what arrives against FROM_BOARD
        t = ticks_us()
        self._ctrl.send(json.dumps(msg) + "\n")
        self._sent_us += ticks_diff(ticks_us(), t)

    def _injected(self, kind, value, edge_us=None):
        _world.moved = True
        # echo an input change with the board time and the syringe content at that instant:
        # the harness measures time to safe state and volume after a fault from these
        # (and whether the flash had the firmware stalled at that instant); edge_us: when the pin changed
        now = ticks_us()
        self._send({"kind": "took", "input": kind, "value": value, "t_us": now,
                    "edge_us": now if edge_us is None else edge_us,
                    "content_nl": round(_world.content_nl, 3), "flash_busy": self._flash_busy,
                    "forward_steps": _world.forward_steps})

    def _serve_ctrl(self):
        data = self._ctrl.recv(256)
        if not data:
            sys.exit(0)  # harness gone: power off
        self._ctrl_buf += data
        while b"\n" in self._ctrl_buf:
            line, self._ctrl_buf = self._ctrl_buf.split(b"\n", 1)
            if not line.strip():
                continue
            schema = self._schema()
            try:
                self._take(schema.decode(schema.TO_BOARD, line))
            except ValueError as e:  # the harness's mistake: said in the board's log, the board goes on
                sys.stderr.write("control channel: %s\n" % e)

    def _take(self, msg):
        kind = msg["kind"]
        if kind == "trigger":
            if self._trigger_read:
                self._set_trigger(msg["pressed"], _edge_us(msg["at_ns"]))
            else:
                self._trigger_next = msg["pressed"]
        elif kind == "estop":
            self._estop = msg["pressed"]
            self._injected(kind, msg["pressed"], _edge_us(msg["at_ns"]))
        elif kind == "truth?":
            self._send(_world.truth())
        elif kind == "occlude":
            _world.occlusion = msg["factor"]
            _world.occlusion_ramp = msg["ramp_per_s"]
            self._injected(kind, msg["factor"])
        elif kind == "content":
            _world.content_nl = msg["content_nl"]
            self._injected(kind, msg["content_nl"])
        elif kind == "sensor":
            self._sensor_failed = not msg["working"]
            self._injected(kind, msg["working"])
        elif kind == "load":
            _world.load(msg["diameter_um"], msg["content_nl"], msg["barrel_um"])
            self._injected(kind, msg["diameter_um"])
        elif kind == "clamp":
            self._clamp_um = msg["reading_um"]
            self._injected(kind, msg["reading_um"])
        elif kind == "stall":
            self._stall_ms = msg["ms"]
            self._injected(kind, msg["ms"])
        elif kind == "fit_head":
            _world.fit_head(msg["id_mv"], msg["dead_nl"], msg["conductance"])
            self._injected(kind, msg["id_mv"])
        elif kind == "block":
            _world.block_needle(msg["needle"], msg["factor"])
            self._injected(kind, msg["factor"])
        elif kind == "head_id":
            self._head_id_mv = msg["reading_mv"]
            self._injected(kind, msg["reading_mv"])
        elif kind == "contact":
            _world.advance(ticks_us())
            _world.contact = msg["held"]
            self._injected(kind, msg["held"])
        elif kind == "head_truth?":
            self._send(_world.head_truth())
        elif kind == "load_channel":
            _world.load_channel(msg["channel"], msg["diameter_um"], msg["content_nl"], msg["barrel_um"])
            self._injected(kind, msg["channel"])
        elif kind == "drug_truth?":
            self._send(_world.drug_truth())
        elif kind == "hang":
            self._hang = True
