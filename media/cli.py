"""This subsystem's `nycmg` commands (DESIGN.md 3), added by `node/cli.py`:

nycmg import --data DIR PATH --artist HANDLE [--transcode]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def register(
    sub: Any, commands: dict[tuple[str, str | None], Callable[..., Any]], parser_class: type
) -> None:
    """Add this subsystem's parsers to `sub` and their handlers to `commands`."""
    p = sub.add_parser(
        "import",
        help="import a folder of masters for an artist (releases grouped by album tags)",
    )
    p.add_argument("--data", required=True, type=Path, help="the node's data directory")
    p.add_argument("path", type=Path, help="a folder (walked recursively) or one audio file")
    p.add_argument("--artist", required=True, help="the local artist's handle")
    p.add_argument(
        "--transcode",
        action="store_true",
        help="transcode the new tracks now, here, instead of leaving them to the node's worker",
    )
    commands[("import", None)] = cmd_import


def cmd_import(args: argparse.Namespace) -> int:
    import asyncio

    from node.cli import CliError, _settings, _with_ctx

    if not args.path.exists():
        raise CliError(f"{args.path} does not exist")
    settings = _settings(args)

    async def run(ctx: Any) -> int:
        from tqdm import tqdm

        from node.jobs import Worker

        from .imports import find_audio, import_folder
        from .pipeline import JOB_KIND, close_pool
        from .storage import close_storage

        try:
            total = len(find_audio(args.path))
            with tqdm(total=total, unit="file", desc="reading", file=sys.stderr) as bar:

                def step(name: str) -> None:
                    bar.set_postfix_str(name[-40:], refresh=False)
                    bar.update(1)

                report = await import_folder(ctx, args.path, args.artist, step)
            for path, why in report.skipped:
                print(f"skipped {path}: {why}", file=sys.stderr)
            print(
                f"imported {len(report.created)} tracks"
                f" ({len(report.releases)} new releases), {report.already} already imported,"
                f" {len(report.skipped)} skipped"
            )
            if args.transcode and report.created:
                # This process works as the node's worker until the queue is
                # idle (other due jobs, such as search indexing, run too).
                worker = Worker(ctx.db, ctx.jobs, concurrency=1)
                bar = tqdm(
                    total=len(report.created), unit="track", desc="transcoding", file=sys.stderr
                )
                with bar:
                    for _ in range(20 * len(report.created) + 100):
                        jobs = await worker.claim(1)
                        if not jobs:
                            break
                        await worker.run_one(jobs[0])
                        if jobs[0].kind == JOB_KIND:
                            bar.update(1)
            elif report.created:
                print("the node's worker transcodes them (or run again with --transcode)")
            return 0
        finally:
            await asyncio.to_thread(close_pool, ctx)
            await close_storage(ctx)

    return asyncio.run(_with_ctx(settings, run))
