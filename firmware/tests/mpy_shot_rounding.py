# Runs on MicroPython: each nappage shot's own rounding to whole plunger steps, with the carried remainder
# spent as before (Metering.steps_for) and within the dose's tolerance (Metering.steps_for_dose), for every
# syringe, 1-5 uL shots, calibrations at the window's ends; and a shot's top-up with it. Results as JSON.
import json

from mesofw import dosing
from mesoprotocol import spec

out = []
for code in spec.SYRINGES:
    for ppm in (950000, 1000000, 1050000):
        pl = spec.pl_per_step(code, spec.PLUNGER_STEPS_PER_MM, ppm)
        for nl in (1000, 2000, 5000):
            row = {"syringe": code, "ppm": ppm, "pl_per_step": pl, "nl": nl}
            for key, method in (("carried", "steps_for"), ("dose", "steps_for_dose")):
                m = dosing.Metering(pl)
                f = getattr(m, method)
                worst = total = 0
                for _ in range(300):
                    steps = f(nl)
                    err = steps * pl - nl * 1000
                    worst = err if abs(err) > abs(worst) else worst
                    total += err
                row[key] = [worst, total]  # the worst shot's error and the 300 shots', pL
            out.append(row)

# A nappage shot and its top-up (the wheal's stored volume, pushed on the way out): the top-up rounded with the
# carried remainder (steps_for, as before), on its own to the nearest step (as before steps_topup), or with its
# dose's rounding (steps_topup). Per shot: the worst error of the steps pushed against the shot's volume plus
# what the line stored, pL; 300 shots.
def near(m):
    return lambda nl: (nl * 1000 + m.pl_step // 2) // m.pl_step



topups = []
for code in spec.SYRINGES:
    for ppm in (944000, 1000000):
        pl = spec.pl_per_step(code, spec.PLUNGER_STEPS_PER_MM, ppm)
        for nl in (1000, 2000):
            for stored_nl in (5, 10, 12, 15):
                row = {"syringe": code, "ppm": ppm, "pl_per_step": pl, "nl": nl, "stored_nl": stored_nl}
                for key, method in (("carried", "steps_for"), ("near", None), ("joint", "steps_topup")):
                    m = dosing.Metering(pl)
                    topup = getattr(m, method) if method else near(m)
                    worst = 0
                    for _ in range(300):
                        steps = m.steps_for_dose(nl) + topup(stored_nl)
                        err = steps * pl - (nl + stored_nl) * 1000
                        worst = err if abs(err) > abs(worst) else worst
                    row[key] = worst
                topups.append(row)
print(json.dumps({"rows": out, "topups": topups}))
