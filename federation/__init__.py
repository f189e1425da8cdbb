"""ActivityPub federation: discovery, signatures, inbox, outbox and delivery.

`setup(app)` is called by the composition root (node/app.py). It installs
the routes, the content-negotiation middleware, the job handlers, the
outbox subscribers on the event bus, and a `Directory` that can reach other
nodes, so the core's follow and play APIs work across the network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from node.appkeys import CTX
from node.keys import RSA_FILE

from . import inbound  # noqa: F401 - registers the inbound handlers
from .actors import ensure_node_actor
from .appkeys import FEDERATION, Federation
from .client import FederationClient
from .delivery import HostHealth, OutgoingCache, deliver
from .directory import RemoteDirectory
from .discovery import discovery_routes
from .inbox import inbox_routes, process_inbox_item
from .intake import Intake
from .keys import KeyStore
from .outbox import register_outbox
from .routes import ap_routes, negotiation_middleware


def setup(app: web.Application) -> None:
    ctx = app[CTX]
    client = FederationClient(ctx)
    directory = RemoteDirectory(ctx, client)
    fed = Federation(
        client=client,
        directory=directory,
        keys=KeyStore(ctx, directory),
        intake=Intake(ctx),
        outgoing=OutgoingCache(),
        health=HostHealth(ctx),
    )
    app[FEDERATION] = fed
    ctx.directory = directory

    app.router.add_routes(discovery_routes() + ap_routes() + inbox_routes())
    app.middlewares.append(negotiation_middleware)

    ctx.jobs.register("federation.inbox", lambda job: process_inbox_item(ctx, fed, job))
    ctx.jobs.register("federation.deliver", lambda job: deliver(ctx, fed, job))
    register_outbox(ctx)
    app.cleanup_ctx.append(_federation_ctx)


async def _federation_ctx(app: web.Application) -> AsyncIterator[None]:
    ctx, fed = app[CTX], app[FEDERATION]
    actor = await ensure_node_actor(ctx)
    fed.client.node_key = (actor.key_id, (ctx.settings.keys_dir / RSA_FILE).read_text())
    yield
    await fed.intake.close()
    await fed.health.close()
    await fed.client.close()
