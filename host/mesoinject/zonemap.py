"""The injection map: the zones of mesoinject.zones drawn on a face and a body, as inline SVG.

One drawing for the console (the current zone highlighted, a tap marks where a point went) and the
report (each zone's total beside it). No external assets and no script: plain shapes, each zone a
<g class="zone" data-zone="ID"> with its name as <title>, so the page styles and hit-tests it.
"""

from __future__ import annotations

from markupsafe import escape

from . import zones

WIDTH, HEIGHT = 720, 300
BODY_DX = 200  # the body figures stand right of the face and its labels
# zone id -> SVG shapes (viewBox units) and where its label goes (x, y, anchor)
_SHAPES: dict[str, tuple[str, tuple[int, int, str]]] = {
    "face": ('<ellipse cx="110" cy="150" rx="80" ry="105"/>', (110, 292, "middle")),
    "scalp": ('<path d="M36,120 Q110,-14 184,120 Q110,62 36,120 Z"/>', (110, 14, "middle")),
    "forehead": ('<ellipse cx="110" cy="100" rx="52" ry="15"/>', (200, 92, "start")),
    "periorbital": ('<ellipse cx="72" cy="132" rx="15" ry="9"/><ellipse cx="148" cy="132" rx="15" ry="9"/>',
                    (200, 128, "start")),
    "cheeks": ('<ellipse cx="68" cy="172" rx="20" ry="18"/><ellipse cx="152" cy="172" rx="20" ry="18"/>',
               (200, 170, "start")),
    "nasolabial": ('<ellipse cx="94" cy="184" rx="5" ry="15"/><ellipse cx="126" cy="184" rx="5" ry="15"/>',
                   (20, 196, "start")),
    "perioral": ('<ellipse cx="110" cy="208" rx="22" ry="11"/>', (200, 210, "start")),
    "jawline": ('<path d="M42,184 Q56,252 110,258 Q164,252 178,184 L170,186 Q156,240 110,246 Q64,240 50,186 Z"/>',
                (200, 246, "start")),
    "neck": ('<rect x="281" y="38" width="22" height="14" rx="3"/>', (312, 46, "start")),
    "decollete": ('<path d="M262,54 L322,54 L312,84 L272,84 Z"/>', (330, 72, "start")),
    "abdomen": ('<rect x="268" y="100" width="48" height="48" rx="8"/>', (330, 126, "start")),
    "thighs": ('<rect x="262" y="176" width="28" height="72" rx="8"/><rect x="294" y="176" width="28" height="72" rx="8"/>',
               (330, 212, "start")),
    "lumbar": ('<rect x="410" y="118" width="44" height="28" rx="5"/>', (432, 112, "middle")),
    "buttocks": ('<ellipse cx="420" cy="168" rx="13" ry="14"/><ellipse cx="444" cy="168" rx="13" ry="14"/>',
                 (432, 200, "middle")),
}
# outlines that are no zone: the body's silhouettes, front and back
_OUTLINES = ('<circle cx="292" cy="22" r="14"/><rect x="256" y="52" width="72" height="118" rx="12"/>'
             '<circle cx="432" cy="22" r="14"/><rect x="396" y="52" width="72" height="118" rx="12"/>'
             '<rect x="398" y="176" width="30" height="72" rx="8"/><rect x="436" y="176" width="30" height="72" rx="8"/>')
ZONE_FILL, CURRENT_FILL, GIVEN_FILL = "#eef2f7", "#ffd24d", "#9cc3f0"


def inside(x: float, y: float) -> bool:
    return 0 <= x <= WIDTH and 0 <= y <= HEIGHT


def svg(*, current: str | None = None, totals: dict[str, str] | None = None, lang: str = "en",
        element_id: str = "", marks: list[dict] | None = None) -> str:
    """The map; current: the zone to highlight; totals: zone id -> text to write beside it (the report);
    marks: points tapped on the map ({x, y, point}), drawn as numbered dots."""
    totals = totals or {}
    front, back = ("devant", "dos") if lang == "fr" else ("front", "back")
    ident = f' id="{escape(element_id)}"' if element_id else ""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'font-family="sans-serif" font-size="11"{ident}>',
             f"<title>{'Cartographie des injections' if lang == 'fr' else 'Injection map'}</title>",
             f'<g fill="none" stroke="#999" stroke-width="1.2" transform="translate({BODY_DX},0)">{_OUTLINES}</g>']
    for zone_id, (shapes, _) in _SHAPES.items():
        zone = zones.ZONES[zone_id]
        fill = CURRENT_FILL if zone_id == current else GIVEN_FILL if zone_id in totals else ZONE_FILL
        width = 2.5 if zone_id == current else 1
        classes = "zone current" if zone_id == current else "zone"
        shift = f' transform="translate({BODY_DX},0)"' if zone.region == "body" else ""
        parts.append(f'<g class="{classes}" data-zone="{zone_id}" fill="{fill}" stroke="#345" stroke-width="{width}"'
                     f'{shift}><title>{escape(zone.name(lang))}</title>{shapes}</g>')
    for zone_id, text in totals.items():
        if zone_id not in _SHAPES:
            continue
        x, y, anchor = _SHAPES[zone_id][1]
        x += BODY_DX if zones.ZONES[zone_id].region == "body" else 0
        parts.append(f'<text class="total" data-zone="{zone_id}" x="{x}" y="{y}" text-anchor="{anchor}" '
                     f'font-weight="bold">{escape(zones.name(zone_id, lang))}: {escape(text)}</text>')
    parts.append('<g class="marks" fill="#c00" stroke="#fff" stroke-width="1">')
    for m in marks or []:
        label = escape(f"point {m['point']}" if m.get("point") else "")
        parts.append(f'<circle cx="{float(m["x"]):.1f}" cy="{float(m["y"]):.1f}" r="4"><title>{label}</title></circle>')
    parts.append("</g>")
    parts.append(f'<text x="{292 + BODY_DX}" y="290" text-anchor="middle" fill="#555">{escape(front)}</text>'
                 f'<text x="{432 + BODY_DX}" y="290" text-anchor="middle" fill="#555">{escape(back)}</text></svg>')
    return "".join(parts)
