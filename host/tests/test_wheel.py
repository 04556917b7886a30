"""The built wheel runs the product outside the checkout: a fresh venv with only the [sim] extra
simulates a board, runs an example program and stores its records; a command whose extra is
missing names it."""

import os
import pathlib
import sqlite3
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def run(args, cwd, env, timeout=300):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin dir, a working folder outside the checkout, environment) with the wheel and [sim] installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    build = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(REPO)],
                cwd=tmp, env=os.environ)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp / "dist").glob("mesoinject-*.whl")
    venv = tmp / "venv"
    assert run([sys.executable, "-m", "venv", str(venv)], cwd=tmp, env=os.environ).returncode == 0
    install = run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{wheel}[sim]"], cwd=tmp,
                  env=os.environ, timeout=600)
    assert install.returncode == 0, install.stderr
    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HOME=str(tmp / "home"), XDG_DATA_HOME=str(tmp / "home" / "data"),
               PATH=f"{venv / 'bin'}:{env['PATH']}")
    return venv / "bin", work, env


def test_the_wheel_carries_its_own_firmware_and_examples(installed):
    bin_dir, work, env = installed
    where = run([str(bin_dir / "python"), "-c", "from mesoinject import image, program; "
                 "print(image.FIRMWARE); print(program.EXAMPLES)"], cwd=work, env=env)
    firmware, examples = where.stdout.split()
    assert REPO.as_posix() not in firmware and REPO.as_posix() not in examples
    assert (pathlib.Path(firmware) / "boards" / "pico" / "board.py").is_file()
    assert (pathlib.Path(examples) / "plans" / "facial-nappage.toml").is_file()  # the literature plans too


def test_info_and_an_example_program_on_the_simulated_board(installed):
    bin_dir, work, env = installed
    info = run([str(bin_dir / "mesoinject"), "info", "--sim"], cwd=work, env=env)
    assert info.returncode == 0, info.stdout + info.stderr
    assert "board" in info.stdout and "sim" in info.stdout
    db = work / "session.db"
    done = run([str(bin_dir / "mesoinject"), "run", "test-dose", "--sim", "--db", str(db), "--patient", "P-1",
                "--operator", "Dr Test", "--yes"],
               cwd=work, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(db) as store:
        kinds = store.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
    assert kinds >= 2  # the prime and the test dose, stored by the installed package


@pytest.mark.req("SR-081")
@pytest.mark.parametrize("argv, extra", [(["ui", "--sim", "--no-browser"], "ui"),
                                         (["flash", "--board", "sim", "--port", "/dev/null"], "flash")])
def test_a_missing_extra_is_named(installed, argv, extra):
    bin_dir, work, env = installed
    proc = run([str(bin_dir / "mesoinject"), *argv], cwd=work, env=env)
    assert proc.returncode == 2
    assert f"pip install 'mesoinject[{extra}]'" in proc.stderr
    assert "Traceback" not in proc.stderr
