"""Options of the HIL rig (hil_tests/): here so they parse however pytest is started."""

import os
import random
import tempfile

pytest_plugins = ["tools.trace_plugin"]  # --req-report: outcomes and requirement ids for tools/trace.py


def pytest_addoption(parser):
    group = parser.getgroup("hil", "hardware-in-the-loop rig")
    group.addoption("--board", default="sim",
                    help="sim (default): a fresh simulated board per test module; another board name "
                         "(e.g. pico, esp32s3) tests the real board on --port")
    group.addoption("--port", default=None, help="serial port or URL of a real board under test")
    group.addoption("--balance", default=None,
                    help="serial port of an MT-SICS balance under the real board's needle: the ground truth of "
                         "the volume tests on real hardware (the simulated board brings its own)")
    group.addoption("--sim-seed", type=int, default=None,
                    help="seed of the simulated boards' imperfections (default: new each run, printed)")


def pytest_configure(config):
    # command keys of the simulated boards go to a throwaway store, not the user's (mesoinject.keys)
    os.environ.setdefault("MESOINJECT_KEYS", tempfile.mkdtemp(prefix="mesoinject-keys-"))
    seed = config.getoption("--sim-seed")
    config.sim_seed = random.SystemRandom().randrange(1 << 31) if seed is None else seed


def pytest_report_header(config):
    return f"simulated boards: imperfections seed {config.sim_seed} (replay with --sim-seed {config.sim_seed})"
