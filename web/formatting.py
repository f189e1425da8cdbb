"""Pure formatting helpers for the templates: durations, money, dates, slugs, text.

Kept free of aiohttp and the database so they are trivially testable and
cheap to call from jinja filters on every render.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, tzinfo
from urllib.parse import urlsplit

import nh3
from markupsafe import Markup, escape

# ISO 4217 minor-unit exponents that are not 2; everything else has cents.
_EXPONENTS = {
    "BHD": 3,
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "IQD": 3,
    "ISK": 0,
    "JOD": 3,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "PYG": 0,
    "RWF": 0,
    "TND": 3,
    "UGX": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
}
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$", "MXN": "MX$"}


def slugify(text: str) -> str:
    """`Staten Island` -> `staten-island`: ASCII, lowercase, hyphens."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")


def duration(ms: int | None) -> str:
    """Milliseconds as m:ss (or h:mm:ss); empty when unknown."""
    if ms is None or ms < 0:
        return ""
    seconds = (ms + 500) // 1000  # half up, in integers
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def total_duration(ms: int | None) -> str:
    """A release's running time in words: `42 min`, `1 h 5 min`."""
    if not ms:
        return ""
    minutes = max(1, int(round(ms / 60000)))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def money(amount: int | None, currency: str | None) -> str:
    """Minor units to a display price: (1500, "USD") -> `$15.00`, 0 -> `Free`.

    Integer arithmetic only (DESIGN.md 7: a float never touches money).
    """
    if amount is None:
        return ""
    if amount == 0:
        return "Free"
    currency = (currency or "").upper()
    exp = _EXPONENTS.get(currency, 2)
    sign = "-" if amount < 0 else ""
    whole, minor = divmod(abs(amount), 10**exp)
    number = f"{whole:,}" + (f".{minor:0{exp}d}" if exp else "")
    symbol = _SYMBOLS.get(currency)
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {currency}".strip()


def local(dt: datetime | None, zone: tzinfo) -> datetime | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(zone)


def _hour(dt: datetime) -> str:
    hour = dt.hour % 12 or 12
    suffix = "am" if dt.hour < 12 else "pm"
    return f"{hour}{suffix}" if dt.minute == 0 else f"{hour}:{dt.minute:02d}{suffix}"


def day_label(dt: datetime | None, zone: tzinfo) -> str:
    """`Sat, Jun 7` (with the year when it is not this year)."""
    d = local(dt, zone)
    if d is None:
        return ""
    label = f"{d:%a}, {d:%b} {d.day}"
    if d.year != datetime.now(zone).year:
        label += f", {d.year}"
    return label


def time_label(dt: datetime | None, zone: tzinfo) -> str:
    """`9pm`, `10:30pm`."""
    d = local(dt, zone)
    return _hour(d) if d is not None else ""


def when(start: datetime | None, end: datetime | None, zone: tzinfo) -> str:
    """An event's time span in the node's zone: `Sat, Jun 7 · 9pm – 2am`."""
    if start is None:
        return ""
    text = f"{day_label(start, zone)} · {time_label(start, zone)}"
    if end is not None:
        s, e = local(start, zone), local(end, zone)
        if (e - s).days >= 1:
            text += f" – {day_label(end, zone)} {time_label(end, zone)}"
        else:
            text += f" – {time_label(end, zone)}"
    return text


def year(value: date | datetime | None) -> str:
    return str(value.year) if value is not None else ""


def paragraphs(text: str | None) -> Markup:
    """Plain text as escaped paragraphs with line breaks: bios are never rendered as HTML."""
    if not text or not text.strip():
        return Markup("")
    blocks = re.split(r"\n\s*\n", text.strip().replace("\r\n", "\n"))
    parts = []
    for block in blocks:
        lines = [escape(line) for line in block.split("\n")]
        parts.append(Markup("<p>") + Markup("<br>").join(lines) + Markup("</p>"))
    return Markup("\n").join(parts)


# What HTML from another node may keep (DESIGN.md 10: sanitized before it is shown).
REMOTE_TAGS = {
    "p",
    "br",
    "a",
    "span",
    "strong",
    "em",
    "b",
    "i",
    "ul",
    "ol",
    "li",
    "blockquote",
    "code",
    "pre",
}


def remote_html(value: str | None) -> Markup:
    """HTML that came from another node (bios, descriptions), cleaned with nh3 on the way out."""
    if not value or not value.strip():
        return Markup("")
    return Markup(
        nh3.clean(
            value[:20_000],
            tags=REMOTE_TAGS,
            attributes={"a": {"href", "title"}},
            url_schemes={"http", "https", "mailto"},
            link_rel="nofollow noopener noreferrer ugc",
        )
    )


def rich_text(value: str | None, local: bool = True) -> Markup:
    """Local texts are plain text written here; remote ones arrive as (sanitized) HTML."""
    return paragraphs(value) if local else remote_html(value)


def initials(name: str) -> str:
    """Up to two letters for an avatar: `Jay Electronica` -> `JE`."""
    words = re.findall(r"[^\W_]+", name or "")
    letters = "".join(w[0] for w in words[:2]).upper()
    return letters or "?"


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def safe_url(value: str | None) -> str:
    """`value` if it is an http(s) URL, else empty: remote data never gets a javascript: link."""
    if not value or not isinstance(value, str) or len(value) > 2000:
        return ""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return ""
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else ""


def link_label(value: str) -> str:
    """A short label for an external link: `bandcamp.com/jay` from the full URL."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value[:40]
    host = parts.netloc.removeprefix("www.")
    path = parts.path.rstrip("/")
    label = host + (path if len(path) <= 24 else path[:23] + "…")
    return label or value[:40]


def safe_href(value: str | None) -> str:
    """An http(s) URL or a path on this site; anything else becomes `#`."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//"):
        return value
    return safe_url(value) or "#"
