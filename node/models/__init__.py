"""The core's tables. Subsystems define their own tables on the same `Base`."""

from .actors import (
    ACTOR_KINDS,
    ROLES,
    Account,
    Actor,
    ArtistProfile,
    AuditEntry,
    LoginFailure,
    Token,
)
from .base import Base, UTCDateTime, new_uuid, utcnow
from .catalog import (
    EVENT_STATES,
    RELEASE_KINDS,
    RELEASE_STATES,
    TRACK_STATES,
    Event,
    Release,
    Track,
    Venue,
)
from .jobs import JOB_STATES, Job
from .social import FOLLOW_STATES, PLAY_SOURCES, Announce, Comment, Follow, Like, Play, Report

__all__ = [
    "ACTOR_KINDS",
    "ROLES",
    "Account",
    "Actor",
    "ArtistProfile",
    "AuditEntry",
    "LoginFailure",
    "Token",
    "Base",
    "UTCDateTime",
    "new_uuid",
    "utcnow",
    "EVENT_STATES",
    "RELEASE_KINDS",
    "RELEASE_STATES",
    "TRACK_STATES",
    "Event",
    "Release",
    "Track",
    "Venue",
    "JOB_STATES",
    "Job",
    "FOLLOW_STATES",
    "PLAY_SOURCES",
    "Follow",
    "Play",
    "Like",
    "Comment",
    "Announce",
    "Report",
]
