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
        self.next_cpu = 0

    def read(self):
        self.wait = self.next_wait
        self.cpu = self.next_cpu


fake = FakeStat()
time._stat = fake
time._last_wait = time._last_cpu = time._excused_us = time._balance_us = 0
time._wait_us = time._wait_ms = time._carry_us = 0
out = {"overridden": time is not builtin and hasattr(time, "_catch_up")}
time._last_raw = time._read_raw = 1000
fake.next_wait = 4500  # 4.5 ms of the next gap spent waiting for a CPU
time.excuse(10000)  # the rest asleep (as the firmware asked: nothing else to take off)
time._catch_up(1000 + 10000)  # a 10 ms gap
out["after_gap"] = [time._wait_us, time._wait_ms, time._carry_us]
fake.next_wait = 9000
time.excuse(5000)
time._catch_up(1000 + 10000 + 100)  # 100 us later: under CHECK_US, the kernel is not asked
out["short"] = time._wait_us
time._catch_up(1000 + 10000 + 100 + 5000)
out["second_gap"] = [time._wait_us, time._wait_ms, time._carry_us]
# the clock as the firmware reads it: the built-in's less what was waited, bracketed by two built-in reads
# (a process held up between two reads moves both clocks alike: only the bracket is exact)
time._last_raw = time._read_raw = builtin.ticks_us()  # (from the fake times above to the built-in's)
before = builtin.ticks_us()
board = time.ticks_us()
after = builtin.ticks_us()
out["ticks_us_bracket"] = [builtin.ticks_diff(board, before), builtin.ticks_diff(after, board)]

# Time the host took that was neither run time, nor a wait for a CPU, nor asked for (a vCPU stolen, interrupt
# work, a sleep's wake-up held back): off the clock, less the run-time figure's lag (a tick)
def scenario(spans):
    # spans: (host us, run us the kernel counted, waited us, asked-for us); what came off the clock in all
    time._last_raw = time._read_raw = raw = 100000
    time._wait_us = time._wait_ms = time._carry_us = time._balance_us = time._excused_us = 0
    for span, ran, waited, asked in spans:
        fake.next_cpu = fake.cpu + ran
        fake.next_wait = fake.wait + waited
        time.excuse(asked)
        raw += span
        time._catch_up(raw)
    return [time._wait_us, time._wait_ms, time._carry_us]


out["taken"] = scenario([(30000, 1000, 0, 0)])  # 30 ms, of which the kernel counts 1 ms run
out["ran"] = scenario([(30000, 27000, 0, 0)])  # the firmware's own 30 ms pass (the figure lags: 27 ms)
out["slept"] = scenario([(30000, 0, 0, 30000)])  # a 30 ms sleep it asked for
# a 0.6 ms sleep (the loop's wait for its tick) that took 30 ms, 2 ms of it waiting for a CPU
out["late_wake"] = scenario([(30000, 100, 2000, 600)])
out["within_tick"] = scenario([(3000, 0, 0, 0)])  # 3 ms, none of it counted: within the lag
# 20 passes of 1 ms run and a 0.9 ms sleep, each 3 ms long on the host: 1.1 ms lost a pass, never a tick's
# worth in one, 22 ms in all
out["sliced"] = scenario([(3000, 1000, 0, 900)] * 20)
# a poll for input asked 5 ms and input came at once, many times (credit that must not hide a later loss)
out["credit"] = scenario([(300, 100, 0, 5000)] * 50 + [(30000, 1000, 0, 0)])


def clock_values(calls):
    # calls: (host us since the last call, waited us in it) with the run time keeping pace; the board clock after each
    time._last_raw = time._read_raw = raw = 100000
    time._wait_us = time._wait_ms = time._carry_us = time._balance_us = time._excused_us = time._owed_us = 0
    values = []
    fake.next_cpu, fake.next_wait = fake.cpu, fake.wait
    for span, waited in calls:
        fake.next_cpu += span - waited  # what the kernel would report if asked now
        fake.next_wait += waited
        raw += span
        time._catch_up(raw)
        values.append(raw - time._wait_us)
    return values


# short preemptions under load: 40 calls 150 us apart (under CHECK_US: the kernel is not asked), each 100 us of it
# waiting for a CPU, then a call 300 us later that asks - 4 ms of waits found in a 300 us gap; then quiet passes
out["stepped"] = clock_values([(150, 100)] * 40 + [(300, 0)] + [(1000, 0)] * 8)
print(json.dumps(out))
