"""The device journal: a delivery survives lost events, lost links and power cuts, and is
stored exactly once by acknowledged sync."""

import os

import pytest

from hil import alarm_said, drain, prime_and_arm, wait_state
from mesoinject import sync
from mesoinject.client import Device, DeviceRefused
from mesoprotocol import spec

from test_stops import PARTIAL_NL, SLOW_POINT, start_slow_point



def pull(device, store):
    """Sync the journal into the store; every record it held, in order."""
    seen = []
    counts = sync.drain(device, store, on_record=lambda f, new: seen.append(dict(f, new=new)))
    assert device.status()["unacked"] == 0
    return counts, seen


@pytest.mark.req("SR-053")
@pytest.mark.sim_only  # cuts the sim board's power (the emulated Pico has no power cut yet)
def test_power_cut_mid_point_comes_back_as_a_partial_record(device, sim, store):
    _, pens = start_slow_point(device, sim)
    sim.power_cut(off_s=0.3)
    sim.wait(lambda: len(sim.penetrations) > pens, 5, "needle homed after power returned")
    truth = sim.penetrations[-1].volume_nl
    device.hello()
    _, seen = pull(device, store)
    lost = [r for r in seen if r["flags"] & spec.FLAG_POWER_LOST]
    assert len(lost) == 1
    r = lost[0]
    assert r["flags"] & spec.FLAG_PARTIAL and r["kind"] == spec.KIND_POINT
    # the record is the last checkpoint before the cut: never more than the truth, and at most
    # one checkpoint interval (1 uL for this 50 uL point) behind it
    assert truth - spec.JOURNAL_CHECKPOINT_NL - PARTIAL_NL <= r["delivered_nl"] <= truth + PARTIAL_NL
    sim.set_trigger(False)


@pytest.mark.req("SR-042")
@pytest.mark.sim_only  # cuts the sim board's power (the emulated Pico has no power cut yet)
def test_the_first_prime_after_a_restart_is_metered_like_any(device, sim, store):
    # a prime ends drawn back by its suck-back (the play and the anti-drip draw); after a restart the firmware
    # cannot know that and takes up the worst case before the next prime counts: that prime's air is its
    # record, to the half percent (the play alone assumed left the draw's 64 steps in the count: -1.8 %)
    device.configure(**dict(SLOW_POINT, flow_nl_s=50000))
    device.prime(5000)
    wait_state(device, {spec.STATE_PRIMED})
    sim.power_cut(off_s=0.3)
    device.hello()
    device.abort()  # the restart's RESET acknowledged (not this test's record)
    device.configure(**dict(SLOW_POINT, flow_nl_s=50000))
    air = sim.truth().air_nl
    device.prime(20000)
    assert wait_state(device, {spec.STATE_PRIMED, spec.STATE_FAULT}) == spec.STATE_PRIMED, alarm_said(device)
    primes = [r for r in pull(device, store)[1] if r["kind"] == spec.KIND_PRIME]
    assert sim.truth().air_nl - air == pytest.approx(primes[-1]["delivered_nl"], rel=0.005)


WRAP_SKEW = pytest.mark.skipif(bool(os.environ.get("MICROPY_TICKS_WRAP_S")),
                               reason="records are matched to needle entries by board clock, which MICROPY_TICKS_WRAP_S "
                                      "restarts at every simulated boot (power cuts): run it without the wrap skew")


@pytest.mark.req("SR-053", "SR-130")
@pytest.mark.sim_only  # cuts the sim board's power (the emulated Pico has no power cut yet)
@WRAP_SKEW
def test_a_point_cut_before_its_first_checkpoint_is_stamped_inside_its_needle_entry(device, sim, store):
    # at the least flow a checkpoint interval (1 uL) takes a second: the cut lands before the first one
    # after the dose's start; the record must still say when it was delivered (with the needle in), not
    # when the point was opened (before the needle went in): that is how a record is tied to a patient's
    # needle entry (and the torture bench matches them)
    device.configure(**dict(SLOW_POINT, flow_nl_s=spec.MIN_FLOW_NL_S))
    prime_and_arm(device)
    start = sim.truth().out_nl
    pens = len(sim.penetrations)
    sim.set_trigger(True)
    wait_state(device, {spec.STATE_DELIVERING}, timeout=5)
    sim.wait(lambda: sim.truth().out_nl - start > 50, 10, "fluid out of the needle")
    sim.power_cut(off_s=0.3)
    sim.wait(lambda: len(sim.penetrations) > pens, 5, "needle homed after power returned")
    entry = sim.penetrations[-1]
    sim.set_trigger(False)
    device.hello()
    sim.truth()  # the control channel read up to the boot's end: every needle excursion of the boot is in
    # one needle entry: the boot's needle-play probe (10 um, while the uncut line still drips) is none
    assert sim.penetrations[pens:] == [entry]
    _, seen = pull(device, store)
    lost = [r for r in seen if r["flags"] & spec.FLAG_POWER_LOST]
    assert len(lost) == 1
    r = lost[0]
    assert r["delivered_nl"] <= entry.volume_nl + PARTIAL_NL
    entered_ms = entry.t1_ms - (entry.t1_us - entry.t0_us) // 1000
    # +-2 ms: ticks_ms and the model's ticks_us tick over apart
    assert entered_ms - 2 <= r["time_ms"] <= entry.t1_ms + 2, (
        f"record at {r['time_ms']} ms, needle in the skin {entered_ms}..{entry.t1_ms} ms")


@pytest.mark.req("SR-052", "SR-054")
@pytest.mark.sim_only  # cuts the sim board's serial link (the emulated Pico's USB CDC has no link faults)
def test_a_delivery_lost_with_the_link_is_recovered_once(device, sim, store):
    _, pens = start_slow_point(device, sim)
    sim.set_link("cut")  # the DELIVERY of the stopped point never reaches the host
    sim.wait(lambda: len(sim.penetrations) > pens, 5, "link loss stops the point and retracts")
    sim.set_link("ok")
    device.hello()
    assert device.status()["unacked"] >= 1
    counts, seen = pull(device, store)
    stopped = [r for r in seen if r["flags"] & spec.FLAG_FAULT]
    assert len(stopped) == 1
    # once in ~150 runs under load (CI, and a board started while pip installed) the record read ~110 nL (20 steps)
    # over its truth, the truth itself as usual; not reproduced in 130 seeded runs with CPU or disk hogs: the
    # message carries what a diagnosis needs
    assert stopped[0]["delivered_nl"] == pytest.approx(sim.penetrations[-1].volume_nl, abs=PARTIAL_NL), (
        "%s; %s; %s; last prime's compliance probe %s" % (alarm_said(device), sim.penetrations[-1], sim.truth(),
                                                          sim.probes[-1:]))
    # a second sync finds nothing; replaying the same record stores nothing new
    assert pull(device, store)[0].stored == 0
    assert not store.add_delivery(list(counts.sessions)[0], device.identity.serial, stopped[0])
    sim.set_trigger(False)


@pytest.mark.req("SR-050")
def test_events_and_the_journal_agree(device, sim, store):
    """Every DELIVERY event is also in the journal, field for field, until acknowledged."""
    device.configure(**dict(SLOW_POINT, volume_nl=5000, flow_nl_s=50000))
    prime_and_arm(device)
    sim.set_trigger(True)
    seen = []
    while device.status()["done"] < 1:  # the heartbeat, while the point runs
        if (e := device.next_event(0.05)) is not None:
            seen.append(e)
    sim.set_trigger(False)
    wait_state(device, {spec.STATE_ARMED}, seen=seen)
    seen += drain(device)
    events = [e.fields for e in seen if e.type == spec.DELIVERY]
    assert events
    _, journal = pull(device, store)
    by_id = {r["record_id"]: r for r in journal}
    for e in events:
        record = by_id[e["record_id"]]
        assert set(e) - set(record) == set()  # every DELIVERY field is journalled (vacuum_kpa too, since SR-171)
        assert {k: record[k] for k in e} == e


@pytest.mark.req("SR-058")
def test_a_full_journal_refuses_to_arm_and_says_why(sim):
    from mesoinject.simulated import SimBoard

    with SimBoard(journal_cells=6) as board, Device.open(board.url) as dev:
        dev.hello()
        dev.abort()
        dev.configure(**SLOW_POINT)  # 5 points: 6 records with one stopped early
        dev.prime(5000)
        assert wait_state(dev, {spec.STATE_PRIMED, spec.STATE_FAULT}) == spec.STATE_PRIMED
        with pytest.raises(DeviceRefused) as e:
            dev.arm()
        assert (e.value.reason, e.value.value, e.value.limit) == ("JOURNAL_FULL", 5, 6)
        assert dev.hello().journal_free == 5
        prime = dev.records(0)
        assert prime["kind"] == spec.KIND_PRIME and prime["pending"] == 1
        assert dev.records(prime["record_id"])["record_id"] == 0  # stored by a host: room again
        assert dev.arm()["state"] == spec.STATE_ARMED


@pytest.mark.req("SR-051")
def test_records_stay_on_the_device_until_the_host_can_store_them(device, tmp_path):
    import sqlite3

    from mesoinject.records import RecordStore, RecordStoreError

    with RecordStore(tmp_path / "earlier.db") as earlier:
        sync.drain(device, earlier)  # earlier tests' records out of the way (an aborted program's end)
    device.configure(**dict(SLOW_POINT, volume_nl=5000, flow_nl_s=50000))
    prime_and_arm(device)  # the prime's record is now on the device, unacknowledged
    drain(device)
    held = device.status()["unacked"]
    assert held >= 1
    path = tmp_path / "locked.db"
    store = RecordStore(path, busy_timeout_s=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    with pytest.raises(RecordStoreError):
        sync.drain(device, store)
    assert device.status()["unacked"] == held  # nothing acknowledged that was not committed
    other.execute("ROLLBACK")
    counts = sync.drain(device, store)
    assert counts.stored == held and device.status()["unacked"] == 0
    assert len(store.deliveries()) == held
    other.close()
    store.close()


@pytest.mark.req("SR-060")
@pytest.mark.parametrize("shots", [150])
@pytest.mark.skipif(bool(os.environ.get("MICROPY_TICKS_WRAP_S")),
                    reason="the ground truth is matched to records by board clock, which MICROPY_TICKS_WRAP_S restarts "
                           "at every simulated boot (power cuts): run it without the wrap skew (./test.sh does, on 32-bit)")
def test_torture_loses_and_double_counts_nothing(sim, request, tmp_path, shots):
    """The bench's quick torture run, asserted: corrupted frames, pulled cables, power cuts."""
    import sys

    sys.path.insert(0, str(request.config.rootpath / "bench"))
    import bench_torture

    # flash untimed: the guarantees do not depend on flash time (a cut lands between writes either way)
    r = bench_torture.run(shots, 2, 2, 0.01, request.config.sim_seed, tmp_path, timed_flash=False)
    bench_torture.report(r)
    assert r.penetrations >= shots and r.power_cuts == 2 and r.disconnects == 2
    assert (r.lost, r.duplicated, r.out_of_tolerance) == (0, 0, 0)
    assert r.power_lost >= 1  # at least one cut landed while a shot was dispensing


@pytest.mark.req("SR-051")
def test_a_session_goes_on_when_the_store_fails_and_its_records_wait_on_the_device(device, sim, tmp_path):
    import sqlite3

    from hil import load_program
    from mesoinject.records import RecordStore
    from mesoinject.session import RecordsKeptOnDevice, SessionRunner
    from mesosim import VirtualOperator

    store = RecordStore(tmp_path / "records.db", busy_timeout_s=0.05)
    sync.drain(device, store)  # earlier tests' records out of the way
    other = sqlite3.connect(tmp_path / "records.db", isolation_level=None)

    def lock_once(progress):  # another program takes the write lock once the session has begun
        if not other.in_transaction:
            other.execute("BEGIN IMMEDIATE")

    program = load_program("point-by-point", count=3)
    runner = SessionRunner(device, store, on_progress=lock_once)
    with VirtualOperator(sim, gap_s=0.02) as op, pytest.raises(RecordsKeptOnDevice) as e:
        runner.run(program, timeout_s=60)
    assert op.error is None
    assert "mesoinject sync" in str(e.value)
    assert device.status()["state"] == spec.STATE_COMPLETE  # the treatment was not cut short
    held = device.status()["unacked"]
    assert held >= 3  # the three points at least (the prime may have been stored before the lock)
    other.execute("ROLLBACK")
    counts = sync.drain(device, store)
    assert counts.stored == held and counts.sessions == {runner.session_id}
    kinds = [r["kind"] for r in store.deliveries(runner.session_id)]
    assert kinds[-3:] == ["point"] * 3 and set(kinds[:-3]) <= {"prime"}  # primed here only if not before
    # exactly: the prime is on the record whenever this session primed (stored before the lock or held)
    assert kinds == (["prime"] if runner.configured != spec.STATE_PRIMED else []) + ["point"] * 3
    other.close()
    store.close()


@pytest.mark.req("SR-056")
def test_an_alarm_and_the_outcome_in_a_store_outage_reach_the_record_through_sync(device, sim, tmp_path):
    """Issue 15 row 8: an E-stop while the store was locked never reached the record, and the session
    stayed 'running' after sync. Both are journalled on the device now, and acknowledged once stored."""
    import sqlite3
    import threading

    from hil import load_program
    from mesoinject.records import RecordStore
    from mesoinject.session import RecordsKeptOnDevice, SessionRunner
    from mesosim import VirtualOperator

    store = RecordStore(tmp_path / "records.db", busy_timeout_s=0.05)
    sync.drain(device, store)  # earlier tests' records out of the way
    other = sqlite3.connect(tmp_path / "records.db", isolation_level=None)
    stop = threading.Event()

    def outage_then_estop(progress):  # the store goes away once the session has begun; after a point, E-stop
        if not other.in_transaction:
            other.execute("BEGIN IMMEDIATE")
        if progress.done >= 1 and not stop.is_set():
            stop.set()
            threading.Thread(target=sim.set_estop, args=(True,)).start()  # not on the runner's thread

    runner = SessionRunner(device, store, on_progress=outage_then_estop)
    try:
        with VirtualOperator(sim, gap_s=0.02), pytest.raises(RecordsKeptOnDevice):
            runner.run(load_program("point-by-point", count=3), timeout_s=60)
        assert device.status()["alarm"] == spec.ALARM_ESTOP
        assert runner.store_error is not None  # nothing of the ending could be stored
    finally:
        sim.wait(lambda: sim.estop_pressed, 2, "the E-stop")
        sim.set_estop(False)
    other.execute("ROLLBACK")
    counts = sync.drain(device, store)  # what `mesoinject sync` does, once the store is back
    assert [a["code"] for a in store.alarms(runner.session_id)] == ["ESTOP"]
    assert store.session(runner.session_id)["outcome"] == "fault"
    assert counts.alarms == 1 and device.status()["unacked"] == 0
    assert sync.drain(device, store).stored == 0  # nothing twice
    other.close()
    store.close()


@pytest.mark.req("SR-057")
@pytest.mark.sim_only  # erases the flash of a simulated board of its own
def test_a_device_whose_flash_was_erased_gets_records_that_never_collide(request, tmp_path):
    """Issue 15 row 9: a device erased (same serial) counted its record ids again; run and sync then
    failed on a RecordConflict forever and the journal filled. A new journal epoch keeps them apart."""
    import shutil

    from hil import load_program
    from mesoinject.records import RecordStore
    from mesoinject.session import SessionRunner
    from mesoinject.simulated import SimBoard
    from mesosim import VirtualOperator

    store = RecordStore(tmp_path / "records.db")
    program = load_program("point-by-point", count=2)
    with SimBoard(workdir=tmp_path / "board", seed=request.config.sim_seed) as board, \
            Device.open(board.url) as dev:
        with VirtualOperator(board, gap_s=0.02):
            first = SessionRunner(dev, store).run(program, timeout_s=60)
        assert first.completed
        before = store.deliveries()
        epoch = getattr(dev.hello(), "journal_epoch", None)
        # the flash erased, same serial (the firmware and its key put back): journal and boot counter gone
        for name in ("flash.img", "journal.d", "journal", "boot_count"):  # flash.img: the journal's littlefs
            path = board.flash / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        board.power_cut(0)
        runner = SessionRunner(dev, store)
        with VirtualOperator(board, gap_s=0.02):
            second = runner.run(program, timeout_s=60)
        assert dev.hello().journal_epoch != epoch
        assert second.completed and dev.status()["unacked"] == 0  # every record stored and acknowledged
        assert runner.earlier.erased == len(before)  # what happened, for the CLI to say
        assert "flash was erased" in runner.earlier.erased_note(board.serial)
    after = store.deliveries()
    assert [d for d in after if d["session_id"] == first.session_id] == before  # the earlier records kept as they were
    mine = [d for d in after if d["session_id"] == second.session_id]
    assert [d["kind"] for d in mine if d["kind"] != "prime"] == ["point", "point"]
    assert {d["record_id"] for d in mine} & {d["record_id"] for d in before}  # the ids did start again
    store.close()
