"""Every alarm the protocol defines has words on the host: its name, what happened, what to do, an exit code."""

from __future__ import annotations

import pytest

from mesoinject import alarms
from mesoprotocol import spec

CODES = [code for code, name in enumerate(spec.ALARM_NAMES) if name]  # 0 is "no alarm"


@pytest.mark.req("SR-080")
@pytest.mark.parametrize("code", CODES, ids=[spec.ALARM_NAMES[c] for c in CODES])
def test_every_protocol_alarm_has_a_name_what_happened_and_what_to_do(code):
    assert code in alarms.ALARMS, f"{spec.ALARM_NAMES[code]} has no text in mesoinject.alarms"
    name, what, todo = alarms.describe(code, 250, "watchdog")
    assert name == spec.ALARM_NAMES[code]
    assert len(what) > 20 and len(todo) > 20
    assert "does not know" not in what and "contact service" not in todo
    assert "{" not in what + todo  # every placeholder filled
    explained = alarms.explain(code, 250)
    assert explained.startswith(f"ALARM {name}: ") and "Next: " in explained


@pytest.mark.req("SR-080")
def test_each_alarm_has_its_own_exit_code_and_none_is_bad_input():
    codes = [alarms.exit_code(code) for code in CODES]
    assert len(set(codes)) == len(codes) and min(codes) >= 3  # 0 done, 1 not completed, 2 bad input
    assert alarms.exit_code(spec.ALARM_JOURNAL_FULL) == 9


@pytest.mark.req("SR-080")
def test_journal_full_says_sync_frees_it():
    _, what, todo = alarms.describe(spec.ALARM_JOURNAL_FULL, 0)
    assert "not give" in what and "mesoinject sync --port PORT" in todo and "mesoinject abort" in todo


@pytest.mark.req("SR-080")
def test_an_alarm_newer_than_this_host_says_to_update_it():
    code = len(spec.ALARM_NAMES)
    name, what, todo = alarms.describe(code, 0)
    assert name == f"alarm {code}" and f"alarm {code}, which this version" in what and "update mesoinject" in todo
    assert alarms.exit_code(code) == 1


@pytest.mark.req("SR-177")
@pytest.mark.parametrize("cause", spec.RESET_NAMES)
def test_a_reset_alarm_names_its_cause_from_its_detail(cause):
    # the RESET ALARM event's detail is the cause's index; the CLI's summary has no other source for it
    explained = alarms.explain(spec.ALARM_RESET, spec.RESET_NAMES.index(cause))
    assert f"restarted ({cause}: " in explained and "cause unknown" not in explained


@pytest.mark.req("SR-177")
def test_only_the_reset_acknowledged_at_begin_is_left_out_of_the_runs_alarms():
    import types

    from mesoinject.session import SessionRunner

    class Store:
        def add_alarm(self, session_id, serial, fields):
            self.stored.append(fields["code"])

    store = Store()
    store.stored = []
    device = types.SimpleNamespace(identity=types.SimpleNamespace(serial="SIM-1"))
    runner = SessionRunner(device, store)
    runner.start_boot = 7  # what begin() sets: the boot the session began in (a switched-on device)

    def alarm(code, detail, boot=7):
        return types.SimpleNamespace(type=spec.ALARM, fields=dict(code=code, detail=detail, record_id=0,
                                                                  boot_count=boot, epoch=5))

    runner.handle_event(alarm(spec.ALARM_RESET, spec.RESET_POWER_ON))  # the boot's, arriving after begin
    assert runner.progress.alarms == []
    runner.handle_event(alarm(spec.ALARM_RESET, spec.RESET_POWER_ON, 8))  # a brown-out during the run reads the same
    runner.handle_event(alarm(spec.ALARM_RESET, spec.RESET_WATCHDOG, 9))
    assert runner.progress.alarms == [(spec.ALARM_RESET, spec.RESET_POWER_ON), (spec.ALARM_RESET, spec.RESET_WATCHDOG)]
    assert store.stored == [spec.ALARM_RESET] * 3  # every one is on the record
    assert "WATCHDOG: its firmware stopped" in alarms.explain(*runner.progress.alarms[-1])


@pytest.mark.req("SR-177", "SR-204")
def test_a_restart_during_the_run_is_named_in_the_outcome_and_the_routine_one_is_not():
    # words() left every RESET out: a session the device's watchdog (or a brown-out, read as POWER_ON) cut
    # short said "stopped on an alarm"; the boot's RESET begin() acknowledged must still never be one
    import types

    from mesoinject.session import SessionRunner

    class Store:
        def add_alarm(self, session_id, serial, fields):
            pass

    def alarm(code, detail, boot=7):
        return types.SimpleNamespace(type=spec.ALARM, fields=dict(code=code, detail=detail, record_id=0,
                                                                  boot_count=boot, epoch=5))

    device = types.SimpleNamespace(identity=types.SimpleNamespace(serial="SIM-1"))
    for cause, said in [(spec.RESET_WATCHDOG, "WATCHDOG"), (spec.RESET_POWER_ON, "POWER ON")]:
        runner = SessionRunner(device, Store())
        runner.start_boot = 7  # begin() acknowledged a switched-on device in boot 7
        runner.handle_event(alarm(spec.ALARM_RESET, spec.RESET_POWER_ON))  # the boot's, arriving after begin
        assert runner.words("complete") == "complete"
        runner.handle_event(alarm(spec.ALARM_OCCLUSION, 250))
        assert runner.words("fault") == "stopped on OCCLUSION"
        runner.handle_event(alarm(spec.ALARM_RESET, cause, 8))  # the device restarted during the run
        assert runner.words("fault") == f"stopped on RESET ({said})"


@pytest.mark.req("SR-202")
def test_a_stored_session_cut_short_by_a_restart_names_it_and_its_start_reset_is_left_out():
    # before: stopping_alarm left out every RESET, so a session a watchdog or a power cut ended read "stopped on an
    # alarm" (or "interrupted") from its stored records, and its report named no alarm
    from mesoinject import outcomes

    def reset(cause, boot):
        return {"code": "RESET", "detail": spec.RESET_NAMES.index(cause), "boot_count": boot}

    start = reset("POWER_ON", 7)  # switched on: acknowledged as the session began in boot 7
    occlusion = {"code": "OCCLUSION", "detail": 420, "boot_count": 7}
    for cause in ("WATCHDOG", "POWER_ON", "SOFT"):  # a brown-out or power cut reads as POWER_ON
        assert outcomes.stopping_alarm([start, reset(cause, 8)], start_boot=7) == "RESET"
        assert outcomes.stopping_alarm([start, occlusion, reset(cause, 8)], start_boot=7) == "RESET"
    assert outcomes.stopping_alarm([start], start_boot=7) is None
    assert outcomes.stopping_alarm([start, occlusion], start_boot=7) == "OCCLUSION"
    assert outcomes.stopping_alarm([reset("WATCHDOG", 7)], start_boot=7) is None  # a restart from before the session
    # rows stored before boots were kept: only the routine reset is taken for the start's
    old = [{"code": "RESET", "detail": spec.RESET_POWER_ON}, {"code": "RESET", "detail": spec.RESET_WATCHDOG}]
    assert outcomes.stopping_alarm(old[:1]) is None and outcomes.stopping_alarm(old) == "RESET"
    session = {"outcome": "fault", "technique": "point-by-point", "boot_count": 7}
    assert outcomes.of_session(session, [], [start, reset("WATCHDOG", 8)]) == "stopped on RESET"
    assert outcomes.of_session(session, [], [start]) == "stopped on an alarm"


@pytest.mark.req("SR-202")
def test_the_report_lists_a_power_cut_during_the_session_but_not_the_routine_start():
    from mesoinject.exports.common import SessionRecord

    start = {"code": "RESET", "detail": spec.RESET_POWER_ON, "boot_count": 7}
    cut = {"code": "RESET", "detail": spec.RESET_POWER_ON, "boot_count": 8}
    record = SessionRecord({"outcome": "fault", "boot_count": 7}, [], [], [start, cut], [], [])
    assert record.device_alarms == [cut]
    assert record.outcome_words == "stopped on RESET"


@pytest.mark.req("SR-207")
def test_a_restart_the_runner_learns_of_from_status_is_stored_from_hello_and_reported_once():
    # the device restarted while the session ran and its RESET event never came (the link was down past its
    # ring, or the event was lost with the link): STATUS names another boot, HELLO its cause. Before: nothing
    # stored, nothing reported, the run's words "stopped on an alarm"
    import queue
    import types

    from mesoinject.session import SessionRunner

    class Store:
        stored: list = []

        def add_alarm(self, session_id, serial, fields):
            self.stored.append((session_id, fields["code"], fields["detail"], fields.get("boot_count")))

    class Restarted:
        """A device that restarted into boot 8 (watchdog) since the runner's last poll in boot 7."""

        identity = types.SimpleNamespace(serial="SIM-1")
        events: queue.Queue = queue.Queue()

        def status(self):
            return {"state": spec.STATE_FAULT, "alarm": spec.ALARM_RESET, "boot_count": 8, "unacked": 0, "done": 0,
                    "depth_um": 0, "syringe_left_nl": 0, "time_ms": 40}

        def hello(self):
            self.identity = types.SimpleNamespace(serial="SIM-1", boot_count=8, reset_cause="WATCHDOG",
                                                  journal_epoch=5)
            return self.identity

        def next_event(self, timeout):
            return None if self.events.empty() else self.events.get()

    store, device = Store(), Restarted()
    runner = SessionRunner(device, store)
    runner.session_id, runner.start_boot, runner.boot = 3, 7, 7
    assert runner._poll() == spec.STATE_FAULT
    assert store.stored == [(3, spec.ALARM_RESET, spec.RESET_WATCHDOG, 8)]
    assert runner.progress.alarms == [(spec.ALARM_RESET, spec.RESET_WATCHDOG)]
    assert runner.words("fault") == "stopped on RESET (WATCHDOG)"
    # its event after all (the ring still held it): the store keeps one row per boot, the run reports it once
    device.events.put(types.SimpleNamespace(type=spec.ALARM, fields=dict(
        code=spec.ALARM_RESET, detail=spec.RESET_WATCHDOG, time_ms=12, record_id=0, epoch=5, boot_count=8)))
    runner._poll()
    assert runner.progress.alarms == [(spec.ALARM_RESET, spec.RESET_WATCHDOG)]


@pytest.mark.req("SR-207")
def test_a_boot_seen_only_in_the_count_is_stored_and_reported_with_its_cause_unknown():
    # the device restarted twice while the link was down (boot 7 -> 8 -> 9): boot 8's RESET went with boot 8's
    # event ring, and only boot 9's cause can be read (HELLO). Both restarts are on the record, 8's cause unknown
    import types

    from mesoinject import boots
    from mesoinject.session import SessionRunner

    stored = []

    class Store:
        def add_alarm(self, session_id, serial, fields):
            stored.append((fields["detail"], fields["boot_count"]))

    class TwiceRestarted:
        identity = types.SimpleNamespace(serial="SIM-1")

        def status(self):
            return {"state": spec.STATE_FAULT, "alarm": spec.ALARM_RESET, "boot_count": 9, "unacked": 0, "done": 0,
                    "depth_um": 0, "syringe_left_nl": 0, "time_ms": 40}

        def hello(self):
            self.identity = types.SimpleNamespace(serial="SIM-1", boot_count=9, reset_cause="POWER_ON",
                                                  journal_epoch=5)
            return self.identity

        def next_event(self, timeout):
            return None

    runner = SessionRunner(TwiceRestarted(), Store())
    runner.session_id, runner.start_boot, runner.boot = 3, 7, 7
    runner._poll()
    assert stored == [(spec.RESET_POWER_ON, 9), (boots.CAUSE_UNKNOWN, 8)]
    assert runner.progress.alarms == [(spec.ALARM_RESET, boots.CAUSE_UNKNOWN), (spec.ALARM_RESET, spec.RESET_POWER_ON)]
    assert "cause unknown" in alarms.explain(*runner.progress.alarms[0])
    # the counter wraps: the boot after the last one is 0, and an earlier boot is never taken for a later one
    last = spec.BOOT_COUNT_MOD - 1
    assert boots.skipped(last, 0) is None and boots.skipped(last, 1) == 0 and boots.skipped(9, 8) is None
    assert boots.ahead(last, 0) and not boots.ahead(9, 8) and not boots.ahead(9, 9)
