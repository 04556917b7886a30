"""The real firmware on the emulated Pico: figures printed, never asserted.

The MicroPython RPI_PICO uf2 runs in rp2040js (tools/pico-emu/) with the project's pico image on
its littlefs; main.py starts the firmware as on a board, the host talks to it over the emulated
USB CDC (socket://). Emulated time is the chip's own clock (rp2040js counts cycles exactly), and is
shown beside wall time. A probe in the emulator-only boot.py (tools/pico-emu/emu_boot.py) times
each control-loop pass on the chip and counts the steps the firmware hands to its drivers.

- control-pass time p50/p99 (emulated us) idle and while priming;
- STEP pulses counted on the pins vs steps the firmware issued;
- STATUS round trip over the emulated USB CDC.

NOT shown: flash timing. rp2040js has no flash erase/program, so emu_boot.py puts the data files
on a RAM disk: a journal checkpoint costs nothing here (on the Pico it erases 4 KB, ~45-400 ms).

    python bench/bench_pico_emu.py [--quick]
"""

from __future__ import annotations

import argparse
import pathlib
import secrets
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "pico-emu"))
import picoemu  # noqa: E402
from benchlib import percentile  # noqa: E402
from mesoinject.client import Device  # noqa: E402
from mesoinject.keys import KeyStore  # noqa: E402
from mesoinject.link import Link  # noqa: E402
from mesoprotocol import spec  # noqa: E402

# boards/pico/board.py: STEP:DIR pairs, and the switches at rest (trigger up, E-stop closed,
# needle home, syringe not at its end); ADC0 at the pressure sensor's 0 kPa (0.333 V of 3.3 V, 12 bit)
WATCH = {2: 3, 4: 5}
INPUTS = {10: 1, 11: 0, 12: 0, 13: 1, 14: 0}  # ... and the single needle's contact switch closed (on the skin)
ADC0_ZERO_KPA = 413
# ADC1: the syringe clamp's potentiometer with a BD 1 mL barrel (6.6 mm) in it: 300 mV + 6.6 x 120 mV
# (board_stepdir's BARREL_* scale) = 1092 mV, as a 12-bit count of 3.3 V
ADC1_BD_1ML = 1356
# ADC2: the needle head's ID resistor, a single 30G 4 mm needle (spec.HEADS 1: 300 mV) as a 12-bit count of 3.3 V
ADC2_HEAD_30G_4MM = 372
PROGRAM = dict(technique=spec.TECHNIQUE_POINT, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=2000,
               volume_nl=30000, count=20, cadence_mhz=0, flow_nl_s=50000)
BUCKET_US = 50  # emu_boot.py's histogram


def passes(lines: list[dict]) -> list[int]:
    """Pass times (us, bucket floor) from the probe's "passes step_us steps_p steps_n i:count ..." lines."""
    out: list[int] = []
    for e in lines:
        for pair in e["line"].split()[4:]:
            i, c = pair.split(":")
            out += [int(i) * BUCKET_US] * int(c)
    return out


def probe_lines(board: picoemu.Board, since_us: int, until_us: int | None = None) -> list[dict]:
    return [e for e in board.probes if e["emulated_us"] > since_us
            and (until_us is None or e["emulated_us"] <= until_us)]


def pass_row(name: str, lines: list[dict]) -> str:
    t = passes(lines)
    if not t:
        return f"  {name:<28} no probe report in this phase (each covers 100 passes)"
    over = sum(1 for x in t if x >= 1000)
    return (f"  {name:<28} passes {len(t):5d}: p50 {percentile(t, 50):5d} us  p99 {percentile(t, 99):6d} us  "
            f"max {max(t):6d} us  >= 1 ms {over / len(t) * 100:5.1f} %   (emulated, {BUCKET_US} us buckets)")


def wait_probe(board: picoemu.Board, after_us: int, timeout_s: float) -> dict:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        lines = probe_lines(board, after_us)
        if lines:
            return lines[0]
        time.sleep(0.05)  # polling the runner's event list, not synchronising with the chip
    raise AssertionError(f"no probe report within {timeout_s} s wall")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sample sizes (CI)")
    args = ap.parse_args()
    n_rtt, prime_nl = (10, 1000) if args.quick else (200, 10000)
    try:
        picoemu.locate()
    except picoemu.Unavailable as e:
        print(f"bench_pico_emu: skipped: {e}")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-pico-emu-") as tmp:
        tmpdir = pathlib.Path(tmp)
        key = secrets.token_bytes(spec.KEY_SIZE)
        fs = picoemu.build_fs("pico", tmpdir / "littlefs.img",
                              {"boot.py": (picoemu.HERE / "emu_boot.py").read_bytes(), "key": key})
        print(f"bench_pico_emu{' (quick)' if args.quick else ''}: MicroPython RPI_PICO "
              f"({picoemu.locate().uf2.name}) in rp2040js {picoemu.RP2040JS_VERSION}")
        with picoemu.Board(fs, watch=WATCH, inputs=INPUTS, adc0=ADC0_ZERO_KPA) as board:
            board.set_adc(1, ADC1_BD_1ML)
            board.set_adc(2, ADC2_HEAD_30G_4MM)
            ready = board.wait("ready", 180)
            print(f"  USB CDC up at emulated {ready['emulated_us'] / 1e6:.2f} s, wall {ready['wall_s']:.1f} s")
            keys = KeyStore(tmpdir / "keys")
            with Device(Link(board.url, timeout=5.0), keys) as dev:
                ident = dev.hello()
                keys.put(ident.serial, key)
                t = board.stats()
                print(f"  HELLO answered: firmware {ident.firmware} on "
                      f"{ident.board} {ident.serial}, emulated {t['emulated_us'] / 1e6:.2f} s, wall {t['wall_s']:.1f} s")

                idle_from = t["emulated_us"]
                wait_probe(board, idle_from, 300)  # 100 idle passes
                idle_to = board.stats()["emulated_us"]

                rtt_wall = []
                a = board.stats()
                for _ in range(n_rtt):
                    t0 = time.perf_counter()
                    dev.status()
                    rtt_wall.append((time.perf_counter() - t0) * 1e3)
                b = board.stats()
                emu_rtt_ms = (b["emulated_us"] - a["emulated_us"]) / n_rtt / 1000
                speed = (b["emulated_us"] - a["emulated_us"]) / 1e6 / (b["wall_s"] - a["wall_s"])

                dev.abort()
                dev.configure(**PROGRAM)
                start = board.stats()
                dev.prime(prime_nl)
                polls = 0
                while dev.status()["state"] == spec.STATE_PRIMING:  # each poll is the link's heartbeat
                    polls += 1
                    dev.next_event(0.05)
                end = board.stats()
                state = dev.status()
            report = wait_probe(board, end["emulated_us"], 300)  # firmware's step count and pin edges, same moment

        print(pass_row("idle", probe_lines(board, idle_from, idle_to)))
        print(pass_row("priming, host polling", probe_lines(board, start["emulated_us"], end["emulated_us"])))
        emu_s = (end["emulated_us"] - start["emulated_us"]) / 1e6
        print(f"  prime {prime_nl / 1000:g} uL: emulated {emu_s:.3f} s, wall {end['wall_s'] - start['wall_s']:.1f} s, "
              f"{polls} STATUS polls, ended in state {state['state']} alarm {state['alarm']}")
        fw_plunger, fw_needle = (int(x) for x in report["line"].split()[2:4])
        edges = report["edges"]
        print("  STEP pulses on the pins vs steps the firmware issued (since boot):")
        for name, pin, issued in (("plunger", 2, fw_plunger), ("needle", 4, fw_needle)):
            low, high = edges[str(pin)]
            print(f"    {name:<8} pin {high:6d} with DIR +, {low:6d} with DIR -; firmware issued {issued:6d} "
                  f"{'(equal)' if high + low == issued else '(DIFFERENT)'}")
        print(f"  STATUS round trip over emulated USB CDC, n={n_rtt}: wall p50 {percentile(rtt_wall, 50):.1f} ms "
              f"p99 {percentile(rtt_wall, 99):.1f} ms; emulated mean {emu_rtt_ms:.2f} ms "
              f"(emulator at {speed:.3f}x real time)")
        print("  flash timing NOT modelled: data files on a RAM disk (tools/pico-emu/emu_boot.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
