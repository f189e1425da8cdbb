"""Media: upload, transcoding, storage, streaming, Subsonic, and live (media/live/).

`setup(app)` is called by the composition root; each part installs its own
routes, job handlers and bus subscribers.
"""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    from . import pipeline, streaming
    from .live import setup as live_setup
    from .subsonic import setup as subsonic_setup

    streaming.setup(app)
    pipeline.setup(app)
    subsonic_setup(app)
    live_setup(app)
