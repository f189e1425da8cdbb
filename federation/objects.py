"""Catalog objects as ActivityPub, both ways.

Tracks are `Audio` (the shape Funkwhale uses), releases are `Album` with
their tracks embedded, events are `Event` with a `Place`. A published
release also travels as a `Note` (a post with a link and its audio) so that
Mastodon followers see it; nycmg nodes read the release embedded in it.
"""

from __future__ import annotations

import re
from datetime import datetime
from html import escape
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.context import NodeContext
from node.models import Actor, Comment, Event, Release, Track, Venue, utcnow

from .errors import BadActivity
from .sanitize import clean_html, clean_text
from .vocab import PUBLIC, as_list, host_of, id_of, text_of, type_of, with_context


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def duration_iso(ms: int | None) -> str | None:
    if not ms:
        return None
    seconds = ms // 1000
    return f"PT{seconds // 60}M{seconds % 60}S" if seconds >= 60 else f"PT{seconds}S"


_DURATION = re.compile(r"^P(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)$")


def parse_duration_ms(value: Any) -> int | None:
    """ISO 8601 (`PT3M21S`, ours and Mastodon's) or plain seconds (Funkwhale's)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and 0 < value < 86400:
        return int(value * 1000)
    if isinstance(value, str):
        m = _DURATION.match(value.strip())
        if m and any(m.groups()):
            h, mi, s = (float(x) if x else 0.0 for x in m.groups())
            total = (h * 3600 + mi * 60 + s) * 1000
            return int(total) if 0 < total < 86_400_000 else None
    return None


def parse_time(value: Any) -> datetime | None:
    from node.validation import parse_datetime

    try:
        return parse_datetime(value)
    except ValueError:
        return None


def _audience(actor: Actor) -> dict[str, Any]:
    return {"to": [PUBLIC], "cc": [actor.followers_url] if actor.followers_url else []}


def stream_links(ctx: NodeContext, track: Track) -> list[dict[str, Any]]:
    """Audio links exist once the media pipeline has produced files."""
    links = []
    for fmt, mime in (("opus", "audio/ogg"), ("mp3_320", "audio/mpeg")):
        if fmt in (track.media or {}).get("files", {}):
            links.append(
                {"type": "Link", "mediaType": mime, "href": f"{track.uri}/stream?format={fmt}"}
            )
    return links


def track_to_ap(ctx: NodeContext, track: Track, release: Release | None = None) -> dict[str, Any]:
    return {
        "id": track.uri,
        "type": "Audio",
        "name": track.title,
        "attributedTo": track.artist.uri,
        "url": [
            {"type": "Link", "mediaType": "text/html", "href": track.uri},
            *stream_links(ctx, track),
        ],
        "duration": duration_iso(track.duration_ms),
        "isrc": track.isrc,
        "genres": list(track.genres),
        "release": release.uri if release else None,
        "position": track.position,
        "published": iso(track.created_at),
        **_audience(track.artist),
    }


def release_to_ap(ctx: NodeContext, release: Release) -> dict[str, Any]:
    return {
        "id": release.uri,
        "type": "Album",
        "name": release.title,
        "attributedTo": release.artist.uri,
        "content": "".join(
            f"<p>{escape(p)}</p>" for p in release.description.split("\n\n") if p.strip()
        ),
        "releaseKind": release.kind,
        "genres": list(release.genres),
        "published": iso(release.published_at),
        "image": {"type": "Image", "url": release.cover_url} if release.cover_url else None,
        "url": release.uri,
        "tracks": [track_to_ap(ctx, t, release) for t in release.tracks],
        **_audience(release.artist),
    }


def release_post(ctx: NodeContext, release: Release) -> dict[str, Any]:
    """The release as a post: what a Mastodon follower sees (link, and audio once it exists)."""
    artist = release.artist
    attachments = []
    for t in release.tracks[:4]:
        for link in stream_links(ctx, t)[:1]:
            attachments.append(
                {
                    "type": "Document",
                    "mediaType": link["mediaType"],
                    "url": link["href"],
                    "name": t.title,
                }
            )
    text = (
        f'<p>New {escape(release.kind)} from <a href="{escape(artist.url or artist.uri)}">{escape(artist.name)}</a>: '
        f'<a href="{escape(release.uri)}">{escape(release.title)}</a></p>'
    )
    if release.description:
        text += f"<p>{escape(release.description[:400])}</p>"
    return {
        "id": f"{release.uri}#post",
        "type": "Note",
        "attributedTo": artist.uri,
        "content": text,
        "url": release.uri,
        "published": iso(release.published_at),
        "attachment": attachments,
        "tag": [
            {"type": "Hashtag", "name": "#" + re.sub(r"\W", "", g)}
            for g in release.genres
            if re.sub(r"\W", "", g)
        ],
        "release": release_to_ap(ctx, release),
        **_audience(artist),
    }


def event_to_ap(ctx: NodeContext, event: Event) -> dict[str, Any]:
    venue = event.venue
    location = None
    if venue is not None:
        location = {
            "type": "Place",
            "id": venue.uri,
            "name": venue.name,
            "address": venue.address,
            "latitude": venue.lat,
            "longitude": venue.lon,
            "borough": venue.borough,
        }
    return {
        "id": event.uri,
        "type": "Event",
        "name": event.title,
        "attributedTo": event.organizer.uri,
        "content": "".join(
            f"<p>{escape(p)}</p>" for p in event.description.split("\n\n") if p.strip()
        ),
        "startTime": iso(event.starts_at),
        "endTime": iso(event.ends_at),
        "location": location,
        "url": event.uri,
        "genres": list(event.genres),
        "lineup": list(event.lineup),
        "price": {"amount": event.price_amount, "currency": event.price_currency}
        if event.price_amount is not None
        else None,
        "nycmg:cancelled": event.state == "cancelled",
        "published": iso(event.created_at),
        **_audience(event.organizer),
    }


def comment_to_ap(ctx: NodeContext, comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.uri,
        "type": "Note",
        "attributedTo": comment.actor.uri,
        "content": comment.content,
        "inReplyTo": comment.object_uri,
        "published": iso(comment.created_at),
        **_audience(comment.actor),
    }


def document(obj: dict[str, Any]) -> dict[str, Any]:
    return with_context({k: v for k, v in obj.items() if v is not None})


# ---- from ActivityPub -----------------------------------------------------------


def genres_of(doc: dict[str, Any]) -> list[str]:
    """Our `genres`, or else the Hashtags Funkwhale and Mastodon put in `tag`."""
    names = [g for g in as_list(doc.get("genres")) if isinstance(g, str)]
    if not names:
        names = [
            text_of(t.get("name"), 41).lstrip("#")
            for t in as_list(doc.get("tag"))
            if isinstance(t, dict) and type_of(t) == "Hashtag"
        ]
    return [g for g in (clean_text(n, 40) for n in names) if g][:10]


def _check_origin(doc: dict[str, Any], actor: Actor) -> str:
    ident = id_of(doc)
    if not ident:
        raise BadActivity("object without an id")
    if host_of(ident) != host_of(actor.uri):
        raise BadActivity("object is not on its author's host")
    author = id_of(doc.get("attributedTo")) or actor.uri
    if author != actor.uri:
        raise BadActivity("object is attributed to someone else")
    return ident


async def upsert_remote_track(
    ctx: NodeContext,
    session: AsyncSession,
    doc: dict[str, Any],
    actor: Actor,
    release: Release | None = None,
    position: int | None = None,
) -> Track:
    uri = _check_origin(doc, actor)
    track = await session.scalar(select(Track).where(Track.uri == uri))
    if track is None:
        track = Track(uri=uri, artist_id=actor.id, local=False, title="", media={}, genres=[])
        session.add(track)
    elif track.local or track.artist_id != actor.id:
        raise BadActivity("that track belongs to someone else")
    track.title = clean_text(text_of(doc.get("name"), 200), 200) or "Untitled"
    track.duration_ms = parse_duration_ms(doc.get("duration"))
    isrc = text_of(doc.get("isrc"), 12).upper()
    track.isrc = isrc if re.fullmatch(r"[A-Z]{2}[A-Z0-9]{3}\d{7}", isrc) else None
    track.genres = genres_of(doc)
    track.state = "ready"
    remote_audio = [
        {"href": id_of(u), "mediaType": u.get("mediaType")}
        for u in as_list(doc.get("url"))
        if isinstance(u, dict) and str(u.get("mediaType", "")).startswith("audio/") and id_of(u)
    ]
    track.media = {"remote_audio": remote_audio[:4]}
    if release is not None:
        track.release_id = release.id
        pos = doc.get("position")
        track.position = pos if isinstance(pos, int) and 0 < pos < 1000 else position
    track.updated_at = utcnow()
    await session.flush()
    return track


async def upsert_remote_release(
    ctx: NodeContext, session: AsyncSession, doc: dict[str, Any], actor: Actor
) -> Release:
    uri = _check_origin(doc, actor)
    release = await session.scalar(select(Release).where(Release.uri == uri))
    if release is None:
        release = Release(uri=uri, artist_id=actor.id, local=False, title="", genres=[])
        session.add(release)
    elif release.local or release.artist_id != actor.id:
        raise BadActivity("that release belongs to someone else")
    release.title = clean_text(text_of(doc.get("name"), 200), 200) or "Untitled"
    kind = text_of(doc.get("releaseKind"), 16)
    release.kind = (
        kind if kind in ("album", "ep", "single", "compilation", "mixtape", "live") else "album"
    )
    release.description = clean_text(
        clean_html(text_of(doc.get("content"), 10_000)).replace("</p>", "\n\n"), 10_000
    )
    release.genres = genres_of(doc)
    image = doc.get("image")
    release.cover_url = id_of(image.get("url")) if isinstance(image, dict) else None
    release.state = "published"
    release.published_at = parse_time(doc.get("published")) or release.published_at or utcnow()
    release.updated_at = utcnow()
    await session.flush()
    for i, t in enumerate(as_list(doc.get("tracks"))[:100], 1):
        if isinstance(t, dict) and type_of(t) == "Audio":
            await upsert_remote_track(ctx, session, t, actor, release, i)
    actor.is_artist = True
    await session.flush()
    await session.refresh(release, ["tracks", "artist"])
    return release


async def upsert_remote_event(
    ctx: NodeContext, session: AsyncSession, doc: dict[str, Any], actor: Actor
) -> Event:
    uri = _check_origin(doc, actor)
    starts = parse_time(doc.get("startTime"))
    if starts is None:
        raise BadActivity("event without a valid startTime")
    event = await session.scalar(select(Event).where(Event.uri == uri))
    if event is None:
        event = Event(
            uri=uri,
            organizer_id=actor.id,
            local=False,
            title="",
            starts_at=starts,
            genres=[],
            lineup=[],
        )
        session.add(event)
    elif event.local or event.organizer_id != actor.id:
        raise BadActivity("that event belongs to someone else")
    event.title = clean_text(text_of(doc.get("name"), 200), 200) or "Untitled event"
    event.description = clean_text(
        clean_html(text_of(doc.get("content"), 10_000)).replace("</p>", "\n\n"), 10_000
    )
    event.starts_at = starts
    ends = parse_time(doc.get("endTime"))
    event.ends_at = ends if ends and ends > starts else None
    event.genres = [clean_text(g, 40) for g in as_list(doc.get("genres")) if isinstance(g, str)][
        :10
    ]
    event.lineup = [clean_text(x, 100) for x in as_list(doc.get("lineup")) if isinstance(x, str)][
        :30
    ]
    event.state = "cancelled" if doc.get("nycmg:cancelled") is True else "scheduled"
    price = doc.get("price")
    if (
        isinstance(price, dict)
        and isinstance(price.get("amount"), int)
        and not isinstance(price.get("amount"), bool)
    ):
        event.price_amount = max(0, min(price["amount"], 10_000_000))
        cur = text_of(price.get("currency"), 3).upper()
        event.price_currency = cur if re.fullmatch(r"[A-Z]{3}", cur) else None
    place = doc.get("location")
    if isinstance(place, list):
        place = place[0] if place else None
    if isinstance(place, dict) and type_of(place) == "Place":
        place_uri = id_of(place) or f"{uri}#place"
        if host_of(place_uri) != host_of(uri):
            place_uri = f"{uri}#place"
        venue = await session.scalar(select(Venue).where(Venue.uri == place_uri))
        if venue is None:
            venue = Venue(uri=place_uri, local=False, name="")
            session.add(venue)
        if not venue.local:
            venue.name = clean_text(text_of(place.get("name"), 200), 200) or "Venue"
            address = place.get("address")
            venue.address = clean_text(
                address
                if isinstance(address, str)
                else text_of(
                    (address or {}).get("streetAddress") if isinstance(address, dict) else "", 300
                ),
                300,
            )
            venue.borough = clean_text(text_of(place.get("borough"), 64), 64) or None
            lat, lon = place.get("latitude"), place.get("longitude")
            venue.lat = float(lat) if isinstance(lat, int | float) and -90 <= lat <= 90 else None
            venue.lon = float(lon) if isinstance(lon, int | float) and -180 <= lon <= 180 else None
        await session.flush()
        event.venue_id = venue.id
    event.updated_at = utcnow()
    await session.flush()
    await session.refresh(event, ["venue", "organizer"])
    return event
