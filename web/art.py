"""Generated placeholder art: covers and avatars drawn as inline SVG from a name.

A release without a cover, or an artist without a picture, still gets a
distinctive image: the same title always yields the same colours and
pattern, so a release is recognisable across pages. Inline SVG needs no
request, no storage and no inline `style` (the CSP forbids it): colours are
presentation attributes. Every piece of text is escaped.
"""

from __future__ import annotations

import hashlib
import itertools
from functools import lru_cache

from markupsafe import Markup, escape

from .formatting import initials

_ids = itertools.count(1)
_ID = "__ART_ID__"


def _seed(text: str) -> bytes:
    return hashlib.blake2b((text or "untitled").encode(), digest_size=16).digest()


def _wrap(title: str, width: int = 13, lines: int = 3) -> list[str]:
    """Greedy word wrap for the title printed on the cover."""
    out: list[str] = []
    current = ""
    for word in title.split():
        if len(word) > width:
            word = word[: width - 1] + "…"
        if current and len(current) + 1 + len(word) > width:
            out.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
        if len(out) == lines:
            break
    if current and len(out) < lines:
        out.append(current)
    if len(out) == lines and " ".join(out) != " ".join(title.split()):
        out[-1] = out[-1][: width - 1].rstrip() + "…"
    return out


@lru_cache(maxsize=2048)
def _cover_template(title: str, subtitle: str) -> str:
    b = _seed(title)
    h1 = b[0] * 360 // 256
    h2 = (h1 + 40 + b[1] % 120) % 360
    s1, l1 = 70 + b[2] % 25, 42 + b[3] % 14
    l2 = 18 + b[4] % 14
    variant = b[5] % 4
    c1 = f"hsl({h1} {s1}% {l1}%)"
    c2 = f"hsl({h2} 80% {l2}%)"
    ink = f"hsl({(h1 + 180) % 360} 100% 88%)"
    shapes: list[str] = []
    defs: list[str] = []
    if variant == 0:  # grooves: a record seen from above
        cx, cy = 150 + b[6] % 80 - 40, 120 + b[7] % 60 - 30
        for i, r in enumerate(range(130, 10, -14)):
            shapes.append(
                f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="none" stroke="{ink}" '
                f'stroke-opacity="{0.10 + (i % 3) * 0.08:.2f}" stroke-width="{1 + i % 3}"/>'
            )
        shapes.append(f'<circle cx="{cx}" cy="{cy}" r="18" fill="{ink}" fill-opacity=".85"/>')
    elif variant == 1:  # stripes: one <pattern>, not dozens of shapes
        step = 18 + b[6] % 18
        angle = [-35, 35, 60, -60][b[7] % 4]
        defs.append(
            f'<pattern id="{_ID}p" width="{step}" height="{step}" patternUnits="userSpaceOnUse" '
            f'patternTransform="rotate({angle})"><rect width="{step // 2}" height="{step}" '
            f'fill="{ink}" fill-opacity=".16"/></pattern>'
        )
        shapes.append(f'<rect width="300" height="300" fill="url(#{_ID}p)"/>')
    elif variant == 2:  # a sun over a dot grid
        defs.append(
            f'<pattern id="{_ID}p" x="6" y="6" width="24" height="24" patternUnits="userSpaceOnUse">'
            f'<circle cx="12" cy="12" r="2" fill="{ink}" fill-opacity=".22"/></pattern>'
        )
        shapes.append(f'<rect width="300" height="300" fill="url(#{_ID}p)"/>')
        r = 60 + b[6] % 50
        shapes.append(
            f'<circle cx="{90 + b[7] % 120}" cy="{80 + b[8] % 70}" r="{r}" fill="{ink}" fill-opacity=".9"/>'
        )
    else:  # equalizer bars
        n = 9 + b[6] % 6
        w = 300 / n
        for i in range(n):
            hgt = 40 + (b[(i + 7) % 16] * 190) // 255
            shapes.append(
                f'<rect x="{i * w + 3:.1f}" y="{300 - hgt}" width="{w - 6:.1f}" height="{hgt}" '
                f'rx="3" fill="{ink}" fill-opacity="{0.25 + (i % 3) * 0.2:.2f}"/>'
            )
    lines = _wrap(title.upper())
    text = "".join(
        f'<tspan x="20" dy="{0 if i == 0 else 26}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    top = 300 - 22 - 26 * (len(lines) - 1) - (22 if subtitle else 0)
    sub = (
        f'<text x="20" y="280" fill="#fff" fill-opacity=".75" font-size="13" font-weight="600" '
        f'letter-spacing=".08em">{escape(subtitle.upper()[:28])}</text>'
        if subtitle
        else ""
    )
    return (
        f'<svg class="art" viewBox="0 0 300 300" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{escape(title)}" focusable="false">'
        f'<defs><linearGradient id="{_ID}" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="{c1}"/><stop offset="1" stop-color="{c2}"/></linearGradient>'
        f'<linearGradient id="{_ID}s" x1="0" y1="0" x2="0" y2="1"><stop offset=".55" stop-color="#000" '
        f'stop-opacity="0"/><stop offset="1" stop-color="#000" stop-opacity=".55"/></linearGradient>'
        f"{''.join(defs)}</defs>"
        f'<rect width="300" height="300" fill="url(#{_ID})"/>{"".join(shapes)}'
        f'<rect width="300" height="300" fill="url(#{_ID}s)"/>'
        f'<text x="20" y="{top}" fill="#fff" font-size="24" font-weight="800" '
        f'letter-spacing="-.01em" font-family="system-ui, sans-serif">{text}</text>{sub}</svg>'
    )


@lru_cache(maxsize=2048)
def _avatar_template(name: str) -> str:
    b = _seed(name)
    h1 = b[0] * 360 // 256
    h2 = (h1 + 60 + b[1] % 90) % 360
    letters = escape(initials(name))
    return (
        f'<svg class="art" viewBox="0 0 100 100" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{escape(name)}" focusable="false">'
        f'<defs><linearGradient id="{_ID}" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="hsl({h1} 80% 55%)"/><stop offset="1" stop-color="hsl({h2} 75% 30%)"/>'
        f'</linearGradient></defs><rect width="100" height="100" fill="url(#{_ID})"/>'
        f'<circle cx="{20 + b[2] % 60}" cy="{15 + b[3] % 30}" r="{30 + b[4] % 25}" fill="#fff" fill-opacity=".12"/>'
        f'<text x="50" y="50" dy=".35em" text-anchor="middle" fill="#fff" font-size="38" font-weight="800" '
        f'font-family="system-ui, sans-serif">{letters}</text></svg>'
    )


def cover_svg(title: str, subtitle: str = "") -> Markup:
    """A square cover for a release titled `title` (subtitle: the artist's name)."""
    return Markup(
        _cover_template(title or "Untitled", subtitle or "").replace(_ID, f"c{next(_ids)}")
    )


def avatar_svg(name: str) -> Markup:
    """A square avatar with the artist's initials; CSS makes it round."""
    return Markup(_avatar_template(name or "?").replace(_ID, f"a{next(_ids)}"))


def hue_bucket(name: str, buckets: int = 12) -> int:
    """Which of the CSS glow colours (`.glow-0` ...) belongs to this name, matching its avatar."""
    return (_seed(name or "?")[0] * 360 // 256) * buckets // 360
