"""Setting up a node's data directory (`nycmg init`) and opening a context for CLI work."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from .config import CONFIG_FILE, Settings, load_settings, write_config
from .context import NodeContext
from .db import migrate, open_database
from .errors import ConfigError
from .keys import ensure_node_keys


def init_data_dir(
    data_dir: Path,
    *,
    domain: str | None = None,
    scheme: str | None = None,
    database_url: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Settings:
    """Write DATA/nycmg.toml and the node keys; refuses to overwrite an existing node."""
    data_dir = data_dir.expanduser().resolve()
    if (data_dir / CONFIG_FILE).exists():
        raise ConfigError(
            f"{data_dir} already holds a node; use `nycmg migrate --data {data_dir}` to upgrade it"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {"node.secret_key": secrets.token_hex(32)}
    if domain:
        values["node.domain"] = domain
        host, _, port = domain.rpartition(":")
        if host and port.isdigit():
            values["server.port"] = int(port)
    if scheme:
        values["node.scheme"] = scheme
    if database_url:
        values["database.url"] = database_url
    values.update(extra or {})
    # Validate before writing anything, so a bad flag leaves no half-made node.
    load_settings(data_dir, environ={}, overrides=values, require_file=False)
    write_config(data_dir, values)
    settings = load_settings(data_dir)
    ensure_node_keys(settings.keys_dir)
    for sub in ("uploads", "media"):
        (data_dir / sub).mkdir(exist_ok=True)
    return settings


@asynccontextmanager
async def node_context(
    settings: Settings, *, apply_migrations: bool = False
) -> AsyncIterator[NodeContext]:
    """A context with the database open and every subscriber wired, for CLI commands."""
    db = open_database(settings.database_url, settings.database.pool_size, settings.database.echo)
    try:
        if apply_migrations:
            await migrate(db)
        yield NodeContext(settings=settings, db=db)
    finally:
        await db.dispose()
