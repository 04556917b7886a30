"""The shot-accuracy report of one firmware build: one self-contained HTML page (inline SVG, no script,
no external asset), from mesoinject.accuracy's results."""

from __future__ import annotations

import datetime as dt
import math
import pathlib

import jinja2
from markupsafe import Markup, escape

from .. import __version__
from ..accuracy import SettingResult

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(pathlib.Path(__file__).parent), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)

W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 240, 56, 12, 12, 36  # plot size and margins (px)


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    step = (hi - lo) / n if hi > lo else 1.0
    mag = 10 ** math.floor(math.log10(step))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= step), default=step)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _frame(xs, ys, xlabel: str, ylabel: str, x_of, y_of, xticks, yticks, xfmt="{:g}") -> list[str]:
    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" '
             'fill="none" stroke="#888"/>']
    for v in yticks:
        y = y_of(v)
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{v:g}</text>')
    for v in xticks:
        x = x_of(v)
        parts.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 14}" text-anchor="middle" font-size="10">'
                     f'{escape(xfmt.format(v))}</text>')
    parts.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 4}" text-anchor="middle" font-size="11">'
                 f'{escape(xlabel)}</text>')
    parts.append(f'<text x="12" y="{(TOP + H - BOTTOM) / 2}" text-anchor="middle" font-size="11" '
                 f'transform="rotate(-90 12 {(TOP + H - BOTTOM) / 2})">{escape(ylabel)}</text>')
    return parts


def shots_svg(result: SettingResult) -> Markup:
    """Per-shot error (%) against shot number; shots after a pause as open red circles."""
    errors = result.errors
    n = len(errors)
    lo, hi = min(min(errors), 0.0), max(max(errors), 0.0)
    pad = (hi - lo) * 0.1 or 1.0
    x_of = _scale(1, max(n, 2), LEFT + 6, W - RIGHT - 6)
    y_of = _scale(lo - pad, hi + pad, H - BOTTOM, TOP)
    parts = _frame(range(n), errors, "shot", "error (%)", x_of, y_of,
                   [t for t in _ticks(1, n) if t >= 1], _ticks(lo - pad, hi + pad))
    parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y_of(0):.1f}" y2="{y_of(0):.1f}" stroke="#000"/>')
    for i, shot in enumerate(result.shots):
        x, y = x_of(i + 1), y_of(shot.error_pct)
        if shot.after_pause:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="none" stroke="#c00" stroke-width="1.5"/>')
        else:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="#036"/>')
    return _svg(parts, f"per-shot error of {result.name}")


def trumpet_svg(result: SettingResult) -> Markup:
    """Max and min window error against window length (log axis): the trumpet; the mean as a dashed line."""
    curve = result.trumpet()
    mean = result.summary()["mean_pct"]
    lo = min(min(w.min_pct for w in curve), mean, 0.0)
    hi = max(max(w.max_pct for w in curve), mean, 0.0)
    pad = (hi - lo) * 0.1 or 1.0
    ks = [w.k for w in curve]
    x_of_log = _scale(0.0, math.log10(max(ks[-1], 2)), LEFT + 20, W - RIGHT - 20)
    x_of = lambda k: x_of_log(math.log10(k))  # noqa: E731
    y_of = _scale(lo - pad, hi + pad, H - BOTTOM, TOP)
    parts = _frame(ks, [], "window: consecutive shots (k)", "window error (%)", x_of, y_of, ks,
                   _ticks(lo - pad, hi + pad), "{:d}")
    parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y_of(0):.1f}" y2="{y_of(0):.1f}" stroke="#000"/>')
    parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y_of(mean):.1f}" y2="{y_of(mean):.1f}" '
                 'stroke="#666" stroke-dasharray="4 3"/>')
    for attr, colour in (("max_pct", "#c00"), ("min_pct", "#036")):
        points = " ".join(f"{x_of(w.k):.1f},{y_of(getattr(w, attr)):.1f}" for w in curve)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        parts += [f'<circle cx="{x_of(w.k):.1f}" cy="{y_of(getattr(w, attr)):.1f}" r="2.5" fill="{colour}"/>'
                  for w in curve]
    return _svg(parts, f"trumpet curve of {result.name}")


def _svg(parts: list[str], label: str) -> Markup:
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
                  f'role="img" aria-label="{escape(label)}" font-family="sans-serif">' + "".join(parts) + "</svg>")


def render(results: list[SettingResult], *, build: str, firmware: str, board: str, serial: str, rig: str,
           notes: list[str] | None = None) -> str:
    """The report page. build: the IDENTITY build id (8 hex digits; 00000000 a source image)."""
    settings = [{"result": r, "summary": r.summary(), "trumpet": r.trumpet(), "tolerance": r.tolerance(),
                 "shots_svg": shots_svg(r), "trumpet_svg": trumpet_svg(r)} for r in results]
    return _env.get_template("accuracy.html.j2").render(
        settings=settings, build=build, firmware=firmware, board=board, serial=serial, rig=rig,
        notes=notes or [], generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__)
