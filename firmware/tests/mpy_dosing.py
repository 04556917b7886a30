# Runs on MicroPython: metering drift and CONFIGURE limit checks, results as JSON.
import json
import sys

from mesofw import dosing, settings
from mesoprotocol import rules, spec

out = {"drift": [], "limits": []}
for code in spec.SYRINGES:
    pl = spec.pl_per_step(code, 3200)
    m = dosing.Metering(pl)
    total_steps = 0
    for _ in range(1000):
        total_steps += m.steps_for(30000)
    out["drift"].append({"syringe": code, "pl_per_step": pl, "steps": total_steps,
                         "error_pl": total_steps * pl - 1000 * 30000 * 1000})

for case in json.load(open(sys.argv[1])):
    # a program alone, or [program, session total so far, session cap in force] (a continued session)
    cfg, used_nl, in_force_nl = (case, 0, 0) if isinstance(case[0], int) else case
    result = rules.check_configure(tuple(cfg), rules.shot_time_ms, settings.defaults(),
                                   lambda code: rules.least_dose_nl(spec.pl_per_step(code, spec.PLUNGER_STEPS_PER_MM)),
                                   used_nl, in_force_nl)
    out["limits"].append(list(result) if result else None)
# syringe maths (spec): the host computes the same on CPython; boundary calibrations included
out["syringe_maths"] = [[code, ppm, spec.syringe_capacity_nl(code, ppm), spec.pl_per_step(code, 3200, ppm)]
                        for code in spec.SYRINGES for ppm in (spec.MIN_CAL_PPM, 987654, 1000000, 1012345, spec.MAX_CAL_PPM)]
# a move ticked by a loop that falls behind: every pass 5 ms after the last (a flash stall, a slow chip)
steps = []
axis = dosing.Axis(steps.append, 0)
axis.move_to(10000, 10000, 0)  # 10000 steps at 10000 steps/s: 1 s of move time
now = 0
passes = 0
while axis.moving():
    now += 5000
    passes += 1
    axis.tick(now)
out["lag"] = {"passes": passes, "elapsed_ms": now // 1000, "lag_ms": axis.lag_ms, "steps": sum(steps),
              "late_steps": max(steps)}
# the same on a board whose driver paces batches (the Pico's PIO, 8 ms): passes 5 ms apart, then 10 ms apart
for gap_us in (5000, 10000):
    batches = []
    axis = dosing.Axis(lambda n, span_us: batches.append((n, span_us)), 0, 8000)
    axis.move_to(10000, 10000, 0)
    now = 0
    while axis.moving():
        now += gap_us
        axis.tick(now)
    out["paced_lag_%d" % gap_us] = {"elapsed_ms": now // 1000, "lag_ms": axis.lag_ms, "batches": batches}
# a suck-back (448 steps back at 17800 steps/s) whose clock steps 1.15 ms back after its first pass (the simulated
# board's did, under load), then runs on
steps = []
axis = dosing.Axis(steps.append, 0)
axis.move_to(-448, 17800, 0)
for now in [1000, -150] + list(range(850, 40000, 1000)):
    axis.tick(now)
out["clock_back"] = steps
print(json.dumps(out))
