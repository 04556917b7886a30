"""How a session ended, in the words the console, the CLI, the stored record and the report all use.

The stored `outcome` stays a code (complete | aborted | fault | interrupted | synced) that FHIR and
queries read; these words say the rest: partial points, the alarm's name, what was delivered.
"""

from __future__ import annotations

from mesoprotocol import spec

ROUTINE_RESETS = ("POWER_ON", "SOFT")  # switched on, or restarted on purpose: no session was cut short by it


def alarm_name(code: str | int | None) -> str | None:
    """LINK_LOST -> LINK LOST: the name as a person reads it."""
    if code is None:
        return None
    if isinstance(code, int):
        code = spec.ALARM_NAMES[code] if 0 < code < len(spec.ALARM_NAMES) else f"alarm {code}"
    return code.replace("_", " ")


def named(code: int, detail: int) -> str | None:
    """An alarm of a run as its outcome names it: a RESET with its cause, `RESET (WATCHDOG)` - the device restarted
    during the run (the routine power-on RESET a session acknowledges at its start is never a run's alarm)."""
    name = alarm_name(code)
    if code == spec.ALARM_RESET and 0 <= detail < len(spec.RESET_NAMES):
        return f"{name} ({alarm_name(spec.RESET_NAMES[detail])})"
    return name


def plural(n: int, unit: str) -> str:
    """unit is plural ("points", "shots"): 1 point, 2 points."""
    return f"{n} {unit[:-1] if n == 1 and unit.endswith('s') else unit}"


def words(outcome: str | None, *, partial: int = 0, alarm: str | None = None, unit: str = "points") -> str:
    """complete / complete with N partial points / stopped on <ALARM> / aborted / interrupted."""
    if outcome is None:
        return "running"
    if outcome == "complete":
        return f"complete with {plural(partial, 'partial ' + unit)}" if partial else "complete"
    if outcome == "fault":
        return f"stopped on {alarm_name(alarm)}" if alarm else "stopped on an alarm"
    if outcome == "interrupted" and alarm:
        return f"interrupted: {alarm_name(alarm)}"
    return outcome  # aborted, interrupted, synced


def delivered(done: int, planned: int, unit: str, delivered_nl: int, partial: int) -> str:
    """What reached the patient, in one line: '2 of 6 points, 71.4 µL (1 partial)'."""
    return (f"{done} of {plural(planned, unit)}, {delivered_nl / 1000:.1f} µL"
            + (f" ({partial} partial)" if partial else ""))


def stopping_alarm(alarms: list[dict], start_boot: int | None = None) -> str | None:
    """The alarm that ended a session, from its stored alarms: the last one that is not the RESET the session
    found at its start (start_boot: the boot it began in, sessions.boot_count). A RESET of a later boot - a
    watchdog, a brown-out or power cut (read as POWER_ON) - cut the session short and is one."""
    names = [a["code"] for a in alarms if not is_start_reset(a, start_boot)]
    return names[-1] if names else None


def is_routine_reset(alarm: dict) -> bool:
    """A stored RESET alarm for a device switched on (detail: the reset cause's index)."""
    return alarm["code"] == "RESET" and 0 <= alarm["detail"] < len(spec.RESET_NAMES) \
        and spec.RESET_NAMES[alarm["detail"]] in ROUTINE_RESETS


def is_start_reset(alarm: dict, start_boot: int | None) -> bool:
    """A stored RESET of the boot its session began in (found and acknowledged at the start: it ended nothing of
    the session). Rows stored before boots were kept (schema v8) say no boot: a routine RESET is taken for it."""
    if alarm["code"] != "RESET":
        return False
    boot = alarm.get("boot_count")
    if boot is None or start_boot is None:
        return is_routine_reset(alarm)
    return boot == start_boot


def is_routine_start(alarm: dict, start_boot: int | None) -> bool:
    """The routine power-on (or on-purpose) RESET a session acknowledged at its start: not one of its alarms."""
    return is_start_reset(alarm, start_boot) and is_routine_reset(alarm)


def of_session(session: dict, given: list[dict], alarms: list[dict]) -> str:
    """The stored words of a session, or worked out again from its records (older records, or an
    outcome the device's journal filled in)."""
    if session.get("outcome_text"):
        return session["outcome_text"]
    unit = "shots" if session.get("technique") == "nappage" else "points"
    return words(session["outcome"], partial=sum(1 for r in given if r["partial"]),
                 alarm=stopping_alarm(alarms, session.get("boot_count")), unit=unit)
