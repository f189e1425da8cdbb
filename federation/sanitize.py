"""Remote HTML is sanitized before it is stored (nh3, the Ammonia sanitizer)."""

from __future__ import annotations

import nh3

ALLOWED_TAGS = {
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
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "span": {"class"}}


def clean_html(value: str, limit: int = 20_000) -> str:
    """Keep simple formatting and links; drop scripts, styles, images and event handlers."""
    return nh3.clean(
        value[:limit],
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
    )


def clean_text(value: str, limit: int = 500) -> str:
    """Names and titles: no markup at all."""
    return nh3.clean(value[:limit], tags=set()).strip()
