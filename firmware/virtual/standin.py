# A board with no hardware for drivers of the firmware on MicroPython (heap bench, fuzzer, VirtualDevice): integer-only,
# no time of its own; the simulated board's mechanics constants. Subclasses add what they watch.
import board as _simboard  # the sim board's constants (steps/mm, speeds, play, compliance)


class StandInBoard:
    def __init__(self):
        self.trig = False
        self.motors_on = False
        self.needle_pos = 0
        self.plunger_pos = 0
        self.led_code = 0

    def serial_number(self):
        return "%s-0001" % self.NAME.upper()

    def reset_cause(self):
        return 0

    def host_read(self, buf):
        return 0

    def host_write(self, buf, n):
        pass

    def wait_input(self, timeout_ms):
        pass

    def motors(self, on):
        self.motors_on = on

    CHANNELS = 1

    def plunger_channel(self, channel):
        pass

    def plunger_step(self, n):
        self.plunger_pos += n

    def needle_step(self, n):
        self.needle_pos += n

    def wait_steps(self):
        pass

    def plunger_gate(self, on):
        pass  # ideal mechanics: no hardware gate; the firmware stops the plunger

    def plunger_unsent(self):
        return 0

    def estop_gate(self, on):
        pass

    def needle_unsent(self):
        return 0

    def trigger(self):
        return self.trig

    def estop(self):
        return False

    def pressure_kpa(self):
        return 0

    def plunger_stalled(self):
        return False

    barrel_um = 6600  # the syringe clamp holds a 1 mL barrel (spec.SYRINGES)

    def syringe_barrel_um(self):
        return self.barrel_um

    head_mv = 300  # a single 30G 4 mm needle's ID resistor (spec.HEADS 1)

    def head_id_mv(self):
        return self.head_mv

    def skin_contact(self):
        return True  # the stand-in gun is always on the skin

    def vacuum_kpa(self):
        return 0  # no vacuum head

    def vacuum_pump(self, on):
        pass

    def syringe_end(self):
        return False

    def needle_home(self):
        return self.needle_pos <= 0

    def led(self, code):
        self.led_code = code

    def feed_watchdog(self):
        pass

    def service(self, now_us):
        pass


for _k in dir(_simboard.Board):
    if _k.isupper():
        setattr(StandInBoard, _k, getattr(_simboard.Board, _k))
StandInBoard.NEEDLE_PLAY_MAX_UM = 0  # ideal mechanics: no lost motion to measure at boot (no time passes here)


def mount_cwd_as_root():
    # the working directory becomes / (as the simulator mounts a board's flash): whatever the
    # firmware writes, by a relative or an absolute path, stays in it
    import os
    import vfs

    here = os.getcwd()
    vfs.umount("/")
    vfs.mount(vfs.VfsPosix(here), "/")
    os.chdir("/")
