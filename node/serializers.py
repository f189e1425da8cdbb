"""The JSON API's representations of core objects (not ActivityPub; that is federation's)."""

from __future__ import annotations

from typing import Any

from .models import Account, Actor, Event, Release, Track, Venue
from .validation import iso


def money(amount: int | None, currency: str | None) -> dict[str, Any] | None:
    if amount is None or currency is None:
        return None
    return {"amount": amount, "currency": currency}


def artist_json(actor: Actor) -> dict[str, Any]:
    profile = actor.__dict__.get("profile")  # only if loaded; never lazy-load in async
    return {
        "handle": actor.handle,
        "acct": actor.acct,
        "uri": actor.uri,
        "url": actor.url,
        "name": actor.name,
        "kind": actor.kind,
        "local": actor.local,
        "summary": actor.summary,
        "avatar_url": actor.avatar_url,
        "borough": profile.borough if profile else None,
        "genres": list(profile.genres) if profile else [],
        "links": list(profile.links) if profile else [],
        "location": profile.location if profile else None,
        "manually_approves_followers": actor.manually_approves_followers,
        "created_at": iso(actor.created_at),
    }


def actor_brief(actor: Actor) -> dict[str, Any]:
    return {
        "handle": actor.handle,
        "acct": actor.acct,
        "uri": actor.uri,
        "name": actor.name,
        "url": actor.url,
    }


def account_json(account: Account) -> dict[str, Any]:
    return {
        "username": account.username,
        "role": account.role,
        "email": account.email,
        "actor": actor_brief(account.actor),
        "created_at": iso(account.created_at),
        "last_login_at": iso(account.last_login_at),
        "disabled": account.disabled,
    }


def track_json(track: Track, with_release: bool = True) -> dict[str, Any]:
    out = {
        "uuid": track.uuid,
        "uri": track.uri,
        "title": track.title,
        "artist": actor_brief(track.artist),
        "duration_ms": track.duration_ms,
        "isrc": track.isrc,
        "genres": list(track.genres),
        "state": track.state,
        "position": track.position,
        "local": track.local,
        "public": track.public,
        "created_at": iso(track.created_at),
    }
    if with_release:
        release = track.__dict__.get("release")
        out["release"] = (
            {"uuid": release.uuid, "uri": release.uri, "title": release.title} if release else None
        )
    return out


def release_json(release: Release) -> dict[str, Any]:
    return {
        "uuid": release.uuid,
        "uri": release.uri,
        "title": release.title,
        "kind": release.kind,
        "artist": actor_brief(release.artist),
        "description": release.description,
        "genres": list(release.genres),
        "release_date": release.release_date.isoformat() if release.release_date else None,
        "cover_url": release.cover_url,
        "state": release.state,
        "published_at": iso(release.published_at),
        "local": release.local,
        "tracks": [track_json(t, with_release=False) for t in release.tracks],
        "created_at": iso(release.created_at),
    }


def venue_json(venue: Venue) -> dict[str, Any]:
    return {
        "uuid": venue.uuid,
        "uri": venue.uri,
        "name": venue.name,
        "address": venue.address,
        "borough": venue.borough,
        "lat": venue.lat,
        "lon": venue.lon,
        "capacity": venue.capacity,
        "website": venue.website,
        "local": venue.local,
    }


def event_json(event: Event) -> dict[str, Any]:
    return {
        "uuid": event.uuid,
        "uri": event.uri,
        "title": event.title,
        "organizer": actor_brief(event.organizer),
        "venue": venue_json(event.venue) if event.venue else None,
        "description": event.description,
        "starts_at": iso(event.starts_at),
        "ends_at": iso(event.ends_at),
        "ticket_url": event.ticket_url,
        "price": money(event.price_amount, event.price_currency),
        "genres": list(event.genres),
        "lineup": list(event.lineup),
        "state": event.state,
        "local": event.local,
    }
