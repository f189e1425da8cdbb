"""This subsystem's `nycmg` commands (DESIGN.md 3), added by `node/cli.py`.

    nycmg royalties close --data DIR YYYY-MM
    nycmg royalties licence --data DIR VENUE --amount MINOR [--currency CUR]
    nycmg subscription grant --data DIR USERNAME --amount MINOR --currency CUR [--from YYYY-MM] [--months N]

The clearing protocol's own commands (`nycmg clearing ...`) live in
`royalties/clearing_cli.py` when it exists; `register` adds them too.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .periods import parse_period


def _period(value: str) -> str:
    try:
        parse_period(value)
    except Exception:
        raise argparse.ArgumentTypeError(f"{value!r} is not a period (YYYY-MM)") from None
    return value


def _minor(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a whole number of minor units (cents: 999 for 9.99)"
        ) from None
    if n < 0:
        raise argparse.ArgumentTypeError("amounts are not negative")
    return n


def _currency(value: str) -> str:
    from .money import normalize_currency

    try:
        return normalize_currency(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a currency code") from None


def register(
    sub: Any, commands: dict[tuple[str, str | None], Callable[..., Any]], parser_class: type
) -> None:
    """Add this subsystem's parsers to `sub` and their handlers to `commands`."""
    p = sub.add_parser("royalties", help="royalty periods: close a month, venue licence fees")
    rsub = p.add_subparsers(dest="royalties_command", required=True, parser_class=parser_class)
    c = rsub.add_parser("close", help="close a month: UCPS split, payables, ledger (idempotent)")
    c.add_argument("--data", required=True, type=Path, help="the node's data directory")
    c.add_argument("period", type=_period, help="the month, YYYY-MM (it must have ended)")
    commands[("royalties", "close")] = cmd_close
    c = rsub.add_parser("licence", help="set a venue's monthly licence fee (0 removes it)")
    c.add_argument("--data", required=True, type=Path, help="the node's data directory")
    c.add_argument("venue", help="the venue's uuid, URI or exact name")
    c.add_argument("--amount", required=True, type=_minor, help="minor units a month (cents)")
    c.add_argument("--currency", type=_currency, help="default: the royalties.currency setting")
    commands[("royalties", "licence")] = cmd_licence

    p = sub.add_parser("subscription", help="fans' subscriptions")
    ssub = p.add_subparsers(dest="subscription_command", required=True, parser_class=parser_class)
    c = ssub.add_parser("grant", help="grant a subscription by hand (the ledger provider)")
    c.add_argument("--data", required=True, type=Path, help="the node's data directory")
    c.add_argument("username", help="the fan's username")
    c.add_argument("--amount", required=True, type=_minor, help="minor units a month (999 = 9.99)")
    c.add_argument("--currency", required=True, type=_currency, help="ISO 4217 code, e.g. USD")
    c.add_argument("--from", dest="first", type=_period, help="first month (default: this one)")
    c.add_argument("--months", type=int, default=1, help="how many months (default 1)")
    commands[("subscription", "grant")] = cmd_grant

    # The clearing protocol's commands, when that part is installed.
    if importlib.util.find_spec("royalties.clearing_cli") is not None:
        importlib.import_module("royalties.clearing_cli").register(sub, commands, parser_class)


def cmd_close(args: argparse.Namespace) -> int:
    import asyncio

    from tqdm import tqdm

    from node.cli import _settings, _with_ctx

    from .close import close_period
    from .money import Money

    settings = _settings(args)

    async def run(ctx):
        bar = tqdm(unit="subscriber", desc=f"closing {args.period}", disable=None)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            return await close_period(ctx, args.period, closed_by="cli", progress=progress)
        finally:
            bar.close()

    result = asyncio.run(_with_ctx(settings, run))
    if result.already_closed:
        print(f"{args.period} was already closed; nothing changed")
    for cur, t in sorted(result.totals.items()):

        def m(key: str, cur: str = cur, t: dict = t) -> str:
            return Money(t[key], cur).format()

        print(
            f"{args.period} {cur}: collected {m('collected')}, artists here "
            f"{m('artists_local')}, artists on other nodes {m('artists_remote')}, "
            f"node {m('node_share')}, foundation {m('foundation')}, venue fees "
            f"{m('venue_fees')}; {t['subscribers']} subscribers, "
            f"{t['qualified_plays']} qualified plays"
        )
    return 0


def cmd_licence(args: argparse.Namespace) -> int:
    import asyncio

    from node.cli import CliError, _settings, _with_ctx

    from .money import Money
    from .venues import set_licence, venue_by_ref

    settings = _settings(args)
    currency = args.currency or settings.royalties.currency

    async def run(ctx) -> str:
        async with ctx.db.transaction() as s:
            venue = await venue_by_ref(s, args.venue)
            if venue is None:
                raise CliError(f"no venue {args.venue!r}")
            await set_licence(s, venue, Money(args.amount, currency))
            return venue.name

    name = asyncio.run(_with_ctx(settings, run))
    fee = Money(args.amount, currency)
    print(f"{name}: licence fee {fee.format()} a month" if args.amount else f"{name}: no fee")
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    import asyncio

    from sqlalchemy import select

    from node.cli import CliError, _settings, _with_ctx
    from node.models import Account

    from .money import Money
    from .subscriptions import MAX_MONTHS, grant

    if not 1 <= args.months <= MAX_MONTHS:
        raise CliError(f"--months must be 1..{MAX_MONTHS}")
    if args.amount <= 0:
        raise CliError("--amount must be positive")
    settings = _settings(args)

    async def run(ctx):
        async with ctx.db.transaction() as s:
            account = (
                await s.execute(select(Account).where(Account.username == args.username))
            ).scalar_one_or_none()
            if account is None:
                raise CliError(f"no user {args.username!r}")
            return await grant(
                s,
                account,
                Money(args.amount, args.currency),
                first_period=args.first,
                months=args.months,
                by="cli",
            )

    g = asyncio.run(_with_ctx(settings, run))
    sub = g.subscription
    months = f"{sub.first_period}" + (
        f" to {sub.last_period}" if sub.last_period != sub.first_period else ""
    )
    fee = Money(sub.amount_minor, sub.currency).format()
    print(f"{args.username}: subscribed at {fee} a month, {months}")
    return 0
