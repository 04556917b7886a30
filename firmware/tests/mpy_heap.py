# Runs on MicroPython with the target's heap: RAM after boot and during a nappage burst, and the
# heap allocated per shot in steady state, for the real App (journal, link, device, dosing).
# The board is an integer-only stand-in (the simulator's physical model allocates floats in the
# same heap, so it cannot be measured there). argv[1]: a directory for the flash files.
import gc
import json
import os
import sys
from time import ticks_us

os.chdir(sys.argv[1])
from mesofw import app  # noqa: E402
from mesoprotocol import spec  # noqa: E402


class Board:
    NAME = "heap"
    PLUNGER_STEPS_PER_MM = 3200
    NEEDLE_STEPS_PER_MM = 100
    NEEDLE_SPEED_UM_S = 50000
    PLUNGER_PLAY_MAX_UM = 120
    ANTIDRIP_UM = 20
    COMPLIANCE_NL_PER_KPA = 1
    JOURNAL_CELLS = 6000

    def __init__(self):
        self.trig = False
        self.needle = 0
        self.bytes_out = 0

    def serial_number(self):
        return "HEAP-0001"

    def reset_cause(self):
        return 0

    def host_read(self, buf):
        return 0

    def host_write(self, buf, n):
        self.bytes_out += n

    def wait_input(self, timeout_ms):
        pass

    def motors(self, on):
        pass

    def plunger_step(self, n):
        pass

    def needle_step(self, n):
        self.needle += n

    def trigger(self):
        return self.trig

    def estop(self):
        return False

    def pressure_kpa(self):
        return 0

    def plunger_stalled(self):
        return False

    def syringe_end(self):
        return False

    def needle_home(self):
        return self.needle <= 0

    def led(self, code):
        pass

    def feed_watchdog(self):
        pass

    def service(self, now_us):
        pass


gc.collect()
base = gc.mem_alloc()
board = Board()
a = app.App(board)
dev = a.device
dev.boot(0)
gc.collect()
out = {"heap": gc.mem_alloc() + gc.mem_free(), "after_boot": gc.mem_alloc(), "firmware": gc.mem_alloc() - base}
cfg = (spec.TECHNIQUE_NAPPAGE, 1, 1, 4000, 1000, 2000, 300, 10000, 100000, 7)
dev.handle(spec.ABORT, (), ticks_us())
dev.handle(spec.CONFIGURE, cfg, ticks_us())
dev.handle(spec.PRIME, (2000,), ticks_us())
while dev.seq.active():
    dev.tick(ticks_us())
dev.handle(spec.ARM, (), ticks_us())
dev.tick(ticks_us())  # the trigger seen released once after arming
board.trig = True


def shots_until(n):
    while dev.done < n:
        a.link.poll()
        dev.link_seen(spec.STATUS)  # the host's heartbeat, as a command would
        dev.tick(ticks_us())


shots_until(10)
gc.collect()
out["mid_burst"] = gc.mem_alloc()
before = 0  # bound first: a new global would grow the module's dict inside the measurement
gc.disable()
before = gc.mem_alloc()
shots_until(60)
out["bytes_per_shot"] = (gc.mem_alloc() - before) / 50
gc.enable()
out["shots"] = dev.done
print(json.dumps(out))
