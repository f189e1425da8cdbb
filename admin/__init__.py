"""The node admin console, a sub-app at /admin."""

from aiohttp import web


def create_admin() -> web.Application:
    """PLACEHOLDER - being written."""
    return web.Application()
