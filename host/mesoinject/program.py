"""Dose programs: TOML files with units (pint), validated before anything is sent.

Every quantity is converted once, here, to the integer wire units of the
protocol (nL, um, mHz, nL/s). Errors name the field, the value and the limit.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

import pint

from mesoprotocol import spec

ureg = pint.UnitRegistry()

TECHNIQUES = {"point-by-point": spec.TECHNIQUE_POINT, "nappage": spec.TECHNIQUE_NAPPAGE,
              "test-dose": spec.TECHNIQUE_TEST_DOSE}
COMMON = {"name", "technique", "drug", "syringe", "needle", "depth"}
REQUIRED = {
    "point-by-point": COMMON | {"volume_per_point", "points"},
    "test-dose": COMMON | {"volume_per_point", "points"},
    "nappage": COMMON | {"volume_per_shot", "shots", "cadence"},
}
OPTIONAL = {"description", "prime_volume", "flow_rate", "needles"}
# limits in IDENTITY's shape: a new device's defaults, and the hard ceilings no
# device setting can exceed (checked before any port is opened)
DEFAULT_LIMITS = {row[0]: row[2] for row in spec.SETTINGS_TABLE}
CEILINGS = {row[0]: row[4] for row in spec.SETTINGS_TABLE}
EXAMPLES = pathlib.Path(__file__).parent / "programs"  # the example library, shipped in the package
DEFAULT_PRIME = "10 uL"
DEFAULT_FLOW = "50 uL/s"


class ProgramError(ValueError):
    """A program that must not be sent; the message names field, value and limit."""

    def __init__(self, field: str, message: str, source: str = ""):
        self.field = field
        super().__init__(f"{source + ': ' if source else ''}{field}: {message}")


@dataclasses.dataclass(frozen=True)
class Program:
    name: str
    technique: str
    drug: str
    syringe: int  # spec.SYRINGES code
    needle_gauge: int
    needle_length_um: int
    depth_um: int
    volume_nl: int  # per point, or per shot in nappage
    count: int  # points, or shots in nappage
    cadence_mhz: int
    flow_nl_s: int
    needles: int
    prime_nl: int
    description: str = ""

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
        return dict(technique=TECHNIQUES[self.technique], syringe=self.syringe, needles=self.needles,
                    needle_length_um=self.needle_length_um, depth_um=self.depth_um, volume_nl=self.volume_nl,
                    count=self.count, cadence_mhz=self.cadence_mhz, flow_nl_s=self.flow_nl_s)

    def summary(self) -> str:
        line = (f"{self.name}: {self.technique}, {self.count} {self.unit_name} x {self.volume_nl / 1000:g} uL "
                f"at {self.depth_um / 1000:g} mm, {self.drug}, {self.syringe_name}, "
                f"needle {self.needle_gauge}G {self.needle_length_um / 1000:g} mm")
        if self.cadence_mhz:
            line += f", {self.cadence_mhz / 1000:g} Hz"
        return line

    def check_limits(self, limits: dict) -> None:
        """Check against a device's limits (from IDENTITY) before sending."""
        volume_field = "volume_per_shot" if self.technique == "nappage" else "volume_per_point"
        ceiling = {"point-by-point": limits["max_point_nl"], "nappage": limits["max_shot_nl"],
                   "test-dose": min(limits["max_point_nl"], spec.MAX_TEST_DOSE_NL)}[self.technique]
        max_depth = min(limits["max_depth_um"], self.needle_length_um - spec.NEEDLE_MARGIN_UM)
        _at_most(volume_field, self.volume_nl, ceiling, "uL", 1000)
        _at_least(volume_field, self.volume_nl, spec.MIN_VOLUME_NL, "uL", 1000)
        if self.depth_um > max_depth:
            why = ("the device's hard limit" if max_depth == limits["max_depth_um"]
                   else f"needle length {self.needle_length_um / 1000:g} mm minus {spec.NEEDLE_MARGIN_UM} um")
            raise ProgramError("depth", f"{self.depth_um / 1000:g} mm is deeper than {max_depth / 1000:g} mm ({why})")
        _at_least("depth", self.depth_um, spec.MIN_DEPTH_UM, "mm", 1000)
        _at_most("flow_rate", self.flow_nl_s, limits["max_flow_nl_s"], "uL/s", 1000)
        _at_least("flow_rate", self.flow_nl_s, spec.MIN_FLOW_NL_S, "uL/s", 1000)
        _at_most(self.unit_name, self.count, spec.MAX_SHOTS if self.technique == "nappage" else spec.MAX_POINTS, "", 1)
        if self.technique == "test-dose":
            _at_most("points", self.count, 1, "", 1)
        if self.technique == "nappage":
            _at_most("cadence", self.cadence_mhz, limits["max_cadence_mhz"], "Hz", 1000)
            _at_least("cadence", self.cadence_mhz, spec.MIN_CADENCE_MHZ, "Hz", 1000)
        capacity = spec.syringe_capacity_nl(self.syringe)
        if self.total_nl + self.prime_nl > capacity:
            raise ProgramError(self.unit_name, f"{self.count} x {self.volume_nl / 1000:g} uL plus "
                               f"{self.prime_nl / 1000:g} uL priming needs more than the {self.syringe_name} "
                               f"syringe holds ({capacity / 1000:g} uL)")
        _at_most("total volume", self.total_nl, limits["max_session_nl"], "uL", 1000)
        _at_most("prime_volume", self.prime_nl, spec.MAX_PRIME_NL, "uL", 1000)
        _at_least("prime_volume", self.prime_nl, spec.MIN_VOLUME_NL, "uL", 1000)
        _at_least("needles", self.needles, 1, "", 1)
        _at_most("needles", self.needles, spec.MAX_NEEDLES, "", 1)


def _at_most(field: str, value: int, limit: int, unit: str, scale: int) -> None:
    if value > limit:
        raise ProgramError(field, f"{value / scale:g} {unit} is above the limit of {limit / scale:g} {unit}".replace("  ", " "))


def _at_least(field: str, value: int, limit: int, unit: str, scale: int) -> None:
    if value < limit:
        raise ProgramError(field, f"{value / scale:g} {unit} is below the minimum of {limit / scale:g} {unit}".replace("  ", " "))


def find(name: str | pathlib.Path) -> pathlib.Path:
    """A program file by path, or an example's by name (`nappage` is EXAMPLES/nappage.toml)."""
    path = pathlib.Path(name)
    example = EXAMPLES / f"{path.name}.toml"
    return example if not path.exists() and path.suffix == "" and example.exists() else path


def load(path: str | pathlib.Path) -> Program:
    path = find(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProgramError("file", f"{path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ProgramError("file", f"{path} is not valid TOML: {e}") from None
    try:
        return parse(data)
    except ProgramError as e:
        raise ProgramError(e.field, str(e).split(": ", 1)[1], str(path)) from None


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
    gauge, needle_um = _needle(data["needle"])
    return Program(
        name=_text(data, "name"),
        technique=technique,
        drug=_text(data, "drug"),
        syringe=syringe_code(_text(data, "syringe")),
        needle_gauge=gauge,
        needle_length_um=needle_um,
        depth_um=_quantity(data, "depth", "um", "3 mm"),
        volume_nl=_quantity(data, "volume_per_shot" if nappage else "volume_per_point", "nL", "30 uL"),
        count=_count(data, "shots" if nappage else "points"),
        cadence_mhz=_quantity(data, "cadence", "mHz", "6 Hz") if nappage else 0,
        flow_nl_s=_quantity({"flow_rate": data.get("flow_rate", DEFAULT_FLOW)}, "flow_rate", "nL/s", "50 uL/s"),
        needles=_count({"needles": data.get("needles", 1)}, "needles"),
        prime_nl=_quantity({"prime_volume": data.get("prime_volume", DEFAULT_PRIME)}, "prime_volume", "nL", "10 uL"),
        description=str(data.get("description", "")),
    )


def _text(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ProgramError(key, f"must be a non-empty string, got {value!r}")
    return value.strip()


def _count(data: dict, key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProgramError(key, f"must be a whole number of at least 1, got {value!r}")
    return value


def quantity_of(text, field: str, unit: str, example: str, *, integer: bool = True):
    """Parse a quantity given on a command line (same rules as in a program)."""
    return _quantity({field: text}, field, unit, example, integer=integer)


def _quantity(data: dict, key: str, unit: str, example: str, *, integer: bool = True):
    """Parse '30 uL' into an integer count of `unit`; reject bare numbers and wrong dimensions."""
    text = data[key]
    if not isinstance(text, str):
        raise ProgramError(key, f"{text!r} has no unit; write it with one, e.g. {example!r}")
    try:
        q = ureg.Quantity(text)
    except (pint.errors.PintError, ValueError, SyntaxError, TypeError, AttributeError) as e:
        raise ProgramError(key, f"{text!r} is not a quantity with a unit ({e}); e.g. {example!r}") from None
    if not isinstance(q, pint.Quantity) or q.unitless:
        raise ProgramError(key, f"{text!r} has no unit; write it with one, e.g. {example!r}")
    try:
        value = q.to(unit).magnitude
    except pint.errors.DimensionalityError:
        raise ProgramError(key, f"{text!r} is not {_kind(unit)} (expected something like {example!r})") from None
    if value < 0:
        raise ProgramError(key, f"{text!r} is negative")
    return int(round(value)) if integer else float(value)


def _kind(unit: str) -> str:
    return {"nL": "a volume", "um": "a length", "mHz": "a frequency", "nL/s": "a flow rate",
            "g/mL": "a density"}[unit]


def syringe_code(name: str) -> int:
    wanted = " ".join(name.lower().split())
    for code, (known, *_) in spec.SYRINGES.items():
        if known.lower() == wanted:
            return code
    names = ", ".join(repr(s[0]) for s in spec.SYRINGES.values())
    raise ProgramError("syringe", f"{name!r} is not in the syringe table; known: {names}")


def _needle(value) -> tuple[int, int]:
    if not isinstance(value, dict) or set(value) != {"gauge", "length"}:
        raise ProgramError("needle", f"must be a table like {{ gauge = 30, length = \"4 mm\" }}, got {value!r}")
    gauge = value["gauge"]
    if isinstance(gauge, bool) or not isinstance(gauge, int) or not 25 <= gauge <= 34:
        raise ProgramError("needle", f"gauge {gauge!r} is not a mesotherapy needle gauge (25-34 G)")
    return gauge, _quantity({"needle.length": value["length"]}, "needle.length", "um", "4 mm")
