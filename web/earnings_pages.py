"""Money pages (issue 5.8): where a fan's money went, an artist's earnings, the node's report.

- `GET /me/royalties[?period=YYYY-MM]`: the signed-in fan's fee this month
  (or a past one), split by artist exactly as the close splits it, with the
  pro-rata figure of the same money beside each artist, and the plays that
  did not count (too short, overlapping, held back).
- `GET /@HANDLE/earnings`: an artist's earnings per period, per node and per
  venue, UCPS beside pro-rata; `GET /@HANDLE/earnings.csv` the same as CSV.
- `GET /royalties` and `GET /royalties/YYYY-MM`: the node's public
  transparency report per period.

Thin handlers over royalties.report; every page works without JavaScript.
"""

from __future__ import annotations

import csv
import io

from aiohttp import web
from sqlalchemy import select

from node.appkeys import ACCOUNT, CTX
from node.errors import NotFound
from node.models import Actor, utcnow
from royalties import report
from royalties.errors import BadPeriod
from royalties.money import Money
from royalties.periods import parse_period, period_of, shift

from .objects import HANDLE_PATH
from .render import redirect, render, route_url

PERIOD_PATH = r"\d{4}-\d{2}"


def _period(request: web.Request, default: str) -> str:
    value = request.query.get("period") or default
    try:
        parse_period(value)
    except BadPeriod:
        raise BadPeriod("Periods are written YYYY-MM, for example 2026-10.") from None
    return value


async def _artist(request: web.Request) -> Actor:
    ctx = request.config_dict[CTX]
    handle, _, domain = request.match_info["handle"].lower().partition("@")
    async with ctx.db.read_session() as s:
        artist = await s.scalar(
            select(Actor).where(Actor.handle == handle, Actor.domain == (domain or ctx.domain))
        )
    if artist is None:
        raise NotFound("There is no such artist here.")
    return artist


async def my_royalties(request: web.Request) -> web.StreamResponse:
    """Where my money went: this month's fee split by the artists I played."""
    account = request.get(ACCOUNT)
    if account is None:
        back = str(route_url(request, "web.royalties.me"))
        return redirect(request, route_url(request, "web.login", query={"next": back}), 302)
    ctx = request.config_dict[CTX]
    this_month = period_of(utcnow())
    period = _period(request, this_month)
    async with ctx.db.read_session() as s:
        split = await report.fan_split(s, ctx, account, period)
    return render(
        request,
        "royalties/me.html",
        {
            "split": split,
            "period": period,
            "this_month": this_month,
            "previous": shift(period, -1),
            "next": shift(period, 1) if period < this_month else None,
            "node_share_bps": int(ctx.settings.royalties.node_share_bps),
            "foundation_share_bps": int(ctx.settings.royalties.foundation_share_bps),
        },
    )


async def artist_earnings(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CTX]
    artist = await _artist(request)
    period = request.query.get("period") or None
    if period:
        period = _period(request, period)
    async with ctx.db.read_session() as s:
        earnings = await report.artist_earnings(s, ctx, artist, period)
    return render(
        request,
        "royalties/artist.html",
        {
            "actor": artist,
            "earnings": earnings,
            "period": period,
            "handle": request.match_info["handle"],
        },
    )


async def artist_earnings_csv(request: web.Request) -> web.StreamResponse:
    """One row per period, node and source: a spreadsheet of everything the artist earned."""
    ctx = request.config_dict[CTX]
    artist = await _artist(request)
    async with ctx.db.read_session() as s:
        earnings = await report.artist_earnings(s, ctx, artist, None)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        ["period", "currency", "source", "node", "venue", "plays", "listeners", "amount", "state"]
    )
    here = ctx.urls.node_actor()

    def dec(m: dict) -> str:
        return Money(m["amount_minor"], m["currency"]).decimal_str()

    for p in earnings["periods"]:
        period, cur = p["period"], p["currency"]
        if p["plays"]:
            w.writerow(
                [
                    period,
                    cur,
                    "ucps",
                    here,
                    "",
                    p["plays"],
                    p["listeners"],
                    dec(p["ucps"]),
                    "closed",
                ]
            )
            w.writerow(
                [period, cur, "pro_rata (comparison, not paid)", here, "", p["plays"],
                 p["listeners"], dec(p["pro_rata"]), ""]
            )  # fmt: skip
        for v in p["venues"]:
            w.writerow(
                [period, cur, "venue", here, v["venue"], v["plays"], "", dec(v["amount"]), "closed"]
            )
        for n in p["nodes"]:
            if n["node"] != here:
                w.writerow(
                    [period, cur, "statement", n["node"], "", n["plays"], n.get("listeners", ""),
                     dec(n["amount"]), n["state"]]
                )  # fmt: skip
    filename = f"earnings-{artist.handle}.csv"
    return web.Response(
        body=buf.getvalue().encode(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def transparency_index(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CTX]
    async with ctx.db.read_session() as s:
        periods = await report.closed_periods(s)
    return render(
        request,
        "royalties/index.html",
        {"periods": periods, "this_month": period_of(utcnow())},
    )


async def transparency_period(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CTX]
    period = request.match_info["period"]
    parse_period(period)
    try:
        page = max(0, int(request.query.get("page", "0")))
    except ValueError:
        page = 0
    per_page = 100
    async with ctx.db.read_session() as s:
        rep = await report.period_report(s, ctx, period, limit=per_page, offset=page * per_page)
    total = rep.get("artists_total", 0)
    return render(
        request,
        "royalties/period.html",
        {
            "report": rep,
            "period": period,
            "page": page,
            "has_next": (page + 1) * per_page < total,
            "rank0": page * per_page,
        },
    )


def setup(app: web.Application) -> None:
    """Install these pages' routes."""
    app.router.add_get("/me/royalties", my_royalties, name="web.royalties.me")
    app.router.add_get(
        "/@{handle:" + HANDLE_PATH + "}/earnings", artist_earnings, name="web.royalties.artist"
    )
    app.router.add_get(
        "/@{handle:" + HANDLE_PATH + "}/earnings.csv",
        artist_earnings_csv,
        name="web.royalties.artist_csv",
    )
    app.router.add_get("/royalties", transparency_index, name="web.royalties")
    app.router.add_get(
        "/royalties/{period:" + PERIOD_PATH + "}",
        transparency_period,
        name="web.royalties.period",
    )
