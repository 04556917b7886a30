"""Clinician console latency: a DELIVERY leaving the device -> the number changing on screen.

The real firmware on the simulated board, the console's server, and the real page in
headless Chromium, a virtual clinician on the trigger. Two clocks on one machine:
- device side: a tap on the simulated board's serial output timestamps (time.time())
  the moment each DELIVERY frame leaves the firmware's process;
- screen side: a MutationObserver on #done timestamps, at the next animation frame
  (the change painted), `performance.timeOrigin + performance.now()`.
For the k-th point: latency = first on-screen value >= k minus the k-th DELIVERY.
It fails (exit 1) if a delivery is missing from the store or counted twice. `resent`: DELIVERY
frames the device sent again (EVENTS, when a STATUS told the host it had missed one); stored once.

    python bench/bench_console.py [--points 100] [--shots 300] [--quick]

Points of 5 uL and shots of 1 uL, then a treatment plan of 30 points of 2 uL with the injection map on
screen (its zone table redrawn at each point), one BD 1 mL syringe for all three.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import threading

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mesoinject import codec  # noqa: E402
from mesoinject import program as programs  # noqa: E402
from mesoinject.client import Device  # noqa: E402
from mesoinject.console import Console, ConsoleServer  # noqa: E402
from mesoinject.records import RecordStore  # noqa: E402
from mesoprotocol import spec  # noqa: E402
from mesoinject.simulated import SimBoard  # noqa: E402
from mesosim import VirtualOperator  # noqa: E402
from tools import browser  # noqa: E402
from benchlib import percentile  # noqa: E402

WATCH_DONE = """
window.__changes = [];
new MutationObserver(() => {
  const value = Number(document.querySelector('#done').textContent);
  requestAnimationFrame(() => window.__changes.push([value, performance.timeOrigin + performance.now()]));
}).observe(document.querySelector('#done'), {childList: true, characterData: true, subtree: true});
"""


class DeliveryTap:
    """DELIVERY frames (not primes) as they first leave the simulated board: (point index, wall time s).
    A frame sent again (EVENTS, after the host saw a gap) keeps its first time."""

    def __init__(self):
        self.reader = codec.FrameReader()
        self.first: dict[int, tuple[int, float]] = {}  # record id -> (point, time)
        self.resent = 0
        self.lock = threading.Lock()

    @property
    def seen(self) -> list[tuple[int, float]]:
        return list(self.first.values())

    def clear(self) -> None:
        self.first.clear()
        self.resent = 0

    def __call__(self, t: float, data: bytes) -> None:
        with self.lock:
            for item in self.reader.feed(data):
                if isinstance(item, codec.Message) and item.type == spec.DELIVERY \
                        and item.fields["kind"] != spec.KIND_PRIME and not item.fields["flags"] & spec.FLAG_PARTIAL:
                    if item.fields["record_id"] in self.first:
                        self.resent += 1
                    else:
                        self.first[item.fields["record_id"]] = (item.fields["point"], t)


def run_program(page, ui: Console, tap: DeliveryTap, program: str, count: int, volume_ul: float) -> dict:
    browser.to_setup(page)
    browser.start_program(page, program, count, volume_ul, patient="BENCH-1", operator="bench", arm=False)
    return arm_and_measure(page, ui, tap, program, count)


BENCH_PLAN = """name = "Bench map"
drug = "saline"
syringe = "BD 1 mL"
needle = { gauge = 30, length = "4 mm" }
[[steps]]
zone = "forehead"
technique = "point-by-point"
volume_per_point = "2 uL"
points = 30
depth = "2 mm"
"""


def run_plan(page, ui: Console, tap: DeliveryTap, plan_file: str, count: int) -> dict:
    """A plan from the library: the map and the per-zone table on screen while the points go."""
    browser.to_setup(page)
    page.select_option("#plan", plan_file)
    page.fill("#patient_ref", "BENCH-1")
    page.fill("#operator", "bench")
    page.wait_for_selector("#start:enabled")
    page.click("#start")
    page.wait_for_selector("body[data-phase='configured'], body[data-phase='primed']")
    if page.get_attribute("body", "data-phase") == "configured":
        page.click("#prime")
        page.wait_for_selector("body[data-phase='primed']")
    page.wait_for_selector("#zone-svg .zone.current", state="attached")
    return arm_and_measure(page, ui, tap, f"plans/{plan_file} (map)", count)


def arm_and_measure(page, ui: Console, tap: DeliveryTap, name: str, count: int) -> dict:
    """Arm the started session, let its points go, and time each point from the device's DELIVERY
    on the wire to the on-screen count that shows it."""
    page.evaluate(WATCH_DONE)
    tap.clear()
    page.click("#arm")
    page.wait_for_selector("body[data-phase='finished']", timeout=count * 2000 + 30000)
    changes = page.evaluate("window.__changes")
    alarm = ui.last["alarm"]
    if alarm:  # reported with the figures; acknowledged so that the next program can start
        page.click("#alarm-ack")
    session = ui.last["session"]["id"]
    stored = [d for d in ui.call(ui.store.deliveries, session) if d["kind"] != "prime"]
    latencies = []
    for point, t_device in tap.seen:
        shown = next((t for value, t in changes if value >= point + 1), None)
        if shown is not None:
            latencies.append(shown / 1000 - t_device)
    ids = [d["record_id"] for d in stored]
    return {"program": name, "count": count, "delivered": len(tap.seen), "stored": len(stored),
            "duplicates": len(ids) - len(set(ids)), "resent": tap.resent, "shown": int(page.text_content("#done")),
            "latencies_ms": [x * 1000 for x in latencies],
            "outcome": ui.last["outcome"] + (f" on {alarm['name']}: {alarm['what']}" if alarm else "")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--shots", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2617)
    parser.add_argument("--quick", action="store_true", help="30 points and 60 shots (CI)")
    args = parser.parse_args()
    if args.quick:
        args.points, args.shots = 30, 60
    if not browser.available():
        print(f"bench_console: no Chromium at {browser.CHROMIUM} (Debian package `chromium`): not measured")
        return 0
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-console-"))
    tap = DeliveryTap()
    results = []
    with SimBoard(seed=args.seed, workdir=tmp / "board") as board, VirtualOperator(board, gap_s=0.02), \
            RecordStore(tmp / "records.db") as store, browser.launch_chromium() as chromium:
        board.on_device_bytes = tap
        import shutil

        library = tmp / "library"
        shutil.copytree(programs.EXAMPLES, library)
        (library / "plans" / "bench-map.toml").write_text(BENCH_PLAN)
        ui = Console(lambda: Device.open(board.url), store, library).start()
        server = ConsoleServer(ui).start()
        try:
            page = chromium.new_page()
            page.goto(server.url)
            results.append(run_program(page, ui, tap, "point-by-point.toml", args.points, 5))
            results.append(run_program(page, ui, tap, "nappage.toml", args.shots, 1))
            results.append(run_plan(page, ui, tap, "bench-map.toml", 30))
        finally:
            server.stop()
            ui.stop()
    print(f"console latency, DELIVERY on the device -> number on screen (seed {args.seed}; headless Chromium)")
    print(f"{'program':30} {'n':>5} {'stored':>6} {'dup':>4} {'resent':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    failed = False
    for r in results:
        lat = r["latencies_ms"]
        print(f"{r['program']:30} {r['delivered']:5d} {r['stored']:6d} {r['duplicates']:4d} {r['resent']:6d} "
              f"{statistics.median(lat):7.1f} {percentile(lat, 99):7.1f} {max(lat):7.1f}   ({r['outcome']})")
        if r["stored"] != r["delivered"] or r["duplicates"] or r["shown"] != r["delivered"] or len(lat) != r["delivered"]:
            print(f"  FAILED: {r['delivered']} delivered, {r['stored']} stored, {r['shown']} shown of {r['count']}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
