"""Treatment plans: a TOML file of steps, each a dose program over one anatomical zone.

A plan names what every step shares (drug, syringe, needle) once; each step names its zone
(mesoinject.zones), technique, dose and count (or a total the dose divides), depth. Each step is
parsed by program.parse, so a step is accepted or refused exactly as a program file would be
(the same quantity grammar, the same firmware rules), and the message names the step.

Two drugs: a step may name its syringe channel (`channel = 2`) and its drug; one channel holds one drug
(a plan giving two drugs from one channel is refused). A step whose channel differs from the step before
it is preceded by a flush prime (Step.flush_nl: FLUSH_VOLUMES dead volumes of the head), which the operator
is asked for and the record keeps (a prime of that channel, filed under the step, and a note); the device
refuses to run it otherwise and never lets one channel's plunger push into the other's drug.

The plan's total (`total`, default the steps' sum) is the session cap the device enforces: the
steps run as one device session (one tag) whose CONFIGUREs carry the plan total as session_cap_nl
(PROTOCOL.md "Sessions"), so the device refuses any step, re-ARM or resume that would pass it,
whatever the host does. The device's own max_session_nl setting is never changed: a host that dies
mid-plan leaves nothing to give back.
"""

from __future__ import annotations

import dataclasses
import pathlib

from . import program as programs
from mesoprotocol import spec

from . import units, zones
from .program import Program, ProgramError

EXAMPLES = programs.EXAMPLES / "plans"  # shipped literature protocols
PLAN_KEYS = {"name", "description", "total", "steps"}
SHARED = {"drug", "syringe", "needle", "head", "dose", "vacuum", "prime_volume", "flow_rate"}  # a step may override them
STEP_KEYS = {"zone", "name", "total"}  # besides a program's own keys


class PlanError(ProgramError):
    """A plan that must not run; the message names the step and field."""


@dataclasses.dataclass(frozen=True)
class Step:
    number: int  # from 1, as a clinician counts
    zone: zones.Zone
    program: Program

    @property
    def total_nl(self) -> int:
        return self.program.total_nl

    def flush_nl(self, before: Step | None) -> int:
        """The prime this step needs when the step before it gave the other syringe channel's drug (0: none):
        at least FLUSH_VOLUMES of the head's dead volume, which the device requires before it lets a program of
        this channel run (NACK CHANNEL otherwise), never less than the step's own prime."""
        if before is None or before.program.channel == self.program.channel:
            return 0
        return max(self.program.prime_nl, spec.FLUSH_VOLUMES * self.program.dead_volume_nl)

    def summary(self, lang: str = "en") -> str:
        return f"step {self.number}, {self.zone.name(lang)}: {self.program.summary()[len(self.program.name) + 2:]}"


@dataclasses.dataclass(frozen=True)
class Plan:
    name: str
    steps: tuple[Step, ...]
    total_nl: int  # the session cap the device enforces
    description: str = ""
    source: dict = dataclasses.field(default_factory=dict, compare=False)  # the file as read, for the record

    @property
    def count(self) -> int:
        return sum(step.program.count for step in self.steps)

    @property
    def steps_nl(self) -> int:
        return sum(step.total_nl for step in self.steps)

    def check_limits(self, limits: dict, cal_ppm: int = 1000000) -> None:
        """The plan total against the device's session limit, then every step against its rules under the
        total as the session's cap."""
        if self.total_nl > limits["max_session_nl"]:
            raise PlanError("total", f"{units.text(self.total_nl, units.VOLUME)} is above the device's session limit "
                            f"of {units.text(limits['max_session_nl'], units.VOLUME)}: split the plan into sessions, "
                            "or lower its doses")
        for step in self.steps:
            try:
                step.program.check_limits(limits, cal_ppm, self.total_nl)
            except PlanError:
                raise
            except ProgramError as e:
                raise PlanError(f"step {step.number} ({step.zone.id}): {e.field}", e.detail) from None

    def summary(self) -> str:
        return (f"{self.name}: {len(self.steps)} steps, {units.text(self.steps_nl, units.VOLUME)} planned, "
                f"session cap {units.text(self.total_nl, units.VOLUME)} (held by the device)")

    def record(self) -> dict:
        """The plan as the session record keeps it: its steps' zones and wire values."""
        return {"name": self.name, "total_nl": self.total_nl,
                "steps": [{"step": s.number, "zone": s.zone.id, "program": dataclasses.asdict(s.program)}
                          for s in self.steps]}


def is_plan(data: dict) -> bool:
    return "steps" in data


def find(name: str | pathlib.Path) -> pathlib.Path:
    """A plan file by path, or a shipped plan's by name (`facial-nappage` is EXAMPLES/facial-nappage.toml)."""
    path = pathlib.Path(name)
    example = EXAMPLES / f"{path.name}.toml"
    return example if not path.exists() and path.suffix == "" and example.exists() else path


def load(path: str | pathlib.Path) -> Plan:
    path = find(path)
    data = programs.read(path)
    try:
        return parse(data)
    except ProgramError as e:
        raise PlanError(e.field, e.detail, str(path)) from None


def parse(data: dict) -> Plan:
    extra = sorted(data.keys() - PLAN_KEYS - SHARED)
    if extra:
        raise PlanError(extra[0], f"not a key of a plan; allowed: {', '.join(sorted(PLAN_KEYS | SHARED))} "
                        "(zone, technique, dose and depth go in each [[steps]] table)")
    name = programs._text(data, "name")
    steps_data = data.get("steps")
    if not isinstance(steps_data, list) or not steps_data or not all(isinstance(s, dict) for s in steps_data):
        raise PlanError("steps", "a plan needs at least one [[steps]] table (zone, technique, dose, depth)")
    shared = {key: data[key] for key in SHARED if key in data}
    steps = tuple(_step(n, shared, step, name) for n, step in enumerate(steps_data, 1))
    _one_drug_a_channel(steps)
    steps_nl = sum(s.total_nl for s in steps)
    total = _volume(data, "total", "total") if "total" in data else steps_nl
    if total < steps_nl:
        raise PlanError("total", f"{units.text(total, units.VOLUME)} is less than its steps add up to "
                        f"({units.text(steps_nl, units.VOLUME)}): lower a step's dose or count, or raise the total")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise PlanError("description", f"must be a string, got {programs.shown(description)}")
    return Plan(name=name, steps=steps, total_nl=total, description=description, source=data)


def _step(number: int, shared: dict, data: dict, plan_name: str) -> Step:
    where = f"step {number}"
    try:
        zone = zones.get(data.get("zone", ""))
    except zones.UnknownZone as e:
        raise PlanError(f"{where}: zone", str(e)) from None
    body = {**shared, **{k: v for k, v in data.items() if k not in STEP_KEYS}}
    body["name"] = data.get("name") or f"{plan_name}: {zone.en}"
    technique = body.get("technique")
    count_key, volume_key = ("shots", "volume_per_shot") if technique == "nappage" else ("points", "volume_per_point")
    try:
        if "total" in data:
            if count_key in data:
                raise ProgramError("total", f"give {count_key} or total, not both")
            body[count_key] = _count_of_total(data, volume_key, count_key)
        program = programs.parse(body)
    except ProgramError as e:
        raise PlanError(f"{where} ({zone.id}): {e.field}", e.detail) from None
    return Step(number=number, zone=zone, program=program)


def _one_drug_a_channel(steps: tuple[Step, ...]) -> None:
    """A syringe holds one drug: two steps of one channel naming different drugs would give one as the other."""
    drugs: dict[int, Step] = {}
    for step in steps:
        first = drugs.setdefault(step.program.channel, step)
        if first.program.drug != step.program.drug:
            raise PlanError(f"step {step.number} ({step.zone.id}): drug",
                            f"{step.program.drug!r} from channel {step.program.channel}, whose syringe holds "
                            f"{first.program.drug!r} (step {first.number}): one drug a channel - give it channel "
                            f"{spec.CHANNELS if step.program.channel == 1 else 1}, or the same drug")


def _count_of_total(data: dict, volume_key: str, count_key: str) -> int:
    """points (or shots) = total / dose, which must come out whole: a plan never rounds a patient's dose."""
    if volume_key not in data:
        raise ProgramError(volume_key, f"missing: a total needs the {volume_key} it is divided into")
    total = _volume(data, "total", "total")
    dose = _volume(data, volume_key, volume_key)
    if dose == 0 or total % dose:
        raise ProgramError("total", f"{units.text(total, units.VOLUME)} is not a whole number of "
                           f"{units.text(dose, units.VOLUME)} {count_key}: give {count_key} = N, or a total it divides")
    return total // dose


def _volume(data: dict, key: str, field: str) -> int:
    return programs._quantity({field: data[key]}, field, "nL", "0.5 mL")
