"""What goes on a board's flash: the one manifest used by the simulator and by `flash`."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import sys

import mesoprotocol

REPO = pathlib.Path(__file__).resolve().parents[2]  # a source checkout, if this is one
# everything that goes on a flash: the checkout's firmware/, or the copy an installed wheel carries
FIRMWARE = REPO / "firmware" if (REPO / "firmware" / "main.py").exists() else pathlib.Path(__file__).parent / "firmware"
PROTOCOL = pathlib.Path(mesoprotocol.__file__).parent  # the package both sides import
BOARDS = FIRMWARE / "boards"
# MicroPython that drives the firmware off a board (a stand-in board, a virtual clock): the fuzzer,
# the heap bench, mesoinject.virtual; on MICROPYPATH after a staged image, never on a flash
VIRTUAL = FIRMWARE / "virtual"


def board_names() -> list[str]:
    return sorted(p.name for p in BOARDS.iterdir() if (p / "board.py").exists())


def manifest(board: str) -> list[tuple[pathlib.Path, str]]:
    """(source file, path on the board) for every file of a board's image; main.py last."""
    board_part = board_files(board)
    firmware = firmware_files()
    return firmware[:-2] + board_part + firmware[-2:]


def firmware_files() -> list[tuple[pathlib.Path, str]]:
    """The board-independent part of every image: mesofw/, mesoprotocol/, boot.py, main.py."""
    files = [(p, f"mesofw/{p.name}") for p in sorted((FIRMWARE / "mesofw").glob("*.py"))]
    files += [(p, f"mesoprotocol/{p.name}") for p in sorted(PROTOCOL.glob("*.py"))]
    return files + [(FIRMWARE / "boot.py", "boot.py"), (FIRMWARE / "main.py", "main.py")]


def board_files(board: str) -> list[tuple[pathlib.Path, str]]:
    """A board's own part: board.py and board_*.py from its folder, to the root of the flash."""
    board_dir = BOARDS / board
    if not (board_dir / "board.py").exists():
        raise ValueError(f"unknown board {board!r}; boards: {', '.join(board_names())}")
    # (and a board's own `time`, if it has one: the simulator's clock, firmware/boards/sim/time.py)
    return [(p, p.name) for p in sorted(board_dir.glob("board*.py")) + sorted(board_dir.glob("time.py"))]


def firmware_version() -> tuple[int, int, int]:
    """FW_VERSION as firmware/mesofw/app.py sets it: what HELLO reports once it is flashed."""
    found = re.search(r"^FW_VERSION = \((\d+), (\d+), (\d+)\)", (FIRMWARE / "mesofw" / "app.py").read_text(), re.M)
    if not found:
        raise RuntimeError("no FW_VERSION = (major, minor, patch) in firmware/mesofw/app.py")
    major, minor, patch = (int(g) for g in found.groups())
    return major, minor, patch


def stage(board: str, dest: pathlib.Path) -> pathlib.Path:
    """Copy a board's image into dest (a simulated flash, or a folder to inspect)."""
    for src, rel in manifest(board):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    return dest


# ---- mip packages: `mpremote mip install --target / github:OWNER/REPO/firmware` (the firmware), then
# `... github:OWNER/REPO/firmware/boards/NAME` (its board layer); or the same from a checkout's paths.
def mip_packages() -> dict[pathlib.Path, dict]:
    """package.json path -> content: the firmware's in firmware/, one per board folder.
    URLs are relative to each package.json, as mip resolves them."""
    version = "%d.%d.%d" % firmware_version()
    packages = {FIRMWARE / "package.json": {
        "urls": [[rel, _relpath(src, FIRMWARE)] for src, rel in firmware_files()], "version": version}}
    for board in board_names():
        board_dir = BOARDS / board
        # a file shared through a symlink is fetched from where it really is
        urls = [[rel, _relpath(src.resolve(), board_dir)] for src, rel in board_files(board)]
        packages[board_dir / "package.json"] = {"urls": urls, "version": version}
    return packages


def _relpath(path: pathlib.Path, start: pathlib.Path) -> str:
    return pathlib.Path(os.path.relpath(path, start)).as_posix()


def mip_json(package: dict) -> str:
    """micropython-lib's layout: one [path on the board, url] pair a line."""
    urls = ",\n".join("    " + json.dumps(pair) for pair in package["urls"])
    return '{\n  "urls": [\n%s\n  ],\n  "version": %s\n}\n' % (urls, json.dumps(package["version"]))


def write_mip_packages() -> list[pathlib.Path]:
    written = []
    for path, package in mip_packages().items():
        if not path.exists() or path.read_text() != mip_json(package):
            path.write_text(mip_json(package))
            written.append(path)
    return written


if __name__ == "__main__":
    if sys.argv[1:] != ["mip"]:
        sys.exit("usage: python -m mesoinject.image mip   (rewrite the mip package.json files)")
    for path in write_mip_packages():
        print(f"wrote {path}")
