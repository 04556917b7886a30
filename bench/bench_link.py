"""Link figures on the simulated board, through the link-fault injector; printed, never asserted
(hil_tests/test_link.py asserts a short soak).

- soak: commands at a fault rate - PAUSE/RESUME pairs (each executed once or it is seen: a
  second execution is refused with BAD_STATE) and STATUS polls; every STATE event they cause
  must reach the host exactly once, in order. Counts lost commands (LinkError), commands
  executed twice, events lost or duplicated, and what the injector did.
- goodput: STATUS polls over a line paced at 115200 baud, as a fraction of its raw capacity;
  protocol overhead per DELIVERY.

    python bench/bench_link.py [--quick] [--commands N] [--seed S]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import time

from mesoinject import codec, keys
from mesoinject.client import Device, DeviceRefused
from mesoinject.link import LinkError
from mesoprotocol import spec
from mesoinject.simulated import SimBoard
from mesosim import LinkFaults
from benchlib import armed

ARMABLE = dict(technique=spec.TECHNIQUE_POINT, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=2000,
               volume_nl=30000, count=20, cadence_mhz=0, flow_nl_s=50000)


@dataclasses.dataclass
class Soak:
    commands: int = 0
    lost: int = 0  # no reply after every retransmission
    executed_twice: int = 0  # a PAUSE/RESUME refused: it had already run
    stopped: dict = dataclasses.field(default_factory=dict)  # alarms the device stopped on (re-armed)
    events_expected: int = 0
    events_received: int = 0
    event_duplicates: int = 0  # suppressed by the host link
    events_lost: int = 0
    retransmits: int = 0
    injected: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    first_refusal: str = ""

    @property
    def clean(self) -> bool:
        return not (self.lost or self.executed_twice or self.events_lost or self.stopped
                    or self.events_received != self.events_expected)


def soak(board: SimBoard, n: int, faults: LinkFaults) -> Soak:
    """n commands through `faults`: PAUSE, STATUS, RESUME, STATUS, ..."""
    r = Soak()
    with Device.open(board.url) as dev:
        armed(dev, ARMABLE)
        board.set_link_faults(faults)
        t0 = time.monotonic()
        paused = False
        states = []
        for i in range(n):
            r.commands += 1
            try:
                if i % 2:
                    dev.status()
                else:
                    state = (dev.resume() if paused else dev.pause())["state"]
                    paused = state == spec.STATE_PAUSED
                    r.events_expected += 1
            except DeviceRefused as e:
                try:
                    status = dev.status()
                except LinkError:
                    r.lost += 1
                    continue
                if status["state"] == spec.STATE_FAULT:  # it stopped itself (a starved link: LINK_LOST)
                    name = spec.ALARM_NAMES[status["alarm"]]
                    r.stopped[name] = r.stopped.get(name, 0) + 1
                    board.set_link_faults(None)
                    armed(dev, ARMABLE)
                    board.set_link_faults(faults)
                    paused = False
                    continue
                r.executed_twice += 1
                r.first_refusal = r.first_refusal or f"command {i}: {e}"
                paused = status["state"] == spec.STATE_PAUSED  # carry on from where the device is
            except LinkError:
                r.lost += 1
            while (e := dev.next_event(0)) is not None:
                states.append(e)
        board.set_link_faults(None)
        dev.status()  # one clean poll fetches whatever the last commands' events lost
        while (e := dev.next_event(0.05)) is not None:
            states.append(e)
        r.seconds = time.monotonic() - t0
        r.events_received = sum(1 for e in states if e.type == spec.STATE)
        r.event_duplicates = dev.link.event_duplicates
        r.events_lost = dev.link.event_gaps
        r.retransmits = dev.link.retransmits
        r.injected = dict(faults.counts)
    return r


def goodput(board: SimBoard, baud: int, polls: int) -> tuple[float, float]:
    """STATUS polls per second over a paced line, and the line's use by their bytes."""
    board.set_link_faults(LinkFaults(baud=baud))
    try:
        with Device.open(board.url) as dev:
            dev.status()
            t0 = time.monotonic()
            for _ in range(polls):
                dev.status()
            rate = polls / (time.monotonic() - t0)
    finally:
        board.set_link_faults(None)
    return rate, rate * (_size(spec.STATUS) + _size(spec.STATUS_REPLY)) * 10 / baud


def _size(msg_type: int) -> int:
    import struct

    return spec.HEADER_SIZE + struct.calcsize(spec.layout(msg_type)[0]) + spec.CRC_SIZE


def auth_rejections(board: SimBoard, n: int) -> dict:
    """n forged, n replayed and n reordered CONFIGUREs: how many the device refused (NACK AUTH)."""
    refused = {"forged": 0, "replayed": 0, "reordered": 0}
    config = dict(ARMABLE, session=1, session_cap_nl=0)
    with Device.open(board.url) as dev:
        dev.hello()
        dev.abort()
        seq = 0

        def send(fields):
            nonlocal seq
            seq = seq % 250 + 1
            reply = dev.link.exchange(codec.encode(spec.CONFIGURE, seq, **fields), seq)
            dev.status()  # a poll between frames, as a host makes them
            return reply.type == spec.NACK and reply.fields["reason"] == spec.NACK_AUTH

        for _ in range(n):
            forged = dev.sign(spec.CONFIGURE, **config)
            payload = codec.PAYLOADS[spec.CONFIGURE].build(forged)
            forged["mac"] = keys.mac(random.randbytes(spec.KEY_SIZE), spec.CONFIGURE, payload[: -spec.MAC_SIZE])
            refused["forged"] += send(forged)
            good = dev.sign(spec.CONFIGURE, **config)
            send(good)
            refused["replayed"] += send(good)
            early, late = dev.sign(spec.CONFIGURE, **config), dev.sign(spec.CONFIGURE, **config)
            send(late)
            refused["reordered"] += send(early)
    return refused


def report_soak(name: str, s: Soak) -> None:
    print(f"soak {name}: {s.commands} commands in {s.seconds:.1f} s ({s.commands / s.seconds:.0f}/s), "
          f"{s.retransmits} retransmissions; injected {s.injected}")
    print(f"  lost {s.lost}, executed twice {s.executed_twice}; STATE events {s.events_received}/"
          f"{s.events_expected} received, {s.event_duplicates} duplicates suppressed, {s.events_lost} lost"
          + (f"; the device stopped itself {s.stopped} (re-armed)" if s.stopped else "")
          + (f"; first refusal: {s.first_refusal}" if s.first_refusal else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a short run (CI)")
    ap.add_argument("--commands", type=int, help="soak length (default 100000, quick 3000)")
    ap.add_argument("--seed", type=int, help="default: random, printed")
    args = ap.parse_args()
    n = args.commands or (3000 if args.quick else 100000)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"bench_link: seed {seed}")
    ok = True
    with SimBoard() as board:
        for name, faults in (("1 % bit flips", LinkFaults(flip=0.01, seed=seed)),
                             ("every fault at 1 %", LinkFaults(flip=0.01, drop=0.01, duplicate=0.01, truncate=0.01,
                                                                delay=0.01, seed=seed))):
            s = soak(board, n, faults)
            report_soak(name, s)
            ok &= s.clean
        m = 100 if args.quick else 1000
        refused = auth_rejections(board, m)
        print("authentication: refused " + ", ".join(f"{v}/{m} {k}" for k, v in refused.items()))
        ok &= all(v == m for v in refused.values())
        rtts = []
        with Device.open(board.url) as dev:
            for _ in range(200 if args.quick else 2000):
                t = time.perf_counter()
                dev.status()
                rtts.append((time.perf_counter() - t) * 1e6)
        q = statistics.quantiles(rtts, n=100)
        print(f"STATUS round trip (socket, unpaced): p50 {q[49]:.0f} us, p99 {q[98]:.0f} us")
        rate, use = goodput(board, 115200, 100 if args.quick else 500)
        print(f"115200 baud: {rate:.0f} STATUS polls/s, the line {use * 100:.0f} % busy with them "
              f"({_size(spec.STATUS) + _size(spec.STATUS_REPLY)} bytes a poll)")
    payload = _size(spec.DELIVERY) - spec.HEADER_SIZE - spec.CRC_SIZE
    print(f"DELIVERY: {_size(spec.DELIVERY)} bytes on the wire for {payload} of payload "
          f"({spec.HEADER_SIZE + spec.CRC_SIZE} overhead); its acknowledgement RECORDS/RECORD "
          f"{_size(spec.RECORDS) + _size(spec.RECORD)} bytes more")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
