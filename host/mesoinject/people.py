"""Who a session is for and who gives it: the rules the CLI and the console share."""

from __future__ import annotations

import re

from .program import ProgramError

PATIENT_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
PATIENT_RULE = ("give the pseudonymous patient reference (letters, digits, '.', '_' or '-', up to 32, no spaces), "
                "e.g. P-0042; never the patient's name")
# logins that are no person: the record must name who treated
SERVICE_LOGINS = ("root", "admin", "administrator", "system", "nobody", "pi")


def patient_ref(value: str, field: str = "patient_ref") -> str:
    """The pseudonymous patient reference, or ProgramError saying what one looks like."""
    value = value.strip()
    if not PATIENT_REF.fullmatch(value):
        raise ProgramError(field, PATIENT_RULE)
    return value


def is_service_login(login: str) -> bool:
    return login.lower() in SERVICE_LOGINS
