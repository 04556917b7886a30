"""The mesoinject pytest plugin as a rig operator meets it: a board on a port (here the VirtualDevice, the
real firmware), the key `pair` left in a store, markers, and one clear line for every bad option."""

import os
import pty
import tty

import pytest

from mesoinject.link import Link, PortBusy

pytest_plugins = ["pytester"]

SUITE = '''
import pytest

def test_device(device, rig):
    assert rig.sim is None and device.hello().serial == "PLUG-0001"

def test_truth_where_there_is_one(sim_or_none):
    assert sim_or_none is None

@pytest.mark.sim_only
def test_marked():
    pass

def test_uses_the_control_channel(sim):
    pass

def test_weighs(scale):
    pass
'''


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A board on a port, factory-paired: its key in a store of its own (as `mesoinject pair` leaves one)."""
    from mesoinject.virtual import VirtualDevice

    keys = tmp_path_factory.mktemp("keys")
    before = os.environ.get("MESOINJECT_KEYS")
    os.environ["MESOINJECT_KEYS"] = str(keys)
    try:
        with VirtualDevice(serial="PLUG-0001") as vdev:
            os.environ["MESOINJECT_KEYS"] = before or ""
            yield vdev.url, keys
    except Exception as e:  # noqa: BLE001
        if type(e).__name__ == "MissingExtra":
            pytest.skip(str(e))
        raise
    finally:
        if before is None:
            os.environ.pop("MESOINJECT_KEYS", None)
        else:
            os.environ["MESOINJECT_KEYS"] = before


@pytest.fixture
def run(pytester, monkeypatch):
    monkeypatch.delenv("MESOINJECT_KEYS", raising=False)  # the plugin sets it from --mesoinject-keys
    pytester.makepyfile(test_rig=SUITE)

    def run(*args, autoload=False):
        # the plugin by its entry point once (autoload); otherwise named, sparing each run the other
        # installed plugins' start-up (labgrid's alone takes seconds)
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "" if autoload else "1")
        named = () if autoload else ("-p", "mesoinject.pytest_plugin", "-p", "xdist.plugin")
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *named, *args)
    return run


@pytest.mark.req("SR-135")
def test_a_board_on_a_port_runs_with_the_key_from_the_given_store_and_skips_what_needs_the_sim(board, run):
    url, keys = board
    result = run("--mesoinject-port", url, "--mesoinject-keys", str(keys), "-rs", autoload=True)
    result.assert_outcomes(passed=2, skipped=3)
    result.stdout.fnmatch_lines(["*sim_only: needs the simulated board*", "*needs ground truth*--mesoinject-balance*"])
    # sim_only is on every test that uses the control channel, marked by hand or not
    run("--mesoinject-port", url, "--mesoinject-keys", str(keys), "-m", "not sim_only").assert_outcomes(
        passed=2, skipped=1)


@pytest.mark.req("SR-136")
@pytest.mark.parametrize("args, line", [
    (["--mesoinject-board", "pico"], "mesoinject rig: *reports board * not 'pico' as --mesoinject-board says*"),
    ([], "mesoinject rig: board PLUG-0001 * not paired with this host (no key for it in *mesoinject pair --port*"),
])
def test_another_board_or_a_missing_key_stops_the_run_with_one_line(board, run, tmp_path, args, line):
    url, keys = board
    store = keys if args else tmp_path  # an empty store: the key is elsewhere
    result = run("--mesoinject-port", url, "--mesoinject-keys", str(store), *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: " + line])
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and result.stderr.str().count("ERROR: ") == 1
    assert " passed" not in output and " failed" not in output and " error" not in output  # nothing ran


@pytest.mark.req("SR-136")
@pytest.mark.parametrize("args, line", [
    (["--mesoinject-port", "socket://127.0.0.1:9", "-n", "2"], "*2 xdist workers but 1 --mesoinject-port*"),
    (["--mesoinject-balance", "/dev/ttyUSB0"], "*--mesoinject-balance needs --mesoinject-port*"),
    (["--mesoinject-port", "socket://127.0.0.1:9", "--mesoinject-keys", "/nonexistent"], "*no such folder*"),
    ([], "*no board under test: pass --mesoinject-port PORT*"),
])
def test_bad_options_are_one_usage_error(run, args, line):
    result = run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: " + line])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


@pytest.mark.req("SR-137")
def test_a_serial_port_is_opened_by_one_program_at_a_time(board):
    url, _ = board
    master, slave = pty.openpty()
    tty.setraw(slave)
    try:
        with Link(os.ttyname(slave)):
            with pytest.raises(PortBusy, match="in use by another program"):
                Link(os.ttyname(slave))
    finally:
        os.close(master)
        os.close(slave)
