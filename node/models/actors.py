"""Actors (local and remote), accounts, tokens and artist profiles.

Every person, group, collective and the node itself is an `Actor`, the unit
ActivityPub speaks of; an `Account` is the login of a local actor.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, BigID, IdMixin, TimestampMixin, UTCDateTime, utcnow

ACTOR_KINDS = ("Person", "Group", "Organization", "Application", "Service")
ROLES = ("fan", "artist", "curator", "admin")


class Actor(IdMixin, TimestampMixin, Base):
    __tablename__ = "actors"
    __table_args__ = (
        UniqueConstraint("handle", "domain", name="uq_actors_handle_domain"),
        # Directory listings: local artists by handle, keyset on (handle, id).
        Index("ix_actors_local_kind_handle", "local", "is_artist", "handle", "id"),
    )

    uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    handle: Mapped[str] = mapped_column(String(64), nullable=False)
    domain: Mapped[str] = mapped_column(String(255), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="Person")
    local: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    is_artist: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    summary: Mapped[str] = mapped_column(Text, nullable=False, default="")
    url: Mapped[str | None] = mapped_column(String(512))
    inbox_url: Mapped[str | None] = mapped_column(String(512))
    outbox_url: Mapped[str | None] = mapped_column(String(512))
    shared_inbox_url: Mapped[str | None] = mapped_column(String(512))
    followers_url: Mapped[str | None] = mapped_column(String(512))
    following_url: Mapped[str | None] = mapped_column(String(512))
    public_key_pem: Mapped[str | None] = mapped_column(Text)
    private_key_pem: Mapped[str | None] = mapped_column(Text)
    key_id: Mapped[str | None] = mapped_column(String(600))
    avatar_url: Mapped[str | None] = mapped_column(String(512))
    manually_approves_followers: Mapped[bool] = mapped_column(
        Boolean, default=False, nullable=False
    )
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    raw: Mapped[dict | None] = mapped_column(JSON)

    account: Mapped[Account | None] = relationship(back_populates="actor", uselist=False)
    profile: Mapped[ArtistProfile | None] = relationship(back_populates="actor", uselist=False)

    @property
    def acct(self) -> str:
        return f"{self.handle}@{self.domain}"


class Account(IdMixin, TimestampMixin, Base):
    __tablename__ = "accounts"

    actor_id: Mapped[int] = mapped_column(ForeignKey("actors.id", ondelete="CASCADE"), unique=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    email: Mapped[str | None] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="fan")
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    actor: Mapped[Actor] = relationship(back_populates="account", lazy="joined")


class Token(IdMixin, Base):
    """An API bearer token or a web session; only the SHA-256 of the secret is kept."""

    __tablename__ = "tokens"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # api | session
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    account: Mapped[Account] = relationship(lazy="joined")


class LoginFailure(IdMixin, Base):
    """One failed login, by username and by client address, for rate limiting
    that holds across several `serve` processes."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)

    key: Mapped[str] = mapped_column(String(300), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class ArtistProfile(TimestampMixin, Base):
    __tablename__ = "artist_profiles"
    __table_args__ = (Index("ix_artist_profiles_borough", "borough", "actor_id"),)

    actor_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("actors.id", ondelete="CASCADE"), primary_key=True
    )
    borough: Mapped[str | None] = mapped_column(String(64))
    genres: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    links: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    location: Mapped[str | None] = mapped_column(String(200))

    actor: Mapped[Actor] = relationship(back_populates="profile")


class AuditEntry(IdMixin, Base):
    """One console action: who did what to which object, append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at_id", "at", "id"),)

    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    username: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str] = mapped_column(String(512), nullable=False, default="")
    details: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
