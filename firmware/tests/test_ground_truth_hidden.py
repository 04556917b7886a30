"""The firmware cannot reach the simulated board's ground truth (issue #20).

The sim's physical profile (true bore, compliance, play, sensor errors) is what the metering is judged
against: firmware that could read it would pass any accuracy test. Two checks:
- static: no firmware module (firmware/mesofw, firmware/boards/*, main.py, boot.py) imports the model,
  reads the profile's environment variables or touches the board module's private world;
- runtime: on the MicroPython VM, everything reachable from the Board object the firmware gets holds
  neither the model nor a value of the profile, and the profile has left the environment.
"""

import ast
import json
import os
import pathlib
import socket
import subprocess
import threading

import pytest

from mesosim.harness import micropython_binary

FIRMWARE = pathlib.Path(__file__).resolve().parents[1]
# the sim board's own side of the wall: the board layer that owns the world, and the world itself
BOARD_SIDE = {FIRMWARE / "boards" / "sim" / "board.py", FIRMWARE / "boards" / "sim" / "board_model.py"}
FORBIDDEN_MODULES = {"board_model"}
FORBIDDEN_ATTRS = {"_world", "_profile", "model", "profile", "_world_config", "_build_world"}
FORBIDDEN_STRINGS = {"MESOSIM_PROFILE", "MESOSIM_STATE"}


def firmware_modules():
    files = sorted((FIRMWARE / "mesofw").rglob("*.py")) + sorted((FIRMWARE / "boards").rglob("*.py"))
    files += [FIRMWARE / "main.py", FIRMWARE / "boot.py"]
    return [f for f in files if f not in BOARD_SIDE]


def ground_truth_uses(path):
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
                found.append(node.module)
            found += [a.name for a in node.names if a.name in FORBIDDEN_ATTRS]
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRS:
            found.append("." + node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in FORBIDDEN_STRINGS:
            found.append(node.value)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("getattr", "__import__", "eval", "exec"):
            # a name built at run time would get past this scan; getattr(x, "CONSTANT") is checked as written
            name = node.args[1] if node.func.id == "getattr" and len(node.args) > 1 else None
            if not (isinstance(name, ast.Constant) and name.value not in FORBIDDEN_ATTRS):
                found.append(node.func.id)
    return ["%s:%s" % (path.name, f) for f in found]


@pytest.mark.req("SR-120")
def test_no_firmware_module_touches_the_sim_ground_truth():
    modules = firmware_modules()
    assert len(modules) > 10  # the scan sees the firmware (a moved folder must not make it vacuous)
    assert [u for m in modules for u in ground_truth_uses(m)] == []


@pytest.mark.req("SR-120")
def test_the_scan_catches_a_module_that_reads_the_profile(tmp_path):
    # the scan itself can fail: the ways a module could reach the world are each caught
    cheat = tmp_path / "cheat.py"
    cheat.write_text("import board_model\nimport os, board\nx = board._world.compliance\n"
                     "y = os.getenv('MESOSIM_PROFILE')\nz = getattr(board, '_wor' + 'ld')\n")
    got = ground_truth_uses(cheat)
    assert len(got) == 4 and any("board_model" in g for g in got) and any("_world" in g for g in got)


# distinctive values a walk of the Board's objects would find if it could reach the profile
SECRETS = {"compliance_nl_per_kpa": 7.654321, "diameter_error": 0.0271828, "play_um": 77.7777,
           "resistance_kpa_s_per_nl": 0.00314159, "tissue_kpa_per_ul": 1.2345678}

WALK = """
import json, os, board, board_model
b = board.Board()
secrets = %r
found = []
seen = []
def walk(obj, path, depth):
    for s in seen:
        if s is obj:
            return
    seen.append(obj)
    if isinstance(obj, board_model.Model):
        found.append(path + ': the model')
        return
    if isinstance(obj, float):
        for k, v in secrets.items():
            if abs(obj - v) < 1e-6:
                found.append(path + ': ' + k)
        return
    if isinstance(obj, str):
        for k in secrets:
            if k in obj:
                found.append(path + ': ' + k)
        return
    if depth > 6 or isinstance(obj, (int, bool, bytes, bytearray, memoryview)) or obj is None:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            walk(k, path + '[key]', depth + 1)
            walk(v, path + '[' + repr(k) + ']', depth + 1)
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            walk(v, path + '[%%d]' %% i, depth + 1)
        return
    if type(obj).__name__ in ('function', 'bound_method', 'closure', 'module', 'type'):
        return
    for name in dir(obj):
        if name.startswith('__'):
            continue
        try:
            v = getattr(obj, name)
        except Exception:
            continue
        walk(v, path + '.' + name, depth + 1)
walk(b, 'board', 0)
print(json.dumps({'found': found, 'env': [os.getenv('MESOSIM_PROFILE'), os.getenv('MESOSIM_STATE')]}))
"""


@pytest.mark.req("SR-120")
def test_the_board_object_the_firmware_gets_holds_no_ground_truth(flash):
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def serve():  # the harness's end: take what the board reports and keep the line open
        conn, _ = listener.accept()
        accepted.append(conn)
        while conn.recv(4096):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    master, slave = os.openpty()  # the board makes its stdin (the host serial port) raw: it must be a tty
    profile = dict(SECRETS, serial="SIM-HIDE", diameter_um=4780, barrel_um=6600, content_nl=900000,
                   plunger_steps_per_mm=3200, needle_steps_per_mm=100)
    env = {"MICROPYPATH": str(flash), "MESOSIM_PROFILE": json.dumps(profile), "MESOSIM_STATE": "",
           "MESOSIM_CTRL": "127.0.0.1:%d" % listener.getsockname()[1]}
    try:
        proc = subprocess.run([micropython_binary(), "-X", "heapsize=1M", "-c", WALK % (SECRETS,)], cwd=flash,
                              env=env, stdin=slave, capture_output=True, text=True, timeout=60)
    finally:
        os.close(slave)
        os.close(master)
        for conn in accepted:
            conn.close()
        listener.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["found"] == []
    assert got["env"] == [None, None]
