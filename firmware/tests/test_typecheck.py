"""tools/typecheck.sh: board images pass mypy against their port's MicroPython stubs, and
firmware code that uses a CPython-only module or API fails it."""

import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "typecheck.sh"

CPYTHON_ONLY = '''\
import os
import threading


def flash_path(name):
    return os.path.join("/", name)


def later(fn):
    threading.Timer(1.0, fn).start()
'''

MICROPYTHON_OK = '''\
import os
from time import ticks_diff, ticks_ms


def age_ms(since):
    return ticks_diff(ticks_ms(), since)


def remove(name):
    os.remove("/" + name)
'''


def typecheck(*args):
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.req("SR-046")
@pytest.mark.parametrize("board", ["sim", "pico", "esp32s3"])
def test_cpython_only_api_in_firmware_fails(tmp_path, board):
    probe = tmp_path / "probe.py"
    probe.write_text(CPYTHON_ONLY)
    proc = typecheck("--board", board, "--extra", f"{probe}:mesofw/probe.py")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f'{probe}:2: error: Cannot find implementation or library stub for module named "threading"' in proc.stdout
    assert f'{probe}:6: error: Module has no attribute "path"' in proc.stdout


@pytest.mark.req("SR-046")
def test_micropython_api_in_firmware_passes(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(MICROPYTHON_OK)
    proc = typecheck("--board", "sim", "--extra", f"{probe}:mesofw/probe.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
