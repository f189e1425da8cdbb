"""`nycmg clearing ...` and `nycmg payouts ...` (DESIGN.md 3, 7), added by royalties/cli.py.

    nycmg clearing statements --data DIR [YYYY-MM]
    nycmg clearing reissue --data DIR STATEMENT
    nycmg clearing run --data DIR YYYY-MM            # on the clearing-house node
    nycmg clearing transfers --data DIR [YYYY-MM]
    nycmg clearing pay --data DIR TRANSFER [--reference REF]
    nycmg clearing confirm --data DIR TRANSFER
    nycmg payouts run --data DIR [--currency CUR]
    nycmg payouts export --data DIR [--output FILE]
    nycmg payouts mark-paid --data DIR PAYOUT --reference REF

Each writes its rows and queues its messages; the node's worker (`nycmg
serve` or `nycmg worker`) delivers them.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from .cli import _currency, _period


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="the node's data directory")


def register(
    sub: Any, commands: dict[tuple[str, str | None], Callable[..., Any]], parser_class: type
) -> None:
    p = sub.add_parser("clearing", help="the clearing protocol: statements, settlement, transfers")
    csub = p.add_subparsers(dest="clearing_command", required=True, parser_class=parser_class)
    c = csub.add_parser("statements", help="statements sent and received, with their state")
    _data(c)
    c.add_argument("period", nargs="?", type=_period, help="only this month (YYYY-MM)")
    commands[("clearing", "statements")] = cmd_statements
    c = csub.add_parser("reissue", help="reissue a rejected statement (its Listens are resent)")
    _data(c)
    c.add_argument("statement", help="the rejected statement's URI")
    commands[("clearing", "reissue")] = cmd_reissue
    c = csub.add_parser("run", help="net a month and send the settlement (clearing house only)")
    _data(c)
    c.add_argument("period", type=_period, help="the month, YYYY-MM")
    commands[("clearing", "run")] = cmd_run
    c = csub.add_parser("transfers", help="this node's settlement transfers, with their state")
    _data(c)
    c.add_argument("period", nargs="?", type=_period, help="only this month (YYYY-MM)")
    commands[("clearing", "transfers")] = cmd_transfers
    c = csub.add_parser("pay", help="pay a transfer we owe (Stripe, or record an external one)")
    _data(c)
    c.add_argument("transfer", help="the transfer's URI")
    c.add_argument("--reference", help="the external payment's reference (ledger provider)")
    commands[("clearing", "pay")] = cmd_pay
    c = csub.add_parser("confirm", help="confirm a transfer to us arrived")
    _data(c)
    c.add_argument("transfer", help="the transfer's URI")
    commands[("clearing", "confirm")] = cmd_confirm

    p = sub.add_parser("payouts", help="pay artists from their ledger balances")
    psub = p.add_subparsers(dest="payouts_command", required=True, parser_class=parser_class)
    c = psub.add_parser("run", help="book a payout for every artist over the threshold")
    _data(c)
    c.add_argument("--currency", type=_currency, help="default: the royalties.currency setting")
    commands[("payouts", "run")] = cmd_payouts_run
    c = psub.add_parser("export", help="pending payouts as CSV")
    _data(c)
    c.add_argument("--output", type=Path, help="write to FILE instead of standard output")
    commands[("payouts", "export")] = cmd_payouts_export
    c = psub.add_parser("mark-paid", help="record that a pending payout was paid")
    _data(c)
    c.add_argument("payout", type=int, help="the payout's number")
    c.add_argument("--reference", required=True, help="the payment's reference")
    commands[("payouts", "mark-paid")] = cmd_payouts_mark_paid


def _run(args: argparse.Namespace, fn: Callable[[Any], Any]) -> Any:
    from node.cli import _settings, _with_ctx

    return asyncio.run(_with_ctx(_settings(args), fn))


def cmd_statements(args: argparse.Namespace) -> int:
    from .clearing_models import ClearingStatement

    async def fn(ctx):
        async with ctx.db.read_session() as s:
            q = select(ClearingStatement).order_by(ClearingStatement.id)
            if args.period:
                q = q.where(ClearingStatement.period == args.period)
            return (await s.scalars(q)).all()

    for r in _run(args, fn):
        other = r.recipient_uri if r.role == "out" else r.issuer_uri
        print(
            f"{r.period} {r.role:4} {r.state:10} {r.total_minor:>10} {r.currency} {other} {r.uri}"
        )
    return 0


def cmd_reissue(args: argparse.Namespace) -> int:
    from .statements import reissue

    async def fn(ctx):
        async with ctx.db.transaction() as s:
            return (await reissue(ctx, s, args.statement)).uri

    print(f"reissued as {_run(args, fn)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .clearing import run

    async def fn(ctx):
        return await run(ctx, args.period)

    row = _run(args, fn)
    doc = row.document
    print(f"settlement {row.uri} ({row.state}): {len(doc['statements'])} statements")
    for t in doc["transfers"]:
        print(f"  {t['payer']} pays {t['payee']} {t['amount']} {t['currency']}  {t['id']}")
    for c in doc["carried"]:
        print(f"  carried forward: {c['issuer']} -> {c['recipient']} {c['artist']} {c['amount']}")
    return 0


def cmd_transfers(args: argparse.Namespace) -> int:
    from .clearing_models import ClearingTransfer

    async def fn(ctx):
        async with ctx.db.read_session() as s:
            q = select(ClearingTransfer).order_by(ClearingTransfer.id)
            if args.period:
                q = q.where(ClearingTransfer.period == args.period)
            return (await s.scalars(q)).all()

    for t in _run(args, fn):
        print(
            f"{t.period} {t.state:9} {t.payer_uri} -> {t.payee_uri} {t.amount_minor} "
            f"{t.currency} {t.reference or ''} {t.uri}"
        )
    return 0


def cmd_pay(args: argparse.Namespace) -> int:
    from node.cli import CliError

    from .payouts import pay_transfer

    async def fn(ctx):
        if ctx.settings.royalties.provider == "ledger" and not args.reference:
            raise CliError("with the ledger provider, pass --reference of the payment you made")
        return await pay_transfer(ctx, args.transfer, args.reference)

    t = _run(args, fn)
    print(f"{t.uri}: {t.state} ({t.reference})")
    return 0


def cmd_confirm(args: argparse.Namespace) -> int:
    from .clearing import confirm

    async def fn(ctx):
        async with ctx.db.transaction() as s:
            return await confirm(ctx, s, args.transfer)

    t = _run(args, fn)
    print(f"{t.uri}: {t.state}")
    return 0


def cmd_payouts_run(args: argparse.Namespace) -> int:
    from .payouts import create_payouts

    async def fn(ctx):
        async with ctx.db.transaction() as s:
            made = await create_payouts(ctx, s, args.currency or ctx.settings.royalties.currency)
            return [(p.id, p.artist_uri, p.amount_minor, p.currency) for p in made]

    made = _run(args, fn)
    for pid, artist, amount, cur in made:
        print(f"payout {pid}: {artist} {amount} {cur}")
    print(f"{len(made)} payout(s) booked")
    return 0


def cmd_payouts_export(args: argparse.Namespace) -> int:
    from .payouts import export_csv, pending

    async def fn(ctx):
        async with ctx.db.read_session() as s:
            return export_csv(await pending(s))

    text = _run(args, fn)
    if args.output:
        args.output.write_text(text)
        print(args.output)
    else:
        print(text, end="")
    return 0


def cmd_payouts_mark_paid(args: argparse.Namespace) -> int:
    from .payouts import mark_paid

    async def fn(ctx):
        async with ctx.db.transaction() as s:
            p = await mark_paid(s, args.payout, reference=args.reference, by="cli")
            return p.id, p.state, p.reference

    pid, state, ref = _run(args, fn)
    print(f"payout {pid}: {state} ({ref})")
    return 0
