"""The JSON API under /api/v1 (DESIGN.md 4): thin handlers over domain services.

Each module declares its endpoints on the shared `API` table; `build_api()`
imports them all so the table is complete before routes are installed.
"""

from .routing import Api

API = Api()


def build_api() -> Api:
    from . import accounts, catalog, gigs, meta, search, social  # noqa: F401 - registers endpoints

    return API
