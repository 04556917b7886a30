"""Dose programs: TOML files with units, validated before anything is sent.

Every quantity is converted once, here, to the integer wire units of the
protocol (nL, um, mHz, nL/s). Errors name the field, the value and the limit.

A quantity is read by a strict grammar, a decimal number then a unit name
(QUANTITY below); pint only looks up the unit. pint's own parser evaluates
expressions ("9**9**9 uL" holds the GIL for minutes), so text never reaches it
whole: every program is accepted or refused in bounded time.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

import pint

from mesoprotocol import rules, spec

from . import units

ureg: pint.UnitRegistry = pint.UnitRegistry()

TECHNIQUES = {"point-by-point": spec.TECHNIQUE_POINT, "nappage": spec.TECHNIQUE_NAPPAGE,
              "test-dose": spec.TECHNIQUE_TEST_DOSE}
COMMON = {"name", "technique", "drug", "syringe", "depth"}  # and a head or (a single) needle
REQUIRED = {
    "point-by-point": COMMON | {"volume_per_point", "points"},
    "test-dose": COMMON | {"volume_per_point", "points"},
    "nappage": COMMON | {"volume_per_shot", "shots", "cadence"},
}
OPTIONAL = {"description", "prime_volume", "flow_rate", "head", "needle", "dose", "vacuum", "channel"}
DEFAULT_VACUUM = "40 kPa"  # a multi-needle head's vacuum unless the program says (single needles: a contact switch)
DOSES = ("per-needle", "per-cycle")  # what volume_per_point means on a multi-needle head
# limits in IDENTITY's shape: a new device's defaults, and the hard ceilings no
# device setting can exceed (checked before any port is opened)
DEFAULT_LIMITS = {row[0]: row[2] for row in spec.SETTINGS_TABLE}
CEILINGS = {row[0]: row[4] for row in spec.SETTINGS_TABLE}
# CONFIGURE's program fields in layout order, up to the session tag (the authentication fields follow)
CONFIGURE_FIELDS = tuple(name for name, _ in spec.MESSAGES[spec.CONFIGURE][1])[:rules.F_SESSION_CAP]
EXAMPLES = pathlib.Path(__file__).parent / "programs"  # the example library, shipped in the package
DEFAULT_PRIME = "10 uL"
DEFAULT_FLOW = "50 uL/s"
# a decimal number (ASCII digits only), then unit names: letters, separated by spaces or one '/'
QUANTITY = re.compile(r"\s*(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
                      r"\s*(?P<unit>[A-Za-z\u00b5\u03bc]+(?:\s*/\s*[A-Za-z\u00b5\u03bc]+|\s+[A-Za-z\u00b5\u03bc]+)*)?\s*",
                      re.ASCII)
MAX_QUANTITY_CHARS = 64  # "0.03 mL", "3 parsecs per fortnight": far more than any real value needs
MAX_NUMBER = 1e12  # above every limit in any unit a program uses; keeps conversions finite
MAX_COUNT = 10**9  # points, shots, needles: far above any limit, small enough to stay exact in a float
MAX_FILE_BYTES = 64 * 1024  # a program is a few hundred bytes


class ProgramError(ValueError):
    """A program that must not be sent; the message names field, value and limit."""

    def __init__(self, field: str, message: str, source: str = ""):
        self.field = field
        self.detail = message  # without the field and source
        super().__init__(f"{source + ': ' if source else ''}{field}: {message}")


@dataclasses.dataclass(frozen=True)
class Program:
    name: str
    technique: str
    drug: str
    syringe: int  # spec.SYRINGES code
    depth_um: int
    volume_nl: int  # per point (per cycle: all the head's needles together), or per shot in nappage
    count: int  # points, or shots in nappage
    cadence_mhz: int
    flow_nl_s: int
    prime_nl: int
    head: int = 1  # spec.HEADS code: needles, gauge, length and dead volume come from the table
    vacuum_kpa: int = 0  # below ambient, holding the skin on a multi-needle head's needles (0: contact switch)
    description: str = ""
    channel: int = 1  # the syringe channel holding this program's drug (two-drug guns: 1 or 2)

    @property
    def head_name(self) -> str:
        return spec.HEADS[self.head][0]

    @property
    def needles(self) -> int:
        return spec.HEADS[self.head][1]

    @property
    def needle_gauge(self) -> int:
        return spec.HEADS[self.head][2]

    @property
    def needle_length_um(self) -> int:
        return spec.HEADS[self.head][3]

    @property
    def dead_volume_nl(self) -> int:
        return spec.HEADS[self.head][4]

    @property
    def per_needle_nl(self) -> int:
        return rules.per_needle_nl(self.volume_nl, self.head)

    @property
    def syringe_name(self) -> str:
        return spec.SYRINGES[self.syringe][0]

    @property
    def total_nl(self) -> int:
        return self.volume_nl * self.count

    @property
    def unit_name(self) -> str:
        return "shots" if self.technique == "nappage" else "points"

    def configure_fields(self) -> dict:
        """The CONFIGURE message for this program."""
        return dict(technique=TECHNIQUES[self.technique], syringe=self.syringe, head=self.head, vacuum_kpa=self.vacuum_kpa,
                    needle_length_um=self.needle_length_um, depth_um=self.depth_um, volume_nl=self.volume_nl,
                    count=self.count, cadence_mhz=self.cadence_mhz, flow_nl_s=self.flow_nl_s, channel=self.channel)

    def summary(self) -> str:
        line = (f"{self.name}: {self.technique}, {self.count} {self.unit_name} x "
                f"{units.text(self.volume_nl, units.VOLUME)} at {units.text(self.depth_um, units.LENGTH)}, "
                f"{self.drug}, {self.syringe_name}, head {self.head_name}")
        if self.needles > 1:
            line += f" ({units.text(self.per_needle_nl, units.VOLUME)} per needle)"
        if self.cadence_mhz:
            line += f", {units.text(self.cadence_mhz, units.CADENCE)}"
        return line

    def check_limits(self, limits: dict, cal_ppm: int = 1000000, session_cap_nl: int = 0) -> None:
        """The device's own rules (mesoprotocol.rules) against its limits (IDENTITY's), before sending:
        host and device accept exactly the same programs. A refusal reads in the program's words and
        units, and a cadence the flow cannot meet comes with the flow that would.
        session_cap_nl: the cap of the session it opens (a plan's total; 0: none)."""
        settings = tuple(limits[row[0]] for row in spec.SETTINGS_TABLE)
        pl_step = spec.pl_per_step(self.syringe, spec.PLUNGER_STEPS_PER_MM, cal_ppm)
        error = rules.check_configure(self.configure_tuple(session_cap_nl=session_cap_nl), rules.shot_time_ms, settings,
                                      lambda _syringe: rules.least_dose_nl(pl_step))
        if error:
            reason, field, value, limit = error
            raise self.refusal(reason, field, value, limit, limits, session_cap_nl)
        error = rules.check_prime(self.prime_nl)
        if error:
            raise ProgramError("prime_volume", _bound_words(error[2], error[3], units.VOLUME))
        if self.prime_nl < self.dead_volume_nl:
            raise ProgramError("prime_volume", f"{units.text(self.prime_nl, units.VOLUME)} does not fill the "
                               f"{self.head_name} head's dead volume of {units.text(self.dead_volume_nl, units.VOLUME)}; "
                               "prime at least that")

    def configure_tuple(self, session: int = 1, session_cap_nl: int = 0) -> tuple:
        """CONFIGURE's values in its layout order (rules.check_configure's cfg)."""
        fields = {**self.configure_fields(), "session": session, "session_cap_nl": session_cap_nl}
        return tuple(fields[name] for name in CONFIGURE_FIELDS)

    def refusal(self, reason: int, field: int, value: int, limit: int, limits: dict | None = None,
                session_cap_nl: int = 0) -> ProgramError:
        """A rule's refusal of this program (rules.check_configure's, or the device's NACK on CONFIGURE)
        as a ProgramError naming the program's field, in its units. session_cap_nl: the session's cap sent."""
        nappage = self.technique == "nappage"
        volume_field = "volume_per_shot" if nappage else "volume_per_point"
        if field == rules.F_VOLUME and self.needles > 1:
            return ProgramError(volume_field, f"{units.text(value, units.VOLUME)} a cycle over {self.needles} needles is "
                                f"{'above' if value > limit else 'below'} the {units.text(limit, units.VOLUME)} a cycle "
                                f"may have ({units.text(limit // self.needles, units.VOLUME)} per needle)")
        if field == rules.F_VOLUME:
            if value < limit and limit > spec.MIN_VOLUME_NL:
                return ProgramError(volume_field, f"{units.text(value, units.VOLUME)} is below the least the "
                                    f"{self.syringe_name} meters to 1 %: {units.text(limit, units.VOLUME)} (100 "
                                    "plunger steps); use a smaller syringe or a larger dose")
            words = _bound_words(value, limit, units.VOLUME)
            if (self.technique == "point-by-point" and value > limit and limits is not None
                    and limit == limits["max_point_nl"] and value <= spec.CEIL_POINT_NL):
                words += (f" (the device's max_point_nl setting; some pain protocols give up to "
                          f"{units.text(spec.CEIL_POINT_NL, units.VOLUME)} a point: an engineer may raise it that far)")
            return ProgramError(volume_field, words)
        if field == rules.F_DEPTH:
            if value < limit:
                return ProgramError("depth", _bound_words(value, limit, units.LENGTH))
            hard = limits is not None and limit == limits["max_depth_um"]
            why = ("the device's hard limit" if hard else
                   f"needle length {units.text(self.needle_length_um, units.LENGTH)} minus {spec.NEEDLE_MARGIN_UM} um")
            return ProgramError("depth", f"{units.text(value, units.LENGTH)} is deeper than "
                                f"{units.text(limit, units.LENGTH)} ({why})")
        if field == rules.F_COUNT:
            capacity = spec.syringe_capacity_nl(self.syringe)
            if value > limit and self.total_nl > capacity:
                return ProgramError(self.unit_name, f"{self.count} x {units.text(self.volume_nl, units.VOLUME)} needs "
                                    f"more than the {self.syringe_name} syringe holds "
                                    f"({units.text(capacity, units.VOLUME)}): at most {limit} {self.unit_name}")
            setting = limits["max_session_nl"] if limits is not None else spec.MAX_SESSION_NL
            if value > limit and 0 < session_cap_nl <= setting:  # the session's cap, not the setting, is what bounds
                return ProgramError(self.unit_name, f"{self.count} x {units.text(self.volume_nl, units.VOLUME)} is "
                                    f"above what is left of the plan's total of {units.text(session_cap_nl, units.VOLUME)} "
                                    f"(the session's cap): at most {limit} {self.unit_name}; raise the plan's total "
                                    "or lower this step")
            if value > limit and limits is not None and self.total_nl > limits["max_session_nl"]:
                return ProgramError(self.unit_name, f"{self.count} x {units.text(self.volume_nl, units.VOLUME)} is "
                                    f"above the session limit of {units.text(limits['max_session_nl'], units.VOLUME)}: "
                                    f"at most {limit} {self.unit_name}")
            return ProgramError(self.unit_name, _bound_words(value, limit, ("", 1)))
        if field == rules.F_SESSION_CAP:
            return ProgramError("total", f"the device refused a session cap of {units.text(value, units.VOLUME)}: the "
                                f"session's cap in force is {units.text(limit, units.VOLUME)}, and a session's cap is "
                                "never raised (PROTOCOL.md \"Sessions\"); start a new session")
        if field == rules.F_CADENCE and reason == spec.NACK_INFEASIBLE:
            return ProgramError("cadence", self._infeasible_cadence(limit, limits))
        if field == rules.F_HEAD and reason == spec.NACK_INFEASIBLE:
            return ProgramError("technique", f"nappage needs a single needle; the {self.head_name} head works "
                                "cycle by cycle (point-by-point)")
        named = {rules.F_CADENCE: ("cadence", units.CADENCE), rules.F_FLOW: ("flow_rate", units.FLOW),
                 rules.F_NEEDLE_LENGTH: ("head", units.LENGTH), rules.F_VACUUM: ("vacuum", ("kPa", 1))}
        if field in named:
            name, quantity = named[field]
            return ProgramError(name, _bound_words(value, limit, quantity))
        if field == rules.F_CHANNEL:
            return ProgramError("channel", f"{value} is not a syringe channel of this device: it has {limit} "
                                f"(write channel = 1{' or 2' if limit > 1 else ''})")
        return ProgramError("program", f"refused: {spec.NACK_NAMES[reason]} on CONFIGURE field {field} ({value})")

    def _infeasible_cadence(self, feasible_mhz: int, limits: dict | None) -> str:
        asked, most = units.text(self.cadence_mhz, units.CADENCE), units.text(feasible_mhz, units.CADENCE)
        words = (f"{asked} is more than {units.text(self.volume_nl, units.VOLUME)} shots at "
                 f"{units.text(self.depth_um, units.LENGTH)} allow at a flow of {units.text(self.flow_nl_s, units.FLOW)} "
                 f"(at most {most}: a shot must fit in 80 % of its period)")
        flow = rules.least_flow_nl_s(self.configure_tuple())
        max_flow = limits["max_flow_nl_s"] if limits else CEILINGS["max_flow_nl_s"]
        if 0 < flow <= max_flow:
            shown = -(-flow // 100) * 100  # up to 0.1 uL/s, so the shown flow is enough
            return words + f"; flow_rate = \"{units.text(shown, units.FLOW)}\" makes {asked} possible"
        return words + "; no flow this device allows makes it possible: lower the cadence, the dose or the depth"


def _bound_words(value: int, limit: int, quantity: tuple[str, int]) -> str:
    relation = "above the limit" if value > limit else "below the minimum"
    return f"{units.text(value, quantity)} is {relation} of {units.text(limit, quantity)}".replace("  ", " ").strip()


def example_names() -> str:
    """The shipped examples `run` takes by name: programs, then plans (EXAMPLES/plans)."""
    names = [p.stem for p in sorted(EXAMPLES.glob("*.toml"))]
    plans = [p.stem for p in sorted((EXAMPLES / "plans").glob("*.toml"))]
    return ", ".join(names) + "; plans: " + ", ".join(plans)


def find(name: str | pathlib.Path) -> pathlib.Path:
    """A program file by path, or an example's by name (`nappage` is EXAMPLES/nappage.toml)."""
    path = pathlib.Path(name)
    example = EXAMPLES / f"{path.name}.toml"
    return example if not path.exists() and path.suffix == "" and example.exists() else path


def load(path: str | pathlib.Path) -> Program:
    path = find(path)
    data = read(path)
    try:
        return parse(data)
    except ProgramError as e:
        raise ProgramError(e.field, str(e).split(": ", 1)[1], str(path)) from None


def read(path: pathlib.Path) -> dict:
    """A program file's TOML as a dict, or ProgramError("file") saying what is wrong with the file."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        if path.suffix == "" and path.parent == pathlib.Path("."):  # a name: perhaps a mistyped example's
            raise ProgramError("file", f"{path} does not exist as a file nor as a shipped example; give the path of "
                                       f"a program (.toml) file or an example's name: {example_names()}") from None
        raise ProgramError("file", f"{path} does not exist; give the path of a program (.toml) file") from None
    except IsADirectoryError:
        raise ProgramError("file", f"{path} is a directory; give one program (.toml) file in it") from None
    except OSError as e:
        raise ProgramError("file", f"{path} cannot be read ({e.strerror or e}); check its permissions") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ProgramError("file", f"{path} is larger than {MAX_FILE_BYTES // 1024} KiB; a program is a few "
                           "hundred bytes: is this the right file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProgramError("file", f"{path} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                           "save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProgramError("file", f"{path} is not valid TOML: {e}; correct it there (each setting is name = "
                                   "value, a text in \"quotes\"; a plan's steps each under [[steps]])") from None
    except ValueError as e:  # e.g. an integer of thousands of digits
        raise ProgramError("file", f"{path} is not a program: {e}") from None
    except RecursionError:
        raise ProgramError("file", f"{path} nests arrays or tables too deeply; a program is flat keys and one "
                           "needle = { gauge = ..., length = ... } table") from None


def parse(data: dict) -> Program:
    technique = _text(data, "technique")
    if technique not in TECHNIQUES:
        raise ProgramError("technique", f"{technique!r} is not one of {', '.join(TECHNIQUES)}")
    allowed = REQUIRED[technique] | OPTIONAL
    missing = sorted(REQUIRED[technique] - data.keys())
    if missing:
        raise ProgramError(missing[0], f"missing (a {technique} program needs {', '.join(sorted(REQUIRED[technique]))})")
    extra = sorted(data.keys() - allowed)
    if extra:
        hint = " (nappage programs use volume_per_shot and shots)" if technique == "nappage" else ""
        raise ProgramError(extra[0], f"not a key of a {technique} program{hint}; allowed: {', '.join(sorted(allowed))}")
    nappage = technique == "nappage"
    head = _head(data)
    volume_key = "volume_per_shot" if nappage else "volume_per_point"
    volume_nl = _quantity(data, volume_key, "nL", "30 uL")
    dose = data.get("dose", "per-needle")
    if dose not in DOSES:
        raise ProgramError("dose", f"{shown(dose)} is not one of {', '.join(DOSES)} (what {volume_key} means on a "
                           "multi-needle head)")
    if dose == "per-needle":
        volume_nl *= spec.HEADS[head][1]  # the plunger meters the cycle: every needle's dose together
    multi = spec.HEADS[head][1] > 1
    if "vacuum" in data and not multi:
        raise ProgramError("vacuum", f"the {spec.HEADS[head][0]} head has a contact switch, not a vacuum: leave vacuum out")
    vacuum_kpa = _quantity({"vacuum": data.get("vacuum", DEFAULT_VACUUM)}, "vacuum", "kPa", DEFAULT_VACUUM) if multi else 0
    return Program(
        name=_text(data, "name"),
        technique=technique,
        drug=_text(data, "drug"),
        syringe=syringe_code(_text(data, "syringe")),
        head=head,
        vacuum_kpa=vacuum_kpa,
        depth_um=_quantity(data, "depth", "um", "3 mm"),
        volume_nl=volume_nl,
        count=_count(data, "shots" if nappage else "points"),
        cadence_mhz=_quantity(data, "cadence", "mHz", "6 Hz") if nappage else 0,
        flow_nl_s=_quantity({"flow_rate": data.get("flow_rate", DEFAULT_FLOW)}, "flow_rate", "nL/s", "50 uL/s"),
        prime_nl=_quantity({"prime_volume": data.get("prime_volume", DEFAULT_PRIME)}, "prime_volume", "nL", "10 uL"),
        description=_description(data),
        channel=_channel(data),
    )


def _channel(data: dict) -> int:
    value = data.get("channel", 1)
    if isinstance(value, bool) or value not in range(1, spec.CHANNELS + 1):
        raise ProgramError("channel", f"must be the syringe channel holding the drug, 1 or {spec.CHANNELS}; "
                           f"got {shown(value)}")
    return value


def _text(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ProgramError(key, f"must be a non-empty string, got {shown(value)}")
    return value.strip()


def _description(data: dict) -> str:
    value = data.get("description", "")
    if not isinstance(value, str):
        raise ProgramError("description", f"must be a string, got {shown(value)}")
    return value


def _count(data: dict, key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProgramError(key, f"must be a whole number of at least 1, got {shown(value)}")
    if value > MAX_COUNT:
        raise ProgramError(key, f"{shown(value)} is far above any limit; give the number you mean")
    return value


def shown(value) -> str:
    """A value for an error message: never a whole nested structure or a page of digits."""
    if isinstance(value, (dict, list)):
        return "a table" if isinstance(value, dict) else "an array"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_COUNT:
        return f"a {len(str(abs(value)))}-digit number"
    text = repr(value)
    return text if len(text) <= MAX_QUANTITY_CHARS else text[:MAX_QUANTITY_CHARS] + "...'"


def quantity_of(text, field: str, unit: str, example: str, *, integer: bool = True):
    """Parse a quantity given on a command line (same rules as in a program)."""
    return _quantity({field: text}, field, unit, example, integer=integer)


def _quantity(data: dict, key: str, unit: str, example: str, *, integer: bool = True):
    """Parse '30 uL' into an integer count of `unit`; reject bare numbers, expressions and wrong dimensions."""
    text = data[key]
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        raise ProgramError(key, f"{shown(text)} has no unit; write it with one, e.g. {example!r}")
    if not isinstance(text, str):
        raise ProgramError(key, f"must be a quantity written as a string, e.g. {example!r}; got {shown(text)}")
    if len(text) > MAX_QUANTITY_CHARS:
        raise ProgramError(key, f"{shown(text)} is not a quantity: write a number and a unit, e.g. {example!r}")
    match = QUANTITY.fullmatch(text)
    if match is None:
        raise ProgramError(key, f"{text!r} is not a quantity with a unit: write a decimal number and a unit "
                           f"name (no arithmetic), e.g. {example!r}")
    if match["unit"] is None:
        raise ProgramError(key, f"{text!r} has no unit; write it with one, e.g. {example!r}")
    number = float(match["number"])
    if not math.isfinite(number) or abs(number) > MAX_NUMBER:
        raise ProgramError(key, f"{text!r} is out of range (a number up to {MAX_NUMBER:g}); e.g. {example!r}")
    try:
        units = ureg.parse_units(match["unit"])  # letters, spaces and '/' only: nothing to evaluate
    except (pint.errors.PintError, ValueError, AttributeError, KeyError, TypeError):
        raise ProgramError(key, f"{text!r}: {match['unit']!r} is not a unit; e.g. {example!r}") from None
    if units.dimensionless:
        raise ProgramError(key, f"{text!r} has no unit; write it with one, e.g. {example!r}")
    try:
        value = ureg.Quantity(number, units).to(unit).magnitude
    except pint.errors.DimensionalityError:
        raise ProgramError(key, f"{text!r} is not {_kind(unit)} (expected something like {example!r})") from None
    if value < 0:
        raise ProgramError(key, f"{text!r} is negative")
    return int(round(value)) if integer else float(value)


def _kind(unit: str) -> str:
    return {"nL": "a volume", "um": "a length", "mHz": "a frequency", "nL/s": "a flow rate",
            "g/mL": "a density", "kPa": "a pressure"}[unit]


def syringe_code(name: str) -> int:
    wanted = " ".join(name.lower().split())
    for code, (known, *_) in spec.SYRINGES.items():
        if known.lower() == wanted:
            return code
    names = ", ".join(repr(s[0]) for s in spec.SYRINGES.values())
    raise ProgramError("syringe", f"{name!r} is not in the syringe table; known: {names}")


def head_code(name: str) -> int:
    wanted = " ".join(name.lower().split())
    for code, (known, *_) in spec.HEADS.items():
        if known.lower() == wanted:
            return code
    names = ", ".join(repr(h[0]) for h in spec.HEADS.values())
    raise ProgramError("head", f"{name!r} is not in the head table; known: {names}")


def _head(data: dict) -> int:
    """The head a program names (head = "5-needle 30G 4 mm"), or the single-needle head its needle is."""
    if ("head" in data) == ("needle" in data):
        raise ProgramError("head", "give the needle head (head = \"30G 4 mm\", \"5-needle 30G 4 mm\" ...) or, "
                           "for a single needle, needle = { gauge = 30, length = \"4 mm\" }: one of the two")
    if "head" in data:
        return head_code(_text(data, "head"))
    gauge, length_um = _needle(data["needle"])
    for code, (_, needles, g, length, *_) in spec.HEADS.items():
        if (needles, g, length) == (1, gauge, length_um):
            return code
    singles = ", ".join(repr(h[0]) for h in spec.HEADS.values() if h[1] == 1)
    raise ProgramError("needle", f"no head holds a single {gauge}G {units.text(length_um, units.LENGTH)} needle; "
                       f"the single-needle heads are {singles}")


def _needle(value) -> tuple[int, int]:
    if not isinstance(value, dict) or set(value) != {"gauge", "length"}:
        raise ProgramError("needle", f"must be a table like {{ gauge = 30, length = \"4 mm\" }}, got {shown(value)}")
    gauge = value["gauge"]
    if isinstance(gauge, bool) or not isinstance(gauge, int) or not 25 <= gauge <= 34:
        raise ProgramError("needle", f"gauge {shown(gauge)} is not a mesotherapy needle gauge (25-34 G)")
    return gauge, _quantity({"needle.length": value["length"]}, "needle.length", "um", "4 mm")
