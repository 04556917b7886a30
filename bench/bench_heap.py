"""RAM and heap allocation of the firmware on MicroPython with the target's heap (192 KB, as an
RP2040), the firmware staged as a flash writes it (modules compiled to .mpy: mesoinject.compiled);
printed, never asserted: whether it FITS, RAM after boot, in the middle of a nappage burst, and the heap
allocated per shot in steady state (journal write, DELIVERY event and all, target 0), and per signed POLL
of the controlling host answered between shots. On the unix port the tests use (x86-64) and, where it is
here, on the 32-bit build (the chip's word size: 31-bit small ints, ticks started 5 s before their 2^30
wrap). A firmware that does not fit is a finding printed as such (exit status 1), measured again at
FALLBACK_HEAP so its figures are still seen.

    python bench/bench_heap.py                 # FITS / DOES NOT FIT, and the figures
    python bench/bench_heap.py --per-module    # and the heap each module holds once imported
    python bench/bench_heap.py --sources       # the .py sources compiled on the board (as the sim once did)
    python bench/bench_heap.py --pico          # and the chip's own MicroPython (emulated RP2040, ~15 s more)
"""

from __future__ import annotations

import argparse
import ast
import json
import pathlib
import subprocess
import sys
import tempfile

from mesoinject import compiled, image
from mesosim.harness import RP2040_HEAP as HEAP, UNIX32_HOWTO, micropython_binary, unix32_binary

FALLBACK_HEAP = "256K"
TESTS = pathlib.Path(__file__).parents[1] / "firmware" / "tests"
SCRIPT = TESTS / "mpy_heap.py"
MODULES_SCRIPT = TESTS / "mpy_heap_modules.py"


class DoesNotFit(Exception):
    pass


def stage(binary: str, dest: pathlib.Path, sources: bool) -> pathlib.Path:
    return image.stage("sim", dest) if sources else compiled.stage("sim", dest, binary)


def run(binary: str, heap: str, script: pathlib.Path, env: dict | None, sources: bool) -> dict:
    with tempfile.TemporaryDirectory() as d:
        flash = stage(binary, pathlib.Path(d) / "flash", sources)
        proc = subprocess.run([binary, "-X", "heapsize=" + heap, str(script), str(flash)], cwd=flash,
                              env={"MICROPYPATH": f"{flash}:{image.VIRTUAL}", **(env or {})}, capture_output=True,
                              text=True, timeout=120)
    if proc.returncode:
        out = (proc.stdout + proc.stderr).strip()
        if "MemoryError" in out:
            raise DoesNotFit(out)
        raise RuntimeError(f"the heap script failed on {binary} at {heap}:\n{out}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(port: str, binary: str, env: dict | None, sources: bool) -> tuple[bool, dict]:
    """(fits in HEAP, figures): at HEAP, or at FALLBACK_HEAP where the firmware does not fit HEAP."""
    try:
        return True, run(binary, HEAP, SCRIPT, env, sources)
    except DoesNotFit as e:
        lines = str(e).splitlines()
        where = next((ln.strip() for ln in reversed(lines) if ln.strip().startswith("File ")), "at import")
        print(f"{port}: DOES NOT FIT the target's {HEAP} heap: {lines[-1]} ({where}); figures below at {FALLBACK_HEAP}")
        try:
            return False, run(binary, FALLBACK_HEAP, SCRIPT, env, sources)
        except DoesNotFit as again:
            print(f"  and not in {FALLBACK_HEAP} either: {str(again).splitlines()[-1]}")
            return False, {}


def import_order() -> list[str]:
    """The image's firmware modules (mesofw, mesoprotocol), each after the ones it imports."""
    sources = {}
    for src, rel in image.firmware_files():
        if rel.startswith(("mesofw/", "mesoprotocol/")):
            sources[rel[:-3].replace("/", ".").removesuffix(".__init__")] = src
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:  # placed, or being placed (an import cycle ends here)
            return
        seen.add(name)
        # the module body's own imports: one inside a try or a function (crc's viper variant) is the
        # importer's, counted with it
        for node in ast.parse(sources[name].read_text()).body:
            for dep in _imported(node):
                if dep in sources and dep != name:
                    visit(dep)
        order.append(name)

    for name in sources:
        visit(name)
    return order


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return []


def per_module(binary: str, env: dict | None, sources: bool) -> None:
    try:
        r = run(binary, FALLBACK_HEAP, MODULES_SCRIPT, {**(env or {}), "MESOFW_MODULES": ",".join(import_order())},
                sources)
    except (DoesNotFit, RuntimeError) as e:
        print(f"  per module: not measured: {str(e).splitlines()[-1]}")
        return
    for name, size in sorted(r["modules"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:28} {size:7d} B")
    print(f"  {'all firmware modules':28} {r['total']:7d} B  (code, constants, globals; the module that fills "
          "MicroPython's interned-string pool is charged the next, larger pool: a few KB)")


PICO_SCRIPT = """
import gc
gc.collect()
print('HEAP', gc.mem_alloc() + gc.mem_free(), gc.mem_alloc())
from mesofw import app, codec
gc.collect()
print('HEAP', gc.mem_alloc(), gc.mem_free())
"""


def pico(sources: bool) -> None:
    """The firmware's modules imported by the RPI_PICO MicroPython itself (rp2040js): the chip's heap and
    word size, its .mpy (armv6m) loader. The firmware is not started (no pins to drive here)."""
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tools" / "pico-emu"))
    import picoemu
    from mesoinject import flash

    try:
        picoemu.locate()
    except picoemu.Unavailable as e:
        print(f"emulated RP2040: skipped: {e}")
        return
    modules = tuple(rel for _, rel in image.manifest("pico") if rel not in flash.KEEP_SOURCE)
    extra = {} if sources else {rel: data for rel, data in flash.compile_image("pico", "armv6m").files
                                if rel.endswith(".mpy")}
    with tempfile.TemporaryDirectory() as d:
        fs = picoemu.build_fs("pico", pathlib.Path(d) / "fs.img", extra=extra,
                              without=("main.py",) + (() if sources else modules))
        run = picoemu.run_script(PICO_SCRIPT, fs, pathlib.Path(d), timeout_s=300)
    figures = [line.split()[1:] for line in run.stdout.splitlines() if line.startswith("HEAP")]
    if run.code or len(figures) != 2:
        print(f"emulated RP2040: NOT MEASURED: {run.error or run.stdout.strip()[-300:]}")
        return
    (total, base), (used, free) = ([int(x) for x in f] for f in figures)
    staged = ".py sources" if sources else ".mpy (armv6m) as flashed"
    print(f"emulated RP2040 (its MicroPython's own heap: {total / 1024:.1f} KB), {staged}: the firmware's modules "
          f"hold {(used - base) / 1024:.1f} KB once imported, {free / 1024:.1f} KB free (imported in {run.emulated_s:.1f} s "
          f"emulated, {run.wall_s:.0f} s wall)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-module", action="store_true", help="the heap each firmware module holds once imported")
    parser.add_argument("--sources", action="store_true", help="stage .py sources (compiled on the board), not .mpy")
    parser.add_argument("--pico", action="store_true", help="also import the firmware on the emulated RP2040")
    args = parser.parse_args()
    ports = [("unix port (64-bit)", micropython_binary(), None)]
    unix32 = unix32_binary()
    if unix32:
        ports.append(("32-bit", unix32, {"MICROPY_TICKS_WRAP_S": "5"}))
    fits_all = True
    for port, binary, env in ports:
        try:
            fits, r = measure(port, binary, env, args.sources)
        except (RuntimeError, subprocess.TimeoutExpired) as e:  # not a heap finding: what failed, not a traceback
            print(f"{port}: NOT MEASURED: {e}")
            fits, r = False, {}
        fits_all &= fits
        if r:
            report(port, fits, r, args.sources)
        if args.per_module:
            per_module(binary, env, args.sources)
    if not unix32:
        print(f"32-bit: skipped: {UNIX32_HOWTO}")
    if args.pico:
        pico(args.sources)
    return 0 if fits_all else 1


def report(port: str, fits: bool, r: dict, sources: bool) -> None:
    verdict = f"FITS in {HEAP}" if fits else f"DOES NOT FIT in {HEAP} (measured at {FALLBACK_HEAP})"
    staged = ".py sources compiled on the board" if sources else ".mpy as flashed"
    print(f"{port}, {staged}: {verdict}: heap {r['heap'] // 1024} KB, {r['after_boot'] / 1024:.1f} KB in use after "
          f"boot ({r['firmware'] / 1024:.1f} KB of it the firmware's objects, the rest its modules), "
          f"{(r['heap'] - r['after_boot']) / 1024:.1f} KB free; in a nappage burst {r['mid_burst'] / 1024:.1f} KB; "
          f"{r['bytes_per_shot']:.0f} bytes of heap allocated per shot in steady state (over {r['shots'] - 10} shots, "
          f"target 0); {r['bytes_per_poll_and_shot']:.0f} bytes per signed POLL answered between shots (its HMAC "
          f"check, decode and reply)")


if __name__ == "__main__":
    sys.exit(main())
