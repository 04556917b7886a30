# The VirtualDevice's device side (host/mesoinject/virtual.py starts it with the flash folder as its
# working directory): the real firmware (app.App, its own control loop) on a stand-in board with
# ideal mechanics (steps counted, no physics, no faults) and a virtual clock, in this one process.
#
# The host's serial link: a loopback TCP socket this process listens on (MESOVIRT_PORT), opened as
#   socket://127.0.0.1:PORT; the newest connection wins (a re-plugged cable).
# The test's side: stdin takes "trigger 0|1", "estop 0|1", "truth"; stdout says "listening", "led N",
#   "trigger N", "estop N", "truth PLUNGER_STEPS NEEDLE_STEPS CLOCK_US STEPS_PER_MM"; stdin closed: power off.
# The clock: the firmware's sleeps (its 1 ms tick while anything moves, its idle wait) move it at once,
#   no real time passes; but never further than the link timeout (less a margin) past the instant
#   the host's bytes last arrived: there it waits, really, for the host or the test. So the link
#   watchdog never fires while a host is connected and polling, whatever the host's pace, and a point
#   that takes 0.6 s on a board costs one or two of the host's polls. With no host connected the idle
#   wait takes its real time (a host that goes away is LINK_LOST after the link timeout, as on a board).
import os
import select
import socket
import sys
import time  # the real clock: the mesofw modules get the virtual one (vclock)

import vclock
from standin import StandInBoard, mount_cwd_as_root
from vclock import CLOCK, v_ms, v_ticks_diff
from mesoprotocol import spec as S
from mesofw import app as fwapp

MARGIN_US = 20000  # the horizon stays this far inside the link timeout (ticks_ms rounding, a late tick)
_board = []


def _sleep_us(us):
    _board[0].advance(us, False)


vclock.install(_sleep_us)  # before the flash is mounted as /: every firmware module is imported now


class VirtualBoard(StandInBoard):
    NAME = "virtual"
    JOURNAL_CELLS = int(os.getenv("MESOVIRT_JOURNAL_CELLS") or 6000)

    def __init__(self, port):
        super().__init__()
        self.barrel_um = int(os.getenv("MESOVIRT_BARREL_UM") or self.barrel_um)
        self.estop_pressed = False
        self.levels = []  # trigger levels the test set, each seen by one read at least (a finger is not that quick)
        self.inbox = b""
        self.host = None
        self.app = None
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        self.srv.listen(1)
        self.poller = select.poll()
        self.poller.register(self.srv, select.POLLIN)
        self.poller.register(0, select.POLLIN)

    def serial_number(self):
        return os.getenv("MESOVIRT_SERIAL") or "VIRTUAL-0001"

    # ---- the host's serial link ----------------------------------------------------
    def host_read(self, buf):
        n = min(len(buf), len(self.inbox))
        if n:
            buf[:n] = self.inbox[:n]
            self.inbox = self.inbox[n:]
        return n

    def host_write(self, buf, n):
        if self.host is not None:
            try:
                self.host.send(bytes(buf[:n]))
            except OSError:
                self._drop_host()

    def wait_input(self, timeout_ms):
        self.advance(timeout_ms * 1000, True)

    # ---- the test's inputs and the gun's outputs ---------------------------------------
    def trigger(self):
        if self.levels:
            self.trig = self.levels.pop(0)
        return self.trig

    def estop(self):
        return self.estop_pressed

    def led(self, code):
        self.led_code = code
        print("led %d" % code)

    def reset(self):
        print("reset")  # the firmware asked for a reset (REPL command): this board powers off
        sys.exit(0)

    # ---- the clock --------------------------------------------------------------------
    def advance(self, us, interruptible):
        # time passes: us at once up to the horizon; an idle wait (interruptible) ends early on input
        if self.trig and self.led_code != S.LED_DELIVERING:
            self._finger_time(us, interruptible)
            return
        target = CLOCK[0] + us
        while True:
            self._serve(0)
            if interruptible and self.inbox:
                return
            if self.host is None or self.app is None:
                if interruptible:
                    self._serve(max(0, (target - CLOCK[0]) // 1000))  # no host: the idle wait is real
                CLOCK[0] = target
                return
            horizon = self._horizon()
            if CLOCK[0] < horizon:
                CLOCK[0] = min(target, horizon)
            if CLOCK[0] >= target:
                return
            if self.inbox:  # at the horizon, the host's bytes in: time waits for them, read them now
                self.app.link.poll()
                continue
            self._serve(-1)  # at the horizon: wait for the host (or the test)
            if interruptible:
                return

    def _finger_time(self, us, interruptible):
        # the trigger held past its point (or before it starts): the finger lets go in real time, so time
        # passes as really as it does for the finger - at once, a held-trigger limit (TRIGGER_STUCK: the
        # point + 2 s) ran out while a loaded host's test thread was still on its way to the release
        start = time.ticks_us()
        while True:
            left = us - time.ticks_diff(time.ticks_us(), start)
            if left <= 0 or (interruptible and self.inbox) or self.levels or self.estop_pressed:
                break
            self._serve(left // 1000)
            if self.inbox and self.app is not None:
                self.app.link.poll()
        CLOCK[0] += min(us, time.ticks_diff(time.ticks_us(), start))

    def _horizon(self):
        # the link timeout (less a margin) after the last command the device took: the host's
        # silence is never longer on this clock than it really was
        dev = self.app.device
        silent_us = v_ticks_diff(v_ms(), dev.link_rx_ms) * 1000
        return CLOCK[0] - silent_us + dev.settings[S.SET_LINK_TIMEOUT] * 1000 - MARGIN_US

    def _serve(self, timeout_ms):
        for obj, _ in self.poller.poll(timeout_ms):
            if obj is self.srv:
                conn, _ = self.srv.accept()
                self._drop_host()
                conn.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: a reply must not wait for the host's ACK
                self.host = conn
                self.poller.register(conn, select.POLLIN)
            elif obj is self.host:
                data = self.host.recv(512)
                if data:
                    self.inbox += data
                else:
                    self._drop_host()
            elif obj == 0:
                self._control(sys.stdin.readline())

    def _drop_host(self):
        if self.host is not None:
            self.poller.unregister(self.host)
            self.host.close()
            self.host = None
            self.inbox = b""

    def _control(self, line):
        words = line.split()
        if not words:
            sys.exit(0)  # stdin closed: the test is gone, power off
        if words[0] == "trigger":
            self.levels.append(words[1] == "1")
        elif words[0] == "estop":
            self.estop_pressed = words[1] == "1"
        elif words[0] == "truth":
            print("truth %d %d %d %d" % (self.plunger_pos, self.needle_pos, CLOCK[0], self.PLUNGER_STEPS_PER_MM))
            return
        print(line.strip())  # the input taken


def main():
    port = int(os.getenv("MESOVIRT_PORT") or 0)
    try:
        board = VirtualBoard(port)
    except OSError as e:
        print("bindfail %s" % e)
        sys.exit(3)
    _board.append(board)
    mount_cwd_as_root()
    board.app = fwapp.App(board)
    print("listening %d" % port)
    board.app.run()


main()
