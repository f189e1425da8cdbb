"""WebFinger (RFC 7033) and NodeInfo 2.0/2.1: how other servers find us."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import func, select

from node.appkeys import CTX
from node.errors import BadRequest, NotFound
from node.models import Account, Actor, Play, Release, Track

from .actors import NODE_HANDLE
from .vocab import ACTIVITY_JSON

SOFTWARE_VERSION = "0.1.0"


async def webfinger(request: web.Request) -> web.Response:
    ctx = request.config_dict[CTX]
    resource = request.query.get("resource", "").strip()
    if not resource:
        raise BadRequest("resource is required")
    domain = ctx.domain.lower()
    async with ctx.db.read_session() as s:
        if resource.startswith("acct:"):
            handle, _, host = resource[5:].lstrip("@").partition("@")
            if host.lower() != domain:
                raise NotFound("not a user of this node")
            if handle.lower() in (domain, NODE_HANDLE):  # the instance actor, Mastodon-style
                actor = await s.scalar(select(Actor).where(Actor.uri == ctx.urls.node_actor()))
            else:
                actor = await s.scalar(
                    select(Actor).where(
                        Actor.handle == handle.lower(),
                        Actor.domain == ctx.domain,
                        Actor.local.is_(True),
                    )
                )
        elif resource.startswith(("http://", "https://")):
            actor = await s.scalar(
                select(Actor).where(Actor.uri == resource, Actor.local.is_(True))
            )
            if actor is None:
                actor = await s.scalar(
                    select(Actor).where(Actor.url == resource, Actor.local.is_(True))
                )
        else:
            raise BadRequest("resource must be acct:user@host or a URL")
    if actor is None:
        raise NotFound("no such user")
    subject = f"acct:{actor.handle}@{ctx.domain}"
    body = {
        "subject": subject,
        "aliases": [actor.uri] + ([actor.url] if actor.url and actor.url != actor.uri else []),
        "links": [
            {"rel": "self", "type": ACTIVITY_JSON, "href": actor.uri},
            {
                "rel": "http://webfinger.net/rel/profile-page",
                "type": "text/html",
                "href": actor.url or actor.uri,
            },
        ],
    }
    return web.json_response(
        body, content_type="application/jrd+json", headers={"Access-Control-Allow-Origin": "*"}
    )


async def nodeinfo_index(request: web.Request) -> web.Response:
    base = request.config_dict[CTX].settings.base_url
    return web.json_response(
        {
            "links": [
                {
                    "rel": "http://nodeinfo.diaspora.software/ns/schema/2.0",
                    "href": f"{base}/nodeinfo/2.0",
                },
                {
                    "rel": "http://nodeinfo.diaspora.software/ns/schema/2.1",
                    "href": f"{base}/nodeinfo/2.1",
                },
                {
                    "rel": "https://www.w3.org/ns/activitystreams#Application",
                    "href": f"{base}/actor",
                },
            ]
        }
    )


async def nodeinfo(request: web.Request) -> web.Response:
    ctx = request.config_dict[CTX]
    version = request.match_info["version"]
    async with ctx.db.read_session() as s:
        users = await s.scalar(
            select(func.count()).select_from(Account).where(Account.disabled.is_(False))
        )
        releases = await s.scalar(
            select(func.count())
            .select_from(Release)
            .where(Release.local.is_(True), Release.state == "published")
        )
        tracks = await s.scalar(
            select(func.count()).select_from(Track).where(Track.local.is_(True))
        )
        plays = await s.scalar(select(func.count()).select_from(Play))
        artists = await s.scalar(
            select(func.count())
            .select_from(Actor)
            .where(Actor.local.is_(True), Actor.is_artist.is_(True))
        )
    software = {"name": "nycmg", "version": SOFTWARE_VERSION}
    if version == "2.1":
        software["repository"] = "https://nycmg.org/source"
        software["homepage"] = "https://nycmg.org"
    body = {
        "version": version,
        "software": software,
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": ctx.settings.node.open_registration,
        "usage": {"users": {"total": users}, "localPosts": releases},
        "metadata": {
            "nodeName": ctx.settings.node.name,
            "nodeDescription": ctx.settings.node.description,
            "actorId": ctx.urls.node_actor(),
            "clearing_house": ctx.settings.royalties.clearing_house or None,
            "boroughs": ctx.settings.node.boroughs,
            "library": {"artists": artists, "tracks": tracks, "plays": plays},
        },
    }
    profile = f"http://nodeinfo.diaspora.software/ns/schema/{version}#"
    return web.json_response(
        body, content_type="application/json", headers={"Content-Profile": profile}
    )


def discovery_routes() -> list[web.RouteDef]:
    return [
        web.get("/.well-known/webfinger", webfinger, name="ap.webfinger"),
        web.get("/.well-known/nodeinfo", nodeinfo_index, name="ap.nodeinfo_index"),
        web.get("/nodeinfo/{version:2\\.[01]}", nodeinfo, name="ap.nodeinfo"),
    ]
