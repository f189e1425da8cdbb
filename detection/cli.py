"""This subsystem's `nycmg` commands (DESIGN.md 3), added by `node/cli.py`:

nycmg device register --data DIR --venue VENUE [--name NAME] [--output FILE]
nycmg device run --config DEVICE.toml --input FILE|- [--format FMT] ...
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"{value} must be positive")
        return number

    return parse


def register(
    sub: Any, commands: dict[tuple[str, str | None], Callable[..., Any]], parser_class: type
) -> None:
    """Add this subsystem's parsers to `sub` and their handlers to `commands`."""
    p = sub.add_parser("device", help="venue detection devices")
    dsub = p.add_subparsers(dest="device_command", required=True, parser_class=parser_class)

    c = dsub.add_parser("register", help="register a venue's device and write its credential")
    c.add_argument("--data", required=True, type=Path, help="the node's data directory")
    c.add_argument("--venue", required=True, help="the venue's uuid, URI or exact name")
    c.add_argument("--name", default="", help="a name for the device (default: numbered)")
    c.add_argument(
        "--output", type=Path, help="credential file to write (default: DATA/devices/UUID.toml)"
    )
    commands[("device", "register")] = cmd_register

    c = dsub.add_parser("run", help="the venue agent: listen, fingerprint, upload")
    c.add_argument("--config", required=True, type=Path, help="the device's credential file")
    c.add_argument("--input", required=True, help="an audio file, a stream URL, or - for stdin")
    c.add_argument(
        "--format",
        default="",
        help="container or raw format for PyAV (e.g. s16le for raw PCM); default: probe",
    )
    c.add_argument("--rate", type=_positive(int), default=44100, help="raw PCM sample rate")
    c.add_argument("--channels", type=_positive(int), default=1, help="raw PCM channels")
    c.add_argument(
        "--window", type=_positive(float), default=10.0, help="seconds per window (default 10)"
    )
    c.add_argument(
        "--hop", type=_positive(float), default=5.0, help="seconds between windows (default 5)"
    )
    c.add_argument("--batch", type=_positive(int), default=50, help="items per upload")
    c.add_argument(
        "--state",
        type=Path,
        help="the agent's SQLite buffer (default: next to the config, CONFIG.agent.sqlite)",
    )
    c.add_argument(
        "--max-backoff",
        type=_positive(float),
        default=60.0,
        help="longest wait between retries while the node is unreachable, in seconds",
    )
    c.add_argument(
        "--give-up-after",
        type=float,
        default=0.0,
        help="exit (items stay buffered) after this many seconds without reaching the node; "
        "0 = keep trying",
    )
    c.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="read a file at this many times real time (1: as if live); default 0, as fast as possible",
    )
    commands[("device", "run")] = cmd_run


def cmd_register(args: argparse.Namespace) -> int:
    from node.cli import _settings, _with_ctx

    from .devices import find_venue, register_device, write_credential

    settings = _settings(args)

    async def run(ctx):
        async with ctx.db.transaction() as s:
            venue = await find_venue(s, args.venue)
            return await register_device(ctx, s, venue, name=args.name, registered_by="cli")

    import asyncio

    device, cred = asyncio.run(_with_ctx(settings, run))
    out = args.output or settings.data_dir / "devices" / f"{device.uuid}.toml"
    path = write_credential(cred, out)
    print(path)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from node.cli import CliError

    from .agent.config import AgentConfigError, load_config
    from .agent.runner import AgentOptions, run_agent

    try:
        config = load_config(args.config)
    except AgentConfigError as e:
        raise CliError(str(e)) from None
    if args.hop > args.window:
        raise CliError("--hop must not be longer than --window (windows would leave gaps)")
    options = AgentOptions(
        input=args.input,
        format=args.format or None,
        rate=args.rate,
        channels=args.channels,
        window_seconds=args.window,
        hop_seconds=args.hop,
        batch_size=args.batch,
        state_path=args.state or args.config.with_name(args.config.name + ".agent.sqlite"),
        max_backoff=args.max_backoff,
        give_up_after=args.give_up_after,
        pace=max(0.0, args.pace),
    )
    import asyncio

    return asyncio.run(run_agent(config, options))
