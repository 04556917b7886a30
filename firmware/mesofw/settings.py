# Device settings (spec.SETTINGS_TABLE): limits lowered on this device, kept on flash.
# A setting can never exceed its hard ceiling; a missing or corrupt file means defaults.
import os

from mesoprotocol import spec

FILE = "settings"


def defaults():
    return [row[2] for row in spec.SETTINGS_TABLE]


def load(path=FILE):
    try:
        with open(path) as f:
            values = [int(v) for v in f.read().split()]
    except (OSError, ValueError):
        return defaults()
    if len(values) < len(spec.SETTINGS_TABLE):  # an earlier firmware's file: its settings stay, new rows default
        values += defaults()[len(values):]
    if len(values) != len(spec.SETTINGS_TABLE) or check(values):
        return defaults()
    return values


def check(values):
    # None if acceptable, else (field index 1-based, value, limit) of the first bad one
    for i, row in enumerate(spec.SETTINGS_TABLE):
        if values[i] < row[3]:
            return (i + 1, values[i], row[3])
        if values[i] > row[4]:
            return (i + 1, values[i], row[4])
    return None


def save(values, path=FILE):
    # write-then-rename: a power cut leaves the old file or the new one, never half
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(" ".join(str(v) for v in values))
    os.rename(tmp, path)


# ---- calibration: effective bore area per syringe code, in ppm of the table's -------------
CAL_FILE = "calibration"


def load_calibration(path=CAL_FILE):
    table = {}
    try:
        with open(path) as f:
            for line in f:
                words = line.split()
                if len(words) == 2:
                    code, ppm = int(words[0]), int(words[1])
                    if code in spec.SYRINGES and spec.MIN_CAL_PPM <= ppm <= spec.MAX_CAL_PPM:
                        table[code] = ppm
    except (OSError, ValueError):
        pass
    return table


def save_calibration(table, path=CAL_FILE):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        for code in table:
            f.write("%d %d\n" % (code, table[code]))
    os.rename(tmp, path)
