# The host's display names for spec.py's codes (states, techniques, kinds, ends, NACKs, alarms, resets, line test
# outcomes), indexed by code. Apart from spec.py so the firmware never loads them: every string a device module
# holds is interned on its heap, and the 64-bit port's boot sat one name short of a new 9 KB pool of them (issue
# #20's line test added names past it). spec.py re-exports them on CPython; MicroPython test scripts import this.

STATE_NAMES = (
    "IDLE",
    "CONFIGURED",
    "PRIMING",
    "PRIMED",
    "ARMED",
    "DELIVERING",
    "PAUSED",
    "COMPLETE",
    "FAULT",
)
TECHNIQUE_NAMES = ("", "point-by-point", "nappage", "test-dose")
KIND_NAMES = ("", "point", "shot", "test-dose", "prime", "alarm", "end")
END_NAMES = ("", "complete", "aborted")
NACK_NAMES = (
    "",
    "UNKNOWN_TYPE",
    "BAD_LENGTH",
    "BAD_VERSION",
    "BAD_STATE",
    "LIMIT",
    "BAD_VALUE",
    "INFEASIBLE",
    "HELLO_FIRST",
    "JOURNAL_FULL",
    "AUTH",
    "NOT_PAIRING",
    "SYRINGE",
    "OTHER_HOST",
    "NO_SESSION",
    "HEAD",
    "CHANNEL",
)
ALARM_NAMES = (
    "",
    "LINK_LOST",
    "TRIGGER_STUCK",
    "OCCLUSION",
    "SYRINGE_EMPTY",
    "ESTOP",
    "RESET",
    "JOURNAL_FULL",
    "SYRINGE",
    "HEAD",
    "NEEDLE_BLOCKED",
)
RESET_NAMES = ("POWER_ON", "SOFT", "WATCHDOG")
LINE_NAMES = ("OK", "OPEN", "LEAK", "STOPPED")
