# Runs on MicroPython: the simulated board's clock (firmware/boards/sim/time.py, over the built-in `time`)
# takes off the time the process waited for a CPU, as the kernel reports it (a fake schedstat here).
import json
import sys

sys.path.insert(0, sys.argv[1])  # firmware/boards/sim: its time.py before the built-in
import time  # noqa: E402

builtin = time._t


class FakeStat:
    f = True  # "the file is open"

    def __init__(self):
        self.wait = 0
        self.cpu = 0
        self.next_wait = 0

    def read(self):
        self.wait = self.next_wait


fake = FakeStat()
time._stat = fake
time._last_wait = 0
time._wait_us = time._wait_ms = time._carry_us = 0
out = {"overridden": time is not builtin and hasattr(time, "_catch_up")}
time._last_raw = 1000
fake.next_wait = 4500  # 4.5 ms of the next gap spent waiting for a CPU
time._catch_up(1000 + 10000)  # a 10 ms gap
out["after_gap"] = [time._wait_us, time._wait_ms, time._carry_us]
fake.next_wait = 9000
time._catch_up(1000 + 10000 + 100)  # 100 us later: under CHECK_US, the kernel is not asked
out["short"] = time._wait_us
time._catch_up(1000 + 10000 + 100 + 5000)
out["second_gap"] = [time._wait_us, time._wait_ms, time._carry_us]
# the clock as the firmware reads it: the built-in's less what was waited, bracketed by two built-in reads
# (a process held up between two reads moves both clocks alike: only the bracket is exact)
before = builtin.ticks_us()
board = time.ticks_us()
after = builtin.ticks_us()
out["ticks_us_bracket"] = [builtin.ticks_diff(board, before), builtin.ticks_diff(after, board)]
print(json.dumps(out))
