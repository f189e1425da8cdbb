"""The public site: server-rendered pages for fans and artists."""

from aiohttp import web


def setup(app: web.Application) -> None:
    """PLACEHOLDER - being written."""
