"""HTML error pages for browsers (the core's error middleware calls `html_error`).

The API keeps answering problem+json; people get a page in the site's
layout that says what happened and where to go next.
"""

from __future__ import annotations

import logging

from aiohttp import web

from .render import render

log = logging.getLogger("nycmg.web")

HEADINGS = {
    400: "That request did not make sense",
    401: "Sign in to continue",
    403: "Not allowed",
    404: "Nothing here",
    405: "Not like that",
    409: "That clashes with something",
    413: "Too big",
    422: "Please check that again",
    429: "Slow down a little",
    500: "Something broke on our side",
    503: "Back in a moment",
}


async def html_error(
    request: web.Request, status: int, title: str, detail: str
) -> web.StreamResponse:
    """Render the error page; if even that fails, answer in plain text."""
    if status == 404 and (not detail or detail == title or detail.startswith("404")):
        detail = "This page does not exist, or it is not public (yet)."
    if status >= 500:
        detail = "It has been logged. Try again in a moment."
    heading = HEADINGS.get(status, title)
    try:
        return render(
            request,
            "error.html",
            {"status": status, "title": title, "heading": heading, "detail": detail},
            status=status,
        )
    except Exception:  # noqa: BLE001 - the error page must never fail the error
        log.exception("error page failed", extra={"path": request.path})
        return web.Response(status=status, text=f"{status} {title}\n{detail}\n")
