"""The console's royalty pages: periods with a Close button, held-back plays, subscriptions, venue fees.

- `/royalties`: the last months (closed ones with their totals, ended ones
  with a Close button), subscriptions granted by hand (a form), the venues'
  licence fees (a form) and how many plays are held back.
- `/royalties/held`: every play held back from royalties, with its reason
  (a fraud rule, a flagged device, an admin), and a Release button.

Every action goes through royalties' services and writes its audit entry.
The clearing pages (statements, settlement, payouts) are admin/clearing.py.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from node.errors import NotFound
from node.models import Account, utcnow
from node.validation import F, Schema
from royalties import close, holds, venues
from royalties.errors import BadPeriod
from royalties.models import RoyaltyPeriod, Subscription
from royalties.money import Money
from royalties.periods import has_ended, period_of, shift
from royalties.subscriptions import MAX_MONTHS, grant

from .audit import record, register_audit_action
from .console import CONSOLE, Done, Section, View

CONSOLE.section(Section("royalties", "Royalties", "admin.royalties", role="curator", order=60))

for _name, _label in (
    ("royalties.close", "Closed a royalty period"),
    ("royalties.release", "Released a held-back play"),
    ("subscription.grant", "Granted a subscription"),
    ("venue.licence", "Set a venue's licence fee"),
):
    register_audit_action(_name, _label)

CloseIn = Schema("ConsoleRoyaltiesClose", F("period", required=True, pattern=r"^\d{4}-\d{2}$"))
ReleaseIn = Schema("ConsoleReleasePlay", F("play", kind="int", required=True, min=1))
GrantIn = Schema(
    "ConsoleSubscriptionGrant",
    F("username", required=True, max_len=64),
    F("amount", kind="int", required=True, min=1, max=10**9),
    F("currency", kind="currency", required=True),
    F("from", pattern=r"^\d{4}-\d{2}$"),
    F("months", kind="int", min=1, max=MAX_MONTHS),
)
LicenceIn = Schema(
    "ConsoleVenueLicence",
    F("venue", required=True, max_len=512, description="uuid, URI or exact name"),
    F("amount", kind="int", required=True, min=0, max=10**12),
    F("currency", kind="currency"),
)
MONTHS_SHOWN = 12


def _money(amount: int, currency: str) -> dict[str, Any]:
    m = Money(int(amount), currency)
    return {"amount_minor": m.amount_minor, "currency": m.currency, "display": m.format()}


@CONSOLE.page(
    "/royalties",
    name="admin.royalties",
    template="royalties.html",
    role="curator",
    section="royalties",
)
async def royalties_page(view: View) -> dict[str, Any]:
    now = utcnow()
    this_month = period_of(now)
    months = [shift(this_month, -i) for i in range(MONTHS_SHOWN)]
    async with view.ctx.db.read_session() as s:
        closed = {
            p.period: p
            for p in (
                await s.scalars(select(RoyaltyPeriod).where(RoyaltyPeriod.period.in_(months)))
            ).all()
        }
        periods = []
        for p in months:
            summary = await close.summary(s, p) if p in closed else None
            periods.append(
                {
                    "period": p,
                    "state": "closed" if summary else ("ended" if has_ended(p, now) else "open"),
                    "closed_at": summary.closed_at.isoformat() if summary else None,
                    "totals": {
                        cur: {
                            k: (_money(v, cur) if k.endswith(("collected", "share", "foundation",
                                "local", "remote", "fees", "refunds")) else v)
                            for k, v in t.items()
                        }
                        for cur, t in (summary.totals.items() if summary else [])
                    },
                }
            )  # fmt: skip
        subs = (
            await s.execute(
                select(Subscription, Account.username)
                .join(Account, Account.id == Subscription.account_id)
                .order_by(Subscription.id.desc())
                .limit(50)
            )
        ).all()
        active = await s.scalar(
            select(func.count()).select_from(Subscription).where(Subscription.status == "active")
        )
        licences = await venues.licences(s)
        _, held = await holds.list_held(s, limit=1)
    return {
        "this_month": this_month,
        "currency": view.ctx.settings.royalties.currency,
        "periods": periods,
        "subscriptions": [
            {
                "username": username,
                "provider": sub.provider,
                "status": sub.status,
                "fee": _money(sub.amount_minor, sub.currency),
                "from": sub.first_period,
                "until": sub.last_period,
            }
            for sub, username in subs
        ],
        "active_subscriptions": int(active or 0),
        "licences": [
            {
                "venue": row.venue_name,
                "uuid": row.venue_uuid,
                "fee": _money(row.fee.amount_minor, row.fee.currency) if row.fee else None,
            }
            for row in licences
        ],
        "held": held,
    }


@CONSOLE.page(
    "/royalties/held",
    name="admin.royalties.held",
    template="royalties_held.html",
    role="curator",
    section="royalties",
)
async def held_page(view: View) -> dict[str, Any]:
    try:
        offset = max(0, int(view.query.get("offset", "0")))
    except ValueError:
        offset = 0
    async with view.ctx.db.read_session() as s:
        rows, total = await holds.list_held(s, limit=100, offset=offset)
    return {
        "total": total,
        "offset": offset,
        "next": view.url("admin.royalties.held", {"offset": offset + 100})
        if offset + 100 < total
        else None,
        "held": [
            {
                "play": r.play_id,
                "uuid": r.play_uuid,
                "track": r.track_uri,
                "artist": r.artist_uri,
                "listener": r.listener_uri,
                "source": r.source,
                "venue_id": r.venue_id,
                "started_at": r.started_at.isoformat(),
                "ms_listened": r.ms_listened,
                "reason": r.reason,
                "held_by": r.held_by,
                "held_at": r.held_at.isoformat(),
            }
            for r in rows
        ],
    }


@CONSOLE.action(
    "/royalties/close", name="admin.royalties.close", back="admin.royalties", body=CloseIn
)
async def close_action(view: View) -> Done:
    period = view.body["period"]
    result = await close.close_period(view.ctx, period, closed_by=view.account.username)
    if not result.already_closed:
        async with view.ctx.db.transaction() as s:
            await record(s, view, "royalties.close", f"period:{period}", {"after": result.totals})
    data = {"period": period, "already_closed": result.already_closed, "totals": result.totals}
    notice = (
        f"{period} was already closed; nothing changed."
        if result.already_closed
        else f"Closed {period}."
    )
    return Done(data, view.url("admin.royalties"), notice)


@CONSOLE.action(
    "/royalties/release-play",
    name="admin.royalties.release",
    back="admin.royalties.held",
    body=ReleaseIn,
)
async def release_action(view: View) -> Done:
    play = view.body["play"]
    async with view.ctx.db.transaction() as s:
        if not await holds.release_play(s, play, view.account.username):
            raise NotFound(f"play {play} is not held back")
        await record(s, view, "royalties.release", f"play:{play}", {"after": {"released": True}})
    return Done(
        {"play": play, "released": True},
        view.url("admin.royalties.held"),
        f"Play {play} released; it counts in its month's close.",
    )


@CONSOLE.action(
    "/royalties/subscriptions/grant",
    name="admin.royalties.grant",
    back="admin.royalties",
    body=GrantIn,
)
async def grant_action(view: View) -> Done:
    b = view.body
    async with view.ctx.db.transaction() as s:
        account = await s.scalar(select(Account).where(Account.username == b["username"]))
        if account is None:
            raise NotFound(f"no user {b['username']!r}")
        try:
            g = await grant(
                s,
                account,
                Money(b["amount"], b["currency"]),
                first_period=b.get("from") or None,
                months=b.get("months") or 1,
                by=view.account.username,
            )
        except ValueError as e:  # a malformed period
            raise BadPeriod(str(e)) from None
        sub = g.subscription
        details = {
            "after": {
                "fee": sub.amount_minor,
                "currency": sub.currency,
                "from": sub.first_period,
                "until": sub.last_period,
            }
        }
        await record(s, view, "subscription.grant", f"user:{account.username}", details)
    fee = Money(sub.amount_minor, sub.currency).format()
    return Done(
        {"username": account.username, "subscription": sub.id, **details["after"]},
        view.url("admin.royalties"),
        f"{account.username} is subscribed at {fee} a month, {sub.first_period} to {sub.last_period}.",
    )


@CONSOLE.action(
    "/royalties/licences", name="admin.royalties.licence", back="admin.royalties", body=LicenceIn
)
async def licence_action(view: View) -> Done:
    b = view.body
    currency = b.get("currency") or view.ctx.settings.royalties.currency
    async with view.ctx.db.transaction() as s:
        venue = await venues.venue_by_ref(s, b["venue"])
        if venue is None:
            raise NotFound(f"no venue {b['venue']!r}")
        fee = Money(b["amount"], currency)
        await venues.set_licence(s, venue, fee)
        await record(
            s,
            view,
            "venue.licence",
            f"venue:{venue.uuid}",
            {"after": {"amount": fee.amount_minor, "currency": fee.currency}},
        )
    text = (
        f"{venue.name}: {fee.format()} a month." if fee.amount_minor else f"{venue.name}: no fee."
    )
    return Done(
        {"venue": venue.uuid, "fee": _money(fee.amount_minor, fee.currency)},
        view.url("admin.royalties"),
        text,
    )
