"""Fault table on the simulated board, measured against ground truth; printed, never asserted.

For each fault: time from the fault to the plunger's last forward step (board
clock; for the trigger and the E-stop from the pin's edge, stamped on the board's clock when the
operator set it, not when the firmware read it; not clipped: a negative time means the plunger's last
step came before the fault), volume pushed out of the syringe after the fault, and whether the
partial point's DELIVERY record reached the host. The "(flash slow)" rows run on
a board whose flash takes its worst-case datasheet time (4 KB erase 400 ms, page
0.8 ms; the firmware stalled meanwhile) and aim the stop at the moment a journal
checkpoint begins an erase; they add the plunger steps after the stop and the
board's own overrun count (STATUS_REPLY) against the 2 ms target.

    python bench/bench_faults.py [--quick] [--trials N] [--faults "trigger release" ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from mesoinject.client import Device
from mesoinject.link import Link
from mesoprotocol import spec
from mesoinject.simulated import SimBoard
from mesosim.harness import ticks_diff
from benchlib import armed, percentile

POINT = dict(technique=spec.TECHNIQUE_POINT, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=2000,
             volume_nl=50000, count=15, cadence_mhz=0, flow_nl_s=25000)  # 2 s points


class Rig:
    def __init__(self, board: SimBoard, retries: int = 5):
        self.board = board
        # at worst-case flash timing a command can wait ~1 s (a record's block copy: a 400 ms erase and its
        # pages, and littlefs compacting a log): the default 6 tries give up after ~0.6 s on a fast link
        self.dev = Device(Link(board.url, retries=retries))
        self.events: list = []

    def reset(self):
        b, dev = self.board, self.dev
        b.set_link("ok")
        b.set_trigger(False)
        b.set_estop(False)
        b.occlude(1.0)
        armed(dev, POINT)
        self.events = []

    def start_point(self):
        """Press the trigger; return once fluid is flowing (heartbeat kept)."""
        b = self.board
        start = b.truth().content_nl
        b.set_trigger(True)
        while start - b.truth().content_nl < 5000:
            self.dev.status()
        return len(b.penetrations)

    def wait_needle_out(self, pens, poll=True):
        b = self.board
        if poll:  # keep the link alive while waiting (not for link faults)
            while len(b.penetrations) <= pens:
                self.dev.status()
                if (e := self.dev.next_event(0.01)) is not None:
                    self.events.append(e)
        else:
            b.wait(lambda: len(b.penetrations) > pens, 10, "needle retraction")

    def records(self):
        while (e := self.dev.next_event(0.05)) is not None:
            self.events.append(e)
        return [e.fields for e in self.events if e.type == spec.DELIVERY and e.fields["kind"] != spec.KIND_PRIME]


SLOW_FLASH = {"flash_erase_ms": 400, "flash_page_us": 800}
TARGET_MS = 2.0


def at_next_erase(rig: Rig, line: str):
    """Send this input the moment the board's flash begins an erase (mid-point); the board's echo."""
    b, dev = rig.board, rig.dev
    with b._cond:
        b.last_input = None

    def once():
        b.on_erase = None
        b.send_input(line)

    b.on_erase = once
    kind = line.split()[0]
    while not (b.last_input and b.last_input.kind == kind):
        dev.status()
        if (e := dev.next_event(0.01)) is not None:
            rig.events.append(e)
    return b.last_input


def trial(rig: Rig, fault: str) -> tuple[float, float, float, bool, int, bool]:
    """(ms from fault to last forward step, ms to needle out, uL pushed after the fault, record received,
    plunger steps after the fault, the fault came while the flash was busy)."""
    b, dev = rig.board, rig.dev
    rig.reset()
    pens = rig.start_point()
    poll = True
    steps0 = None
    busy = False
    if fault.endswith("(flash slow)"):
        i = at_next_erase(rig, "trigger 0" if fault.startswith("trigger") else "estop 1")
        t0, content0, steps0, busy = i.edge_us, i.content_nl, i.forward_steps, i.flash_busy
    elif fault == "trigger release":
        b.set_trigger(False)
        t0, content0 = b.last_input.edge_us, b.last_input.content_nl
    elif fault == "host ABORT":
        before = b.truth()  # the board's own clock: never the host's (a 32-bit port's wraps at 2^30)
        content0, t0 = before.content_nl, before.now_us
        dev.abort()
    elif fault == "emergency stop":
        b.set_estop(True)
        t0, content0 = b.last_input.edge_us, b.last_input.content_nl
    elif fault == "occlusion (sudden)":
        b.occlude(1e6)
        t0, content0 = b.last_input.t_us, b.last_input.content_nl
    elif fault in ("link cut", "link stalled"):
        before = b.truth()
        content0, t0 = before.content_nl, before.now_us
        b.set_link("cut" if fault == "link cut" else "stall")
        poll = False
    elif fault == "firmware hang":
        before = b.truth()
        content0, t0 = before.content_nl, before.now_us
        b.hang()
        poll = False
    elif fault == "power cut (0.2 s)":
        before = b.truth()
        content0, t0 = before.content_nl, before.now_us
        b.power_cut(0.2)
        poll = False
    else:
        raise ValueError(fault)
    rig.wait_needle_out(pens, poll)
    b.set_link("ok")
    end = b.truth()
    if fault.startswith("link"):
        dev.hello()
    stop_ms = ticks_diff(end.last_step_us, t0) / 1000  # negative: the last step came before the fault
    out_ms = ticks_diff(b.penetrations[-1].t1_us, t0) / 1000
    after_ul = max(0.0, content0 - end.content_nl) / 1000
    steps = end.forward_steps - steps0 if steps0 is not None else -1
    return stop_ms, out_ms, after_ul, any(r["flags"] & spec.FLAG_PARTIAL for r in rig.records()), steps, busy


FAULTS = ["trigger release", "host ABORT", "emergency stop", "occlusion (sudden)", "link stalled", "link cut",
          "firmware hang", "power cut (0.2 s)", "trigger (flash slow)", "E-stop (flash slow)"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 trials per fault (CI)")
    ap.add_argument("--faults", nargs="+", choices=FAULTS, metavar="FAULT", default=FAULTS,
                    help="only these rows (default: all): " + ", ".join(repr(f) for f in FAULTS))
    ap.add_argument("--trials", type=int, help="trials per fault (default 20; --quick 3)")
    args = ap.parse_args()
    n = args.trials or (3 if args.quick else 20)
    print(f"bench_faults{' (quick)' if args.quick else ''}: {n} trials per fault, 50 uL points at 25 uL/s, BD 1 mL")
    print(f"{'fault':<20} {'stop p50':>9} {'stop p99':>9} {'needle out p99':>15} {'after p50':>10} {'after max':>10}"
          "  record written")
    slow_rows = []
    for fault in args.faults:
        slow = fault.endswith("(flash slow)")
        with SimBoard(profile=SLOW_FLASH if slow else None) as board:  # a fresh board and syringe per fault
            rig = Rig(board, retries=9 if slow else 5)
            rows = [trial(rig, fault) for _ in range(n)]
            if slow:
                status = rig.dev.status()
                slow_rows.append((fault, rows, status["overruns"], status["worst_pass_us"]))
            rig.dev.close()
        stops, outs, after = ([r[i] for r in rows] for i in range(3))
        written = sum(r[3] for r in rows)
        print(f"{fault:<20} {percentile(stops, 50):7.1f}ms {percentile(stops, 99):7.1f}ms "
              f"{percentile(outs, 99):13.1f}ms {statistics.median(after):8.3f}uL {max(after):8.3f}uL  {written}/{n}")
    print(f"\nflash slow (erase {SLOW_FLASH['flash_erase_ms']} ms, page {SLOW_FLASH['flash_page_us']} us), the stop sent "
          f"as a checkpoint begins an erase; target: last step <= {TARGET_MS:g} ms after the stop")
    print(f"{'fault':<20} {'stop p50':>9} {'stop p99':>9} {'target':>7} {'steps after max':>16} {'during erase':>13} "
          f"{'overruns':>9} {'worst pass':>11}")
    for fault, rows, overruns, worst in slow_rows:
        p50, p99 = (percentile([r[0] for r in rows], q) for q in (50, 99))
        verdict = "met" if p99 <= TARGET_MS else "MISSED"
        print(f"{fault:<20} {p50:7.1f}ms {p99:7.1f}ms {verdict:>7} {max(r[4] for r in rows):16d} "
              f"{sum(r[5] for r in rows):>10d}/{len(rows)} {overruns:9d} {worst / 1000:9.1f}ms")
    print("stop: board time from the fault (trigger/E-stop: the pin's edge) to the plunger's last forward step, "
          "not clipped (< 0: no step after it); needle out: to the needle leaving "
          "the skin;\nafter: volume pushed out of the syringe after the fault (net of the occlusion back-off);\n"
          "record: the partial point's DELIVERY event reached the host live; when the link is cut or the board "
          "resets mid-point\nthe record waits in the device journal and is stored at the next sync (bench_torture)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
