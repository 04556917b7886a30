"""A printable per-session treatment report: one self-contained HTML page, no script.

The clinic's name, address and practitioner come from its config file (mesoinject.clinic), the
words from a catalogue in English or French (messages.py; the clinic file's `language`, or the
caller's). A plan session gets a per-zone table and the injection map with each zone's total.
The plot of programmed vs delivered volume per point is inline SVG drawn here by hand.
"""

from __future__ import annotations

import datetime as dt
import math
import pathlib

import jinja2
from markupsafe import Markup, escape

from mesoprotocol import spec

import json

from .. import __version__, alarms, clinic as clinics, outcomes, zonemap, zones
from . import messages
from .common import NothingToExport, SessionRecord, numbered, ul

_FLAG_NAMES = ((spec.FLAG_PARTIAL, "partial"), (spec.FLAG_TRIGGER_RELEASED, "trigger released"),
               (spec.FLAG_ABORTED, "stopped"), (spec.FLAG_FAULT, "fault"), (spec.FLAG_POWER_LOST, "power lost"),
               (spec.FLAG_CONTACT_LOST, "contact lost"),
               (spec.FLAG_UNCALIBRATED, "uncalibrated syringe: volume estimated"))


def _flags(flags: int) -> str:
    return ", ".join(name for bit, name in _FLAG_NAMES if flags & bit)


def _when(iso: str | None) -> str:
    if iso is None:
        return ""
    try:
        # the clinic's local time, with its zone: what the clinician's watch said
        return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z (UTC%z)")
    except (TypeError, ValueError):  # not written by us: show it as stored
        return iso or ""


_env = jinja2.Environment(loader=jinja2.FileSystemLoader(pathlib.Path(__file__).parent), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
def _clock(iso: str | None) -> str:
    """The local time of day a point was stored (its date is the session's)."""
    try:
        return dt.datetime.fromisoformat(iso or "").astimezone().strftime("%H:%M:%S")
    except (TypeError, ValueError):
        return iso or ""


def _alarm_words(alarm: dict) -> str:
    """What the alarm meant, from the device's code and detail (alarms.py's words, without what to do)."""
    try:
        code = spec.ALARM_NAMES.index(alarm["code"])
    except ValueError:
        return ""
    what = alarms.ALARMS.get(code, ("",))[0]
    cause = spec.RESET_NAMES[alarm["detail"]] if 0 <= alarm["detail"] < len(spec.RESET_NAMES) else alarm["detail"]
    return what.format(detail=alarm["detail"], cause=cause)


_env.filters.update(ul=ul, flags=_flags, when=_when, clock=_clock, alarm_name=outcomes.alarm_name,
                    alarm_words=_alarm_words)


def export(store, session_id: int | None, *, lang: str | None = None) -> str:
    if session_id is None:
        latest = store.sessions()[-1]["id"]
        raise NothingToExport(f"the html report is per session: pass --session N (the latest is session {latest}; "
                              "`mesoinject records list` shows them all)")
    return render(SessionRecord.load(store, session_id), lang=lang)


def zone_steps(rec: SessionRecord, lang: str = "en") -> list[dict]:
    """A plan session's steps with what each zone received (stored records, primes excluded); [] otherwise."""
    plan = json.loads(rec.session.get("plan_json") or "null")
    if not plan:
        return []
    steps = []
    for step in plan["steps"]:
        program, given = step["program"], [r for r in rec.given if r.get("plan_step") == step["step"]]
        steps.append({"step": step["step"], "zone": step["zone"], "zone_name": zones.name(step["zone"], lang),
                      "technique": program["technique"], "depth_um": program["depth_um"], "count": program["count"],
                      "given": len(given), "partial": sum(1 for r in given if r["partial"]),
                      "planned_nl": program["volume_nl"] * program["count"],
                      "delivered_nl": sum(r["delivered_nl"] for r in given)})
    return steps


def render(rec: SessionRecord, *, lang: str | None = None, clinic: clinics.Clinic | None = None) -> str:
    """lang: en or fr (default: the clinic file's); clinic: its details (default: read from its file)."""
    clinic = clinic if clinic is not None else clinics.load()
    lang = lang or clinic.language
    t = messages.catalogue(lang)
    steps = zone_steps(rec, lang)
    totals: dict[str, int] = {}
    for z in steps:
        totals[z["zone"]] = totals.get(z["zone"], 0) + z["delivered_nl"]
    given_label = t["doses_given"] if steps else t["shots_given"] if rec.unit == "shots" else t["points_given"]
    return _env.get_template("report.html.j2").render(
        zone_name=lambda zone_id: zones.name(zone_id, lang), rec=rec, s=rec.session, plot=plot_svg(rec.given),
        version=__version__, numbered=zip(rec.numbers, rec.given),
        generated=_when(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")), t=t, lang=lang,
        clinic=clinic, steps=steps, given_label=given_label,
        outcome=messages.outcome_words(lang, rec.session, rec.given, rec.device_alarms),
        zone_map=Markup(zonemap.svg(totals={k: f"{ul(v)} µL" for k, v in totals.items()}, lang=lang,
                                    marks=rec.marks)) if steps else "")


def plot_svg(rows: list[dict], width: int = 720, height: int = 240) -> Markup:  # noqa: C901
    """Bars: delivered per point (partial ones in orange); a black tick: what was programmed."""
    if not rows:
        return Markup("")
    left, right, top, bottom = 48, 8, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    top_ul = max(max(r["programmed_nl"], r["delivered_nl"]) for r in rows) / 1000 or 1.0
    step_ul = _nice_step(top_ul / 4)
    top_ul = math.ceil(top_ul * 1.05 / step_ul) * step_ul

    def y(nl: float) -> float:
        return top + plot_h * (1 - nl / 1000 / top_ul)

    slot = plot_w / len(rows)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" font-family="sans-serif" font-size="10">',
             "<title>Programmed and delivered volume per point</title>"]
    tick = 0.0
    while tick <= top_ul + 1e-9:  # y grid and labels
        yy = y(tick * 1000)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{yy + 3:.1f}" text-anchor="end">{tick:g}</text>')
        tick += step_ul
    parts.append(f'<text x="10" y="{top + plot_h / 2:.0f}" transform="rotate(-90 10 {top + plot_h / 2:.0f})" '
                 'text-anchor="middle">µL</text>')
    label_every = max(1, math.ceil(len(rows) / 20))
    bar_w = max(slot * 0.7, 0.5)
    numbers = numbered(rows)
    for i, r in enumerate(rows):
        x = left + i * slot + (slot - bar_w) / 2
        colour = "#e08a1e" if r["partial"] else "#3b7dd8"
        tip = escape(f"{r['kind']} {numbers[i]}: {ul(r['delivered_nl'])} of {ul(r['programmed_nl'])} µL"
                     + (" (partial)" if r["partial"] else ""))
        parts.append(f'<rect x="{x:.2f}" y="{y(r["delivered_nl"]):.2f}" width="{bar_w:.2f}" '
                     f'height="{y(0) - y(r["delivered_nl"]):.2f}" fill="{colour}"><title>{tip}</title></rect>'
                     f'<line x1="{x - slot * 0.1:.2f}" x2="{x + bar_w + slot * 0.1:.2f}" '
                     f'y1="{y(r["programmed_nl"]):.2f}" y2="{y(r["programmed_nl"]):.2f}" stroke="#000" '
                     'stroke-width="1.5"/>')
        if i % label_every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.2f}" y="{height - bottom + 12}" '
                         f'text-anchor="middle">{numbers[i]}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#000"/>'
                 f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle">point</text></svg>')
    return Markup("".join(parts))


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least raw."""
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
