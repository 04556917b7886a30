"""Every alarm the protocol defines has words on the host: its name, what happened, what to do, an exit code."""

from __future__ import annotations

import pytest

from mesoinject import alarms
from mesoprotocol import spec

CODES = [code for code, name in enumerate(spec.ALARM_NAMES) if name]  # 0 is "no alarm"


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


def test_each_alarm_has_its_own_exit_code_and_none_is_bad_input():
    codes = [alarms.exit_code(code) for code in CODES]
    assert len(set(codes)) == len(codes) and min(codes) >= 3  # 0 done, 1 not completed, 2 bad input
    assert alarms.exit_code(spec.ALARM_JOURNAL_FULL) == 9


def test_journal_full_says_sync_frees_it():
    _, what, todo = alarms.describe(spec.ALARM_JOURNAL_FULL, 0)
    assert "not give" in what and "mesoinject sync --port PORT" in todo and "mesoinject abort" in todo


def test_an_alarm_newer_than_this_host_says_to_update_it():
    code = len(spec.ALARM_NAMES)
    name, what, todo = alarms.describe(code, 0)
    assert name == f"alarm {code}" and f"alarm {code}, which this version" in what and "update mesoinject" in todo
    assert alarms.exit_code(code) == 1
