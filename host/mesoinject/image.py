"""What goes on a board's flash: the one manifest used by the simulator and by `flash`."""

from __future__ import annotations

import pathlib
import shutil

REPO = pathlib.Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
PROTOCOL = REPO / "protocol"
BOARDS = REPO / "boards"


def board_names() -> list[str]:
    return sorted(p.name for p in BOARDS.iterdir() if (p / "board.py").exists())


def manifest(board: str) -> list[tuple[pathlib.Path, str]]:
    """(source file, path on the board) for every file of a board's image."""
    board_dir = BOARDS / board
    if not (board_dir / "board.py").exists():
        raise ValueError(f"unknown board {board!r}; boards: {', '.join(board_names())}")
    files = [(p, f"mesofw/{p.name}") for p in sorted((FIRMWARE / "mesofw").glob("*.py"))]
    files += [(PROTOCOL / "__init__.py", "mesoprotocol/__init__.py"), (PROTOCOL / "spec.py", "mesoprotocol/spec.py")]
    files += [(p, p.name) for p in sorted(board_dir.glob("board*.py"))]  # board.py, board_*.py
    files += [(FIRMWARE / "boot.py", "boot.py"), (FIRMWARE / "main.py", "main.py")]
    return files


def stage(board: str, dest: pathlib.Path) -> pathlib.Path:
    """Copy a board's image into dest (a simulated flash, or a folder to inspect)."""
    for src, rel in manifest(board):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    return dest
