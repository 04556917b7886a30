"""Type-check board images with mypy against the MicroPython stubs of each board's port.

Each board's image (host/mesoinject/image.py: firmware, protocol spec, board files) is
staged as it lies on the flash, so imports resolve as on the board, and mypy checks it
with that port's stubs as its whole standard library: a CPython-only module (threading,
os.path, ...) is an error. Run through tools/typecheck.sh, which sets up mypy and the stubs.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "host"), str(REPO / "protocol")]
from mesoinject import image  # noqa: E402

PORTS = {"sim": "unix", "pico": "rp2", "esp32s3": "esp32"}  # board -> MicroPython port of its stubs
CONFIG = REPO / "tools" / "mypy-micropython.ini"


def make_typeshed(stubs: pathlib.Path, out: pathlib.Path) -> None:
    """Merge a port's stub package into one typeshed: mypy wants the port's modules
    (machine, time, select...) in the standard library, not as third-party packages."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(stubs / "stdlib", out / "stdlib")
    shutil.copytree(stubs / "stubs", out / "stubs")
    versions = out / "stdlib" / "VERSIONS"
    text = versions.read_text()
    listed = {line.split(":")[0].strip() for line in text.splitlines() if ":" in line and not line.startswith("#")}
    added = []
    for p in sorted(stubs.iterdir()):
        if p.name in ("stdlib", "stubs") or p.name.endswith(".dist-info"):
            continue
        if p.suffix == ".pyi":
            shutil.copyfile(p, out / "stdlib" / p.name)
        elif p.is_dir():
            shutil.rmtree(out / "stdlib" / p.name, ignore_errors=True)
            shutil.copytree(p, out / "stdlib" / p.name)
        else:
            continue
        if p.stem not in listed:
            added.append(f"{p.stem}: 3.0-\n")
    versions.write_text(text + "".join(added))


def check(board: str, env: pathlib.Path, extra: list[tuple[pathlib.Path, str]]) -> tuple[int, str]:
    """mypy on one board's image (plus extra (source, path on the board) files): exit code, output."""
    files = image.manifest(board) + extra
    with tempfile.TemporaryDirectory(prefix=f"typecheck-{board}-") as tmp:
        stage = pathlib.Path(tmp)
        for src, rel in files:
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, stage / rel)
        proc = subprocess.run(
            [str(env / "venv" / "bin" / "mypy"), "--config-file", str(CONFIG),
             "--custom-typeshed-dir", str(env / "typeshed" / PORTS[board]),
             "--cache-dir", str(env / "cache" / board), *(rel for _, rel in files)],
            cwd=stage, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    # name the repository's files, not the staged copies
    for src, rel in sorted(files, key=lambda f: -len(f[1])):
        shown = src.relative_to(REPO) if src.is_relative_to(REPO) else src
        out = out.replace(f"\n{rel}:", f"\n{shown}:")
        if out.startswith(f"{rel}:"):
            out = f"{shown}{out[len(rel):]}"
    return proc.returncode, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", type=pathlib.Path, help="where typecheck.sh installed mypy and the stubs")
    parser.add_argument("--board", action="append", choices=sorted(PORTS), help="only this board (repeatable)")
    parser.add_argument("--extra", action="append", default=[], metavar="FILE:PATH",
                        help="also check FILE as if it were at PATH on the board (e.g. x.py:mesofw/x.py)")
    parser.add_argument("--make-typeshed", nargs=2, type=pathlib.Path, metavar=("STUBS", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make_typeshed:
        make_typeshed(*args.make_typeshed)
        return 0
    if args.env is None:
        parser.error("--env is required (run tools/typecheck.sh)")
    extra = [(pathlib.Path(f).resolve(), rel) for f, _, rel in (e.rpartition(":") for e in args.extra)]
    failed = 0
    for board in args.board or sorted(PORTS):
        code, out = check(board, args.env, extra)
        print(f"typecheck {board} ({PORTS[board]} stubs): {out.strip().splitlines()[-1] if out.strip() else code}")
        if code:
            failed += 1
            print(out.rstrip())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
