"""The `nycmg` command (DESIGN.md 3). Errors are one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from .config import CONFIG_FILE, load_settings
from .errors import NodeError
from .gc_tuning import tune_for_server

EXIT_USAGE = 2
EXIT_ERROR = 1


class CliError(Exception):
    """A failure to report in one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        print(f"nycmg: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="the node's data directory")


def _port(value: str) -> int:
    """A TCP port, refused by argparse (one line) rather than by bind() (a traceback)."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 1 and 65535")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nycmg", description="A federated home for local music scenes.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("init", help="create a node's data directory, keys and database")
    _data(p)
    p.add_argument("--domain", help="public HOST[:PORT], part of every actor URI")
    p.add_argument(
        "--scheme", choices=["http", "https"], help="scheme of public URLs (default: http)"
    )
    p.add_argument("--database-url", help="postgresql+psycopg://... (default: SQLite in DATA)")
    p.add_argument("--admin", metavar="USER:PASSWORD", help="also create an admin account")
    p.add_argument("--name", help="the node's display name")

    p = sub.add_parser("serve", help="run the node (web, API, federation, and the worker)")
    _data(p)
    p.add_argument("--host", help="address to bind (default: the server.host setting)")
    p.add_argument("--port", type=_port, help="port to bind (default: the server.port setting)")
    p.add_argument(
        "--no-worker", action="store_true", help="leave jobs to `nycmg worker` processes"
    )

    p = sub.add_parser("worker", help="run a job worker without serving HTTP")
    _data(p)

    p = sub.add_parser("migrate", help="apply database migrations")
    _data(p)

    p = sub.add_parser("user", help="manage accounts")
    usub = p.add_subparsers(dest="user_command", required=True, parser_class=_Parser)
    c = usub.add_parser("create", help="create an account")
    _data(c)
    c.add_argument("username", help="2-30 lowercase letters, digits and _")
    c.add_argument("--password", required=True, help="at least 8 characters")
    c.add_argument(
        "--role", choices=["fan", "artist", "curator", "admin"], default="fan", help="default: fan"
    )
    c.add_argument("--email", help="optional; unique per node")
    c.add_argument("--name", help="display name (default: the username)")
    c.add_argument("--borough", help="for artists: one of the node.boroughs setting")
    c = usub.add_parser("role", help="change an account's role")
    _data(c)
    c.add_argument("username")
    c.add_argument("role", choices=["fan", "artist", "curator", "admin"])
    c = usub.add_parser("list", help="list accounts")
    _data(c)

    p = sub.add_parser("search", help="the search index")
    ssub = p.add_subparsers(dest="search_command", required=True, parser_class=_Parser)
    c = ssub.add_parser("reindex", help="rebuild the index from the database, with a progress bar")
    _data(c)

    p = sub.add_parser("check", help="check config, database, storage, keys and clock")
    _data(p)

    p = sub.add_parser("demo", help="start a local network of nodes with seeded music")
    p.add_argument("--nodes", type=int, default=3, help="how many nodes (1-9)")
    p.add_argument(
        "--base-port", type=int, default=8101, help="the first node's port; the others follow"
    )
    p.add_argument(
        "--data", type=Path, help="where the demo nodes live (default: a temporary folder)"
    )
    p.add_argument("--seed-only", action="store_true", help="seed, print, and exit (for tests)")
    _subsystem_commands(sub)
    return parser


def _subsystem_commands(sub: Any) -> None:
    """Subsystems add their commands (`import`, `royalties`, `device`...) here.

    Each `SUBSYSTEM.cli.register(sub, commands, parser_class)` adds its parsers
    and its `(command, subcommand) -> handler` entries; the composition root is
    the one place that knows them all.
    """
    import detection.cli
    import media.cli
    import royalties.cli

    for module in (media.cli, royalties.cli, detection.cli):
        module.register(sub, COMMANDS, _Parser)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (also when argparse refuses the
    arguments, so tests and scripts can call it in-process)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2), already printed
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    handler = COMMANDS[(args.command, getattr(args, f"{args.command}_command", None))]
    try:
        result = handler(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except (CliError, NodeError) as e:
        detail = getattr(e, "detail", None) or str(e)
        print(f"nycmg: {detail}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        print(f"nycmg: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_ERROR
    except SQLAlchemyError as e:  # an unreachable or refusing database is bad input, not a bug
        print(f"nycmg: database error: {_first_line(e)}", file=sys.stderr)
        return EXIT_ERROR


def _first_line(e: BaseException) -> str:
    """The driver's own message (psycopg's first line, say), without SQLAlchemy's footer."""
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}".rstrip(": ")


def _settings(args: argparse.Namespace, **overrides: Any):
    data = args.data
    if not data.exists():
        raise CliError(f"{data} does not exist; run `nycmg init --data {data}` first")
    return load_settings(data, overrides={k: v for k, v in overrides.items() if v is not None})


def _app(settings, worker: bool = False):
    from .app import create_app

    return create_app(settings, worker=worker)


async def _with_ctx(settings, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `fn(ctx)` with the node fully wired (subscribers registered) but not serving."""
    app = _app(settings)
    from .appkeys import CTX

    ctx = app[CTX]
    try:
        return await fn(ctx)
    finally:
        await ctx.db.dispose()


def cmd_init(args: argparse.Namespace) -> int:
    from .bootstrap import init_data_dir
    from .db import migrate
    from .services.accounts import check_new_account

    admin = None
    if args.admin:
        user, sep, password = args.admin.partition(":")
        if not sep or not user or not password:
            raise CliError("--admin takes USER:PASSWORD")
        # Refuse a bad admin before anything is written, so no half-made node is left.
        problems = check_new_account(user.strip().lower(), password, "admin")
        if problems:
            raise CliError(
                "--admin: " + "; ".join(f"{p['field']} {p['message']}" for p in problems)
            )
        admin = (user, password)
    extra = {"node.name": args.name} if args.name else None
    settings = init_data_dir(
        args.data,
        domain=args.domain,
        scheme=args.scheme,
        database_url=args.database_url,
        extra=extra,
    )

    async def setup(ctx) -> None:
        await migrate(ctx.db)
        if admin:
            from .services.accounts import create_account

            async with ctx.db.transaction() as s:
                await create_account(ctx, s, admin[0], admin[1], "admin")

    try:
        asyncio.run(_with_ctx(settings, setup))
    except BaseException:
        # The config is written last-in-first-out: without it a corrected
        # `nycmg init` can run again (keys are kept, migrations resume).
        (settings.data_dir / CONFIG_FILE).unlink(missing_ok=True)
        raise
    print(f"initialised {settings.data_dir} for {settings.base_url}")
    if admin:
        print(f"admin account: {admin[0]}")
    print(f"start it with: nycmg serve --data {args.data}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from .db import current_revision, migrate

    settings = _settings(args)

    async def run(ctx) -> str | None:
        await migrate(ctx.db)
        return await current_revision(ctx.db)

    print(f"database at revision {asyncio.run(_with_ctx(settings, run))}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from .logs import setup_logging

    settings = _settings(args, **{"server.host": args.host, "server.port": args.port})
    setup_logging(settings.log.level, settings.log.format)
    app = _app(settings, worker=not args.no_worker and settings.server.worker)
    asyncio.run(_check_schema(settings))
    logging.getLogger("nycmg").info(
        "serving",
        extra={"url": settings.base_url, "bind": f"{settings.server.host}:{settings.server.port}"},
    )
    ready = (
        f"nycmg serving {settings.base_url} on http://{settings.server.host}:{settings.server.port}"
    )
    tune_for_server()
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        # Called once the socket listens, so the line never announces a port that failed.
        print=lambda _aiohttp_banner: print(ready, flush=True),
        access_log=None,
    )
    return 0


async def _check_schema(settings) -> None:
    from .db import current_revision, head_revision, open_database

    db = open_database(settings.database_url)
    try:
        current = await current_revision(db)
    except Exception as e:  # noqa: BLE001 - report any connection failure in one line
        raise CliError(
            f"cannot reach the database: {type(e).__name__}: {e}".splitlines()[0]
        ) from None
    finally:
        await db.dispose()
    if current != head_revision():
        raise CliError(
            f"the database is at revision {current}, not {head_revision()}; run `nycmg migrate`"
        )


def cmd_worker(args: argparse.Namespace) -> int:
    from aiohttp import web

    from .logs import setup_logging

    settings = _settings(args)
    setup_logging(settings.log.level, settings.log.format)
    asyncio.run(_check_schema(settings))

    async def run() -> None:
        runner = web.AppRunner(_app(settings, worker=True))
        tune_for_server()
        await runner.setup()  # starts the worker's cleanup context; no socket is opened
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"nycmg worker for {settings.base_url} (pid {os.getpid()})", flush=True)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(run())
    return 0


def cmd_user_create(args: argparse.Namespace) -> int:
    from .services.accounts import create_account

    settings = _settings(args)

    async def run(ctx) -> None:
        async with ctx.db.transaction() as s:
            await create_account(
                ctx,
                s,
                args.username,
                args.password,
                args.role,
                email=args.email,
                name=args.name,
                borough=args.borough,
            )

    asyncio.run(_with_ctx(settings, run))
    print(f"created {args.role} {args.username.lower()}@{settings.node.domain}")
    return 0


def cmd_user_role(args: argparse.Namespace) -> int:
    from .services.accounts import get_account, set_role

    settings = _settings(args)

    async def run(ctx) -> None:
        async with ctx.db.transaction() as s:
            await set_role(ctx, s, await get_account(s, args.username), args.role)

    asyncio.run(_with_ctx(settings, run))
    print(f"{args.username} is now {args.role}")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from .models import Account

    settings = _settings(args)

    async def run(ctx) -> list[Account]:
        async with ctx.db.read_session() as s:
            return list((await s.scalars(select(Account).order_by(Account.username))).all())

    for a in asyncio.run(_with_ctx(settings, run)):
        print(f"{a.username}\t{a.role}\t{'disabled' if a.disabled else 'active'}")
    return 0


def cmd_search_reindex(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .search.reindex import reindex

    settings = _settings(args)

    async def run(ctx) -> int:
        bar = tqdm(unit="doc", desc="reindexing", disable=None)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            return await reindex(ctx, settings.search_dir, progress=progress)
        finally:
            bar.close()

    n = asyncio.run(_with_ctx(settings, run))
    print(f"indexed {n} documents")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .checks import run_checks

    settings = _settings(args)
    results = asyncio.run(run_checks(settings))
    failed = 0
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        failed += not ok
    if failed:
        raise CliError(f"{failed} check(s) failed")
    return 0


def demo_network_steps() -> list[tuple[str, Any]]:
    """The demo's steps across nodes: the core's, then the subsystems' own
    (here, in the composition root, because the core may not import them)."""
    from detection.demo import venue_devices
    from media.demo import give_tracks_audio
    from royalties.clearing_demo import close_and_clear

    from .demo import NETWORK_STEPS

    return [
        *NETWORK_STEPS,
        ("audio", give_tracks_audio),
        ("venue devices", venue_devices),
        ("royalties", close_and_clear),
    ]


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .logs import setup_logging

    # Quiet by default: the banner is the interface; NYCMG_LOG_LEVEL=INFO shows the nodes' logs.
    level = os.environ.get("NYCMG_LOG_LEVEL", "WARNING").upper()
    setup_logging(level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "WARNING", "text")

    if not 1 <= args.nodes <= 9:
        raise CliError("--nodes must be between 1 and 9")
    if not 1024 <= args.base_port <= 65000:
        raise CliError("--base-port must be between 1024 and 65000")
    return asyncio.run(
        run_demo(
            args.nodes,
            args.base_port,
            args.data,
            seed_only=args.seed_only,
            network_steps=demo_network_steps(),
        )
    )


COMMANDS: dict[tuple[str, str | None], Callable[[argparse.Namespace], Any]] = {
    ("init", None): cmd_init,
    ("serve", None): cmd_serve,
    ("worker", None): cmd_worker,
    ("migrate", None): cmd_migrate,
    ("user", "create"): cmd_user_create,
    ("user", "role"): cmd_user_role,
    ("user", "list"): cmd_user_list,
    ("search", "reindex"): cmd_search_reindex,
    ("check", None): cmd_check,
    ("demo", None): cmd_demo,
}


if __name__ == "__main__":
    sys.exit(main())
