"""What each device alarm means for the person at the couch, and the CLI exit code for it."""

from __future__ import annotations

from mesoprotocol import spec

# code -> (what happened, what to do next, exit code)
ALARMS = {
    spec.ALARM_LINK_LOST: ("the device heard nothing from this computer for {detail} ms while armed; it stopped "
                           "the plunger and retracted the needle",
                           "check the cable or USB port; if it is sound, this computer may have been too busy to "
                           "answer in time (close heavy programs). Then run again (a new handshake re-opens the "
                           "device)", 3),
    spec.ALARM_OCCLUSION: ("line pressure reached {detail} kPa: the needle or line is blocked; the plunger stopped "
                           "and backed off to relieve the pressure",
                           "withdraw, replace the needle, prime again and re-run the remaining points", 4),
    spec.ALARM_SYRINGE_EMPTY: ("the syringe reached its end (about {detail} nL were still expected); delivery stopped "
                               "before the stopper bottomed out",
                               "load a new syringe, then run again: the device asks for priming", 5),
    spec.ALARM_TRIGGER_STUCK: ("the trigger was held {detail} ms, far longer than a point needs",
                               "release the trigger and check it moves freely, then clear the fault with `mesoinject abort`", 6),
    spec.ALARM_ESTOP: ("the emergency stop was pressed",
                       "make the situation safe, release the emergency stop, then clear the fault with `mesoinject abort`",
                       7),
    spec.ALARM_SYRINGE: ("the syringe clamp no longer measures the program's syringe (it reads {detail} um across: "
                         "the syringe was changed or taken out, or the sensor failed); the plunger stopped and "
                         "the needle retracted",
                         "seat the program's syringe in the clamp, clear the fault with `mesoinject abort`, then run "
                         "again: it asks for priming; if it persists the clamp sensor is faulty", 10),
    spec.ALARM_HEAD: ("the needle head no longer reads as the program's head (its ID reads {detail} mV: the head "
                      "was changed or came off, or its contact failed); the plunger stopped and the needle retracted",
                      "fit the program's head and press it home, clear the fault with `mesoinject abort`, then run "
                      "again: it asks for priming (the head's dead volume); if it persists the head is faulty", 11),
    spec.ALARM_NEEDLE_BLOCKED: ("a needle of the head is blocked: the line pressure of the last point (mean {detail} "
                                "kPa) rose past the head's first point, so the other needles took its share; the "
                                "program stopped",
                                "check the last papules, replace the head, prime it and re-run the remaining points; "
                                "the record shows the points given", 12),
    spec.ALARM_RESET: ("the device restarted ({cause}); it came up with motors off and the needle retracted",
                       "check the recorded deliveries of the interrupted session before continuing", 8),
    spec.ALARM_JOURNAL_FULL: ("the device's journal had no room to record the next point, so it did not give it; "
                              "the journal holds every record until this computer has stored it",
                              "store the device's records to free the journal (`mesoinject sync --port PORT`; "
                              "if that fails, the records database is the problem), then clear the fault with "
                              "`mesoinject abort` and give the remaining points", 9),
}
EXIT_LINK = 3
UNKNOWN = ("the device raised alarm {code}, which this version of mesoinject does not know; the device has "
           "stopped", "update mesoinject to the version that matches the device's firmware (`mesoinject info` "
           "shows it), then clear the fault with `mesoinject abort`", 1)
# the console has buttons and stores records by itself where the CLI has commands
CONSOLE_WORDS = {
    "`mesoinject sync --port PORT`; if that fails, the records database is the problem":
        "the console does this by itself whenever its records database answers: check the database",
    "with `mesoinject abort`": "with the Clear fault button",
    " (`mesoinject info` shows it)": "",
}


# an alarm known from STATUS alone (no detail): its words without a figure, never a made-up 0
WITHOUT_DETAIL = {
    "for {detail} ms while armed": "for longer than its link timeout while armed",
    "line pressure reached {detail} kPa": f"line pressure reached the occlusion limit ({spec.OCCLUSION_KPA} kPa)",
    " (about {detail} nL were still expected)": "",
    "was held {detail} ms, far longer": "was held far longer",
    " (it reads {detail} um across: ": " (",
}


# why the device restarted (a RESET alarm's detail is the cause's index in spec.RESET_NAMES)
RESET_CAUSES = {
    "POWER_ON": "POWER_ON: it was switched on, or its supply dropped out (a power cut or brown-out reads the same)",
    "SOFT": "SOFT: it was restarted on purpose (a firmware update or a restart command)",
    "WATCHDOG": "WATCHDOG: its firmware stopped running and the watchdog restarted it",
}


def reset_cause_words(cause: str, detail: int | None) -> str:
    """The restart's cause in words: its name if given, else the RESET alarm's detail (the cause's index)."""
    if not cause and detail is not None and 0 <= detail < len(spec.RESET_NAMES):
        cause = spec.RESET_NAMES[detail]
    return RESET_CAUSES.get(cause, cause or "cause unknown")


def describe(code: int, detail: int | None, reset_cause: str = "", *,
             console: bool = False) -> tuple[str, str, str]:
    """(name, what happened, what to do next) of a device alarm; console: in the console's words;
    detail None: not known (STATUS names the alarm only)."""
    what, todo, _ = ALARMS.get(code, UNKNOWN)
    if detail is None:
        for words, instead in WITHOUT_DETAIL.items():
            what = what.replace(words, instead)
    name = spec.ALARM_NAMES[code] if 0 < code < len(spec.ALARM_NAMES) else f"alarm {code}"
    if console:
        for words, instead in CONSOLE_WORDS.items():
            todo = todo.replace(words, instead)
    return name, what.format(detail=detail, cause=reset_cause_words(reset_cause, detail), code=code), todo


def explain(code: int, detail: int, reset_cause: str = "") -> str:
    name, what, todo = describe(code, detail, reset_cause)
    return f"ALARM {name}: {what}. Next: {todo}."


def exit_code(code: int) -> int:
    return ALARMS.get(code, UNKNOWN)[2]
