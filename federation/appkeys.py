"""Federation's piece of the app: its client, directory and key store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .client import FederationClient
    from .delivery import HostHealth, OutgoingCache
    from .directory import RemoteDirectory
    from .intake import Intake
    from .keys import KeyStore


@dataclass
class Federation:
    client: FederationClient
    directory: RemoteDirectory
    keys: KeyStore
    intake: Intake
    outgoing: OutgoingCache
    health: HostHealth
    host_limits: dict = field(default_factory=dict)


FEDERATION: web.AppKey[Federation] = web.AppKey("federation")
