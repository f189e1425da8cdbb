"""The device's credential file (TOML, written by `nycmg device register`)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path


class AgentConfigError(Exception):
    """The credential file is missing or unusable (reported in one line)."""


@dataclass(frozen=True)
class AgentConfig:
    node_url: str
    device_url: str
    batch_url: str
    private_key_pem: str
    venue: str
    name: str


def load_config(path: Path) -> AgentConfig:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise AgentConfigError(f"{path}: no such credential file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise AgentConfigError(f"{path}: not a device credential ({e})") from None
    table = raw.get("device")
    if not isinstance(table, dict):
        raise AgentConfigError(f"{path}: no [device] table; is this a device credential?")
    missing = [k for k in ("node_url", "device_url", "private_key_pem") if not table.get(k)]
    if missing:
        raise AgentConfigError(f"{path}: missing {', '.join(missing)}")
    node_url = str(table["node_url"]).rstrip("/")
    if "PRIVATE KEY" not in str(table["private_key_pem"]):
        raise AgentConfigError(f"{path}: private_key_pem is not a PEM private key")
    return AgentConfig(
        node_url=node_url,
        device_url=str(table["device_url"]),
        batch_url=str(table.get("batch_url") or node_url + "/api/v1/detection/batches"),
        private_key_pem=str(table["private_key_pem"]),
        venue=str(table.get("venue", "")),
        name=str(table.get("name", "")),
    )
