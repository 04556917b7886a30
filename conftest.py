"""Options of this repository's test runs: here so they parse however pytest is started. The rig's own
options (--mesoinject-port, -board, -balance, -keys) come from the mesoinject pytest plugin."""

import os
import random
import tempfile

pytest_plugins = ["tools.trace_plugin"]  # --req-report: outcomes and requirement ids for tools/trace.py


def pytest_addoption(parser):
    group = parser.getgroup("hil", "hardware-in-the-loop rig")
    group.addoption("--sim-seed", type=int, default=None,
                    help="seed of the simulated boards' imperfections (default: new each run, printed)")
    # the names before the plugin, still taken
    group.addoption("--port", dest="mesoinject_port", action="append", default=[], help="alias of --mesoinject-port")
    group.addoption("--board", dest="mesoinject_board", default=None, help="alias of --mesoinject-board")
    group.addoption("--balance", dest="mesoinject_balance", action="append", default=[],
                    help="alias of --mesoinject-balance")


def pytest_configure(config):
    # the simulated boards' command keys go to a throwaway store, not the user's (mesoinject.keys); a board
    # on a port is tested with the user's store (or --mesoinject-keys), where `mesoinject pair` put its key
    if not config.getoption("mesoinject_port") and not config.getoption("mesoinject_keys"):
        os.environ.setdefault("MESOINJECT_KEYS", tempfile.mkdtemp(prefix="mesoinject-keys-"))
    seed = config.getoption("--sim-seed")
    config.sim_seed = random.SystemRandom().randrange(1 << 31) if seed is None else seed


def pytest_report_header(config):
    return f"simulated boards: imperfections seed {config.sim_seed} (replay with --sim-seed {config.sim_seed})"
