"""Mutational fuzzing of the firmware's frame parser and command dispatcher, on the MicroPython unix port.

firmware/tests/mpy_fuzz.py builds the real firmware (app.App: link, device, journal) on a fake
board with a virtual clock and feeds it mutated frames seeded from the golden vectors, checking
every reply, event and state change against PROTOCOL.md (see its header). The seed is fixed so
CI runs are reproducible; MESOFUZZ_SEED / MESOFUZZ_FRAMES choose others, and
`python bench/bench_fuzz.py --seed S --frames N` replays or extends a run.
"""

import os

import pytest

import fuzzrun

FRAMES = int(os.getenv("MESOFUZZ_FRAMES") or 100_000)
SEED = int(os.getenv("MESOFUZZ_SEED") or 20260611)


@pytest.fixture(scope="module")
def fuzz():
    result = fuzzrun.run(FRAMES, SEED, timeout=900)
    print(f"\nfirmware fuzz, seed {SEED} (replay: {fuzzrun.command(FRAMES, SEED)}):\n{result.report()}")
    return result


@pytest.mark.req("SR-034")
def test_fuzzing_finds_no_failure(fuzz):
    assert fuzz.returncode == 0 and fuzz.summary is not None, "the fuzzer crashed:\n" + fuzz.report()
    summary = fuzz.summary
    assert summary["seed"] == SEED
    assert summary["frames"] == FRAMES
    assert summary["failures"] == 0, f"{summary['failures']} failures, {summary['by_kind']}:\n" + "\n".join(
        f"#{s['case']} {s['kind']} [state {s['state']}]: {s['detail']}\n  frame {s['hex']}" for s in summary["samples"])


@pytest.mark.req("SR-034")
def test_fuzzing_reached_every_layer(fuzz):
    # the run exercised drops, framing NACKs, the reply cache and the dispatcher, field checks
    # of every kind, and commands in most device states
    assert fuzz.summary is not None, fuzz.report()
    stats, reasons, states = fuzz.summary["stats"], fuzz.summary["nack_reasons"], fuzz.summary["states"]
    for key in ("dropped", "framing_nacks", "dispatched", "acks", "nacks", "cache_hits", "events", "timeouts"):
        assert stats[key] > 0, key
    assert stats["dispatched"] > FRAMES // 4
    for reason in ("UNKNOWN_TYPE", "BAD_LENGTH", "BAD_VERSION", "BAD_STATE", "LIMIT", "BAD_VALUE"):
        assert reasons.get(reason, 0) > 0, reason
    # one controlling host: forged and replayed frames, session commands outside the open
    # session, OPENs while it is live, some just as it lapsed
    for reason in ("AUTH", "NO_SESSION", "OTHER_HOST"):
        assert reasons.get(reason, 0) > 0, reason
    assert fuzz.summary["ops"].get("OPEN as the session lapses", 0) > 0
    for state in ("IDLE", "CONFIGURED", "PRIMING", "PRIMED", "ARMED", "DELIVERING", "PAUSED", "FAULT"):
        assert states.get(state, 0) > 0, state
