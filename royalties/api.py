"""The royalties JSON API (issue 5.8): a period's report, an artist's earnings, a fan's split.

Declared on the shared `node.api.API` table (so they are in the OpenAPI
document) and installed by `royalties.setup`.
"""

from __future__ import annotations

from aiohttp import web

from node.api import API
from node.api.routing import Call
from node.models import utcnow
from node.services import catalog
from node.validation import F, Schema

from . import report
from .periods import period_of

PeriodQ = Schema(
    "RoyaltyPeriodQuery", F("limit", "int", min=1, max=1000), F("offset", "int", min=0)
)
EarningsQ = Schema("EarningsQuery", F("period", pattern=r"^\d{4}-\d{2}$", max_len=7))


@API.route(
    "GET",
    "/api/v1/royalties/periods/{period:\\d\\d\\d\\d-\\d\\d}",
    name="api.royalties.period",
    summary="A month's transparency report: collected, shares, each artist's UCPS and pro-rata",
    tag="royalties",
    query=PeriodQ,
)
async def get_period(call: Call):
    async with call.ctx.db.read_session() as s:
        return await report.period_report(
            s,
            call.ctx,
            call.path("period"),
            limit=call.query.get("limit", 100),
            offset=call.query.get("offset", 0),
        )


@API.route(
    "GET",
    "/api/v1/artists/{handle}/earnings",
    name="api.royalties.earnings",
    summary="An artist's earnings per period, per node and per venue (UCPS and pro-rata)",
    tag="royalties",
    query=EarningsQ,
)
async def get_earnings(call: Call):
    async with call.ctx.db.read_session() as s:
        artist = await catalog.get_artist(call.ctx, s, call.path("handle"))
        return await report.artist_earnings(s, call.ctx, artist, call.query.get("period"))


@API.route(
    "GET",
    "/api/v1/me/royalties",
    name="api.royalties.me",
    summary="Where the caller's subscription went: this month's fee split by artist",
    tag="royalties",
    query=EarningsQ,
    role="fan",
)
async def get_my_split(call: Call):
    period = call.query.get("period") or period_of(utcnow())
    async with call.ctx.db.read_session() as s:
        return await report.fan_split(s, call.ctx, call.account, period)


def install(app: web.Application) -> None:
    """Add this module's endpoints (the core installed its own before subsystems set up)."""
    API.install(app)
