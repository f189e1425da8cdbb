"""What goes into the search index: the visibility rule and row -> document.

Only public things are indexed, local or remote alike: artists
(`Actor.is_artist`), published releases, public tracks (`Track.public`) and
scheduled events. The index's job handler and the full rebuild both go
through here, so the two can never disagree about what a document says.

A document is a plain dict; `index.py` maps it onto the whoosh schema.
Relationships are loaded eagerly by the queries below (`load_options`),
because a lazy load inside an async session raises.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import joinedload, raiseload, selectinload

from ..models import Actor, Event, Release, Track

DOC_TYPES = ("artist", "release", "track", "event")
_TAG = re.compile(r"<[^>]+>")
BODY_MAX = 4000  # long descriptions add little to recall and a lot to the index


def plain(text: str | None, limit: int = BODY_MAX) -> str:
    """Text for indexing: remote summaries may carry HTML; tags are not words."""
    if not text:
        return ""
    return _TAG.sub(" ", text)[:limit]


def clean_genres(values: Any) -> list[str]:
    """Lowercased, de-duplicated, comma-free genres (the facet's keyword values)."""
    out: list[str] = []
    if not isinstance(values, (list, tuple)):
        return out
    for g in values:
        if not isinstance(g, str):
            continue
        g = " ".join(g.replace(",", " ").split()).lower()[:60]
        if g and g not in out:
            out.append(g)
    return out


def _profile(actor: Actor | None) -> Any:
    # Only if it was loaded: touching an unloaded relationship in async code raises.
    return actor.__dict__.get("profile") if actor is not None else None


def artist_borough(actor: Actor | None) -> str | None:
    p = _profile(actor)
    return p.borough if p is not None else None


def artist_genres(actor: Actor | None) -> list[str]:
    p = _profile(actor)
    return clean_genres(p.genres) if p is not None else []


def artist_id(actor: Actor) -> str:
    """The id a result carries: the handle here, `handle@domain` for remote artists."""
    return actor.handle if actor.local else actor.acct


def display_name(actor: Actor | None) -> str:
    if actor is None:
        return ""
    return actor.name or actor.handle


# ---- visibility -----------------------------------------------------------


def artist_public(actor: Actor | None) -> bool:
    return actor is not None and actor.is_artist


def release_public(release: Release | None) -> bool:
    return release is not None and release.state == "published"


def track_public(track: Track | None) -> bool:
    return track is not None and track.public


def event_public(event: Event | None) -> bool:
    return event is not None and event.state == "scheduled"


# ---- documents ------------------------------------------------------------


def artist_doc(actor: Actor) -> dict[str, Any]:
    genres = artist_genres(actor)
    borough = artist_borough(actor)
    return {
        "doc": f"artist:{artist_id(actor)}",
        "uri": actor.uri,
        "type": "artist",
        "oid": artist_id(actor),
        "name": display_name(actor),
        "body": " ".join((actor.handle, plain(actor.summary))),
        "subtitle": " · ".join(x for x in (borough, ", ".join(genres)) if x),
        "url": actor.url or actor.uri,
        "borough": borough,
        "genres": genres,
        "artist": actor.uri,
        "release": None,
        "date": actor.created_at,
    }


def release_doc(release: Release) -> dict[str, Any]:
    artist = release.artist
    year = release.release_date.year if release.release_date else None
    return {
        "doc": f"release:{release.uuid}",
        "uri": release.uri,
        "type": "release",
        "oid": release.uuid,
        "name": release.title,
        "body": " ".join((display_name(artist), plain(release.description))),
        "subtitle": " · ".join(str(x) for x in (display_name(artist), release.kind, year) if x),
        "url": release.uri,
        "borough": artist_borough(artist),
        "genres": clean_genres(release.genres) or artist_genres(artist),
        "artist": artist.uri if artist else None,
        "release": release.uri,
        "date": release.published_at or release.created_at,
    }


def track_doc(track: Track) -> dict[str, Any]:
    artist = track.artist
    release = track.__dict__.get("release")
    title = release.title if release is not None else ""
    return {
        "doc": f"track:{track.uuid}",
        "uri": track.uri,
        "type": "track",
        "oid": track.uuid,
        "name": track.title,
        "body": " ".join(x for x in (display_name(artist), title, track.isrc or "") if x),
        "subtitle": " · ".join(x for x in (display_name(artist), title) if x),
        "url": track.uri,
        "borough": artist_borough(artist),
        "genres": clean_genres(track.genres)
        or (clean_genres(release.genres) if release is not None else [])
        or artist_genres(artist),
        "artist": artist.uri if artist else None,
        "release": release.uri if release is not None else None,
        "date": (release.published_at if release is not None else None) or track.created_at,
    }


def event_doc(event: Event) -> dict[str, Any]:
    venue = event.venue
    organizer = event.organizer
    lineup = [x for x in (event.lineup or []) if isinstance(x, str)]
    when = event.starts_at.strftime("%Y-%m-%d") if isinstance(event.starts_at, datetime) else ""
    return {
        "doc": f"event:{event.uuid}",
        "uri": event.uri,
        "type": "event",
        "oid": event.uuid,
        "name": event.title,
        "body": " ".join(
            x
            for x in (
                venue.name if venue else "",
                display_name(organizer),
                " ".join(lineup),
                plain(event.description),
            )
            if x
        ),
        "subtitle": " · ".join(x for x in (venue.name if venue else "", when) if x),
        "url": event.uri,
        # An event happens where its venue is, whoever organizes it.
        "borough": venue.borough if venue else None,
        "genres": clean_genres(event.genres) or artist_genres(organizer),
        "artist": organizer.uri if organizer else None,
        "release": None,
        "date": event.starts_at,
    }


# ---- queries with everything a document needs loaded ------------------------


def artists_query() -> Select:
    return select(Actor).options(selectinload(Actor.profile))


def releases_query(with_tracks: bool = True) -> Select:
    """Releases with their artist's profile and, for cascades, their tracks."""
    options = [joinedload(Release.artist).selectinload(Actor.profile)]
    if with_tracks:
        options += [
            selectinload(Release.tracks).selectinload(Track.release),
            selectinload(Release.tracks).joinedload(Track.artist).selectinload(Actor.profile),
        ]
    else:
        options.append(raiseload(Release.tracks))  # the rebuild never needs them
    return select(Release).options(*options)


def tracks_query() -> Select:
    return select(Track).options(
        joinedload(Track.artist).selectinload(Actor.profile), selectinload(Track.release)
    )


def events_query() -> Select:
    return select(Event).options(
        joinedload(Event.venue), joinedload(Event.organizer).selectinload(Actor.profile)
    )


# The public rows of each type, as SQL (the full rebuild's source).
def public_filter(doc_type: str) -> Any:
    if doc_type == "artist":
        return Actor.is_artist.is_(True)
    if doc_type == "release":
        return Release.state == "published"
    if doc_type == "track":
        published = select(Release.id).where(Release.state == "published")
        return or_(
            Track.release_id.in_(published), Track.release_id.is_(None) & (Track.state == "ready")
        )
    if doc_type == "event":
        return Event.state == "scheduled"
    raise ValueError(doc_type)


MODELS = {"artist": Actor, "release": Release, "track": Track, "event": Event}
QUERIES = {
    "artist": artists_query,
    "release": releases_query,
    "track": tracks_query,
    "event": events_query,
}
BUILDERS = {"artist": artist_doc, "release": release_doc, "track": track_doc, "event": event_doc}
