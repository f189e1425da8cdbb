"""The Subsonic API (1.16.1) and OpenSubsonic extensions at `/rest/`, for the
apps fans already use (DSub, Ultrasonic, Symfonium, Feishin, Supersonic).

Spec: https://www.subsonic.org/pages/api.jsp and
https://opensubsonic.netlify.app/. The modules: `dispatch` (routes, auth,
envelope), `credentials` (Subsonic passwords, API keys), `catalog` (what a
user may see, as SQL), `serialize` (rows as Subsonic entries), and the
methods in `browsing`, `lists`, `annotation`, `playlists`, `media_files`.
"""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Install `/rest/{method}` (GET and form POST) and the tables' models."""
    from . import (  # noqa: F401 - importing registers the methods and the models
        annotation,
        browsing,
        lists,
        media_files,
        models,
        playlists,
    )
    from .dispatch import setup_routes

    setup_routes(app)
