"""Royalties: money, the ledger, subscriptions, qualified plays and the period close (DESIGN.md 7).

`setup(app)` is called by the composition root. Importing `royalties.models`
here puts the tables on `Base.metadata` before the app is built.
"""

from __future__ import annotations

from aiohttp import web

from node.events import declare_events

# Tables on Base.metadata, and the modules that declare API endpoints.
from . import api, billing, clearing_models, models, payouts  # noqa: F401

EVENTS = ("royalties.period_closed",)


def setup(app: web.Application) -> None:
    """Install this subsystem's routes, jobs, subscribers and federation handlers."""
    declare_events(*EVENTS)
    api.install(app)
    from . import clearing  # clearing protocol, billing and payouts (its own setup)

    clearing.setup(app)
