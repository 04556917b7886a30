"""A printable per-session treatment report: one self-contained HTML page, no script.

The plot of programmed vs delivered volume per point is inline SVG drawn here by hand.
"""

from __future__ import annotations

import datetime as dt
import math
import pathlib

import jinja2
from markupsafe import Markup, escape

from mesoprotocol import spec

from .. import __version__
from .common import NothingToExport, SessionRecord, numbered, ul

_FLAG_NAMES = ((spec.FLAG_PARTIAL, "partial"), (spec.FLAG_TRIGGER_RELEASED, "trigger released"),
               (spec.FLAG_ABORTED, "stopped"), (spec.FLAG_FAULT, "fault"), (spec.FLAG_POWER_LOST, "power lost"),
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
_env.filters.update(ul=ul, flags=_flags, when=_when)

def export(store, session_id: int | None) -> str:
    if session_id is None:
        latest = store.sessions()[-1]["id"]
        raise NothingToExport(f"the html report is per session: pass --session N (the latest is session {latest}; "
                              "`mesoinject records list` shows them all)")
    return render(SessionRecord.load(store, session_id))


def render(rec: SessionRecord) -> str:
    return _env.get_template("report.html.j2").render(
        rec=rec, s=rec.session, plot=plot_svg(rec.given), version=__version__, numbered=zip(rec.numbers, rec.given),
        generated=_when(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")))


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
