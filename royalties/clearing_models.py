"""Clearing tables: statements, settlements, transfers, payouts, Stripe links, grants.

Each node keeps its own view of the protocol (DESIGN.md 7): the statements
it issued (`role` out), received (in) or saw as the clearing house (copy);
the settlements it made (house) or was sent (member); the transfers it pays,
receives or (as the house) watches. Signed documents are stored as they
were signed, so anyone can check them again later.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from node.models.base import Base, BigID, IdMixin, UTCDateTime, utcnow


class ClearingStatement(IdMixin, Base):
    """One signed statement: what `issuer` owes `recipient` for its artists in a period.

    States: issued -> accepted | rejected; a rejected one may become
    superseded by a reissue. `disputed` lists the artist URIs of the lines
    the recipient rejected; `carried_into` is the later statement that
    carried them forward when no reissue came.
    """

    __tablename__ = "clearing_statements"
    __table_args__ = (
        Index("ix_clearing_statements_period", "period", "role"),
        Index("ix_clearing_statements_pair", "issuer_uri", "recipient_uri", "currency"),
    )

    uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    role: Mapped[str] = mapped_column(String(8), nullable=False)  # out | in | copy
    period: Mapped[str] = mapped_column(String(7), nullable=False)
    issuer_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    recipient_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=1)
    supersedes_uri: Mapped[str | None] = mapped_column(String(512))
    prev_hash: Mapped[str | None] = mapped_column(String(80))
    hash: Mapped[str] = mapped_column(String(80), nullable=False)
    total_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    document: Mapped[dict] = mapped_column(JSON, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="issued")
    answer: Mapped[dict | None] = mapped_column(JSON)
    disputed: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    carried_into: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClearingSettlement(IdMixin, Base):
    """A clearing house's signed netting of one period.

    States: proposed -> accepted (every member agreed) | rejected (one did
    not) -> settled (every transfer confirmed by its receiver).
    `answers` maps member URI -> {"decision", "reasons"}.
    """

    __tablename__ = "clearing_settlements"
    __table_args__ = (Index("ix_clearing_settlements_period", "period"),)

    uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    role: Mapped[str] = mapped_column(String(8), nullable=False)  # house | member
    period: Mapped[str] = mapped_column(String(7), nullable=False)
    house_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    hash: Mapped[str] = mapped_column(String(80), nullable=False)
    document: Mapped[dict] = mapped_column(JSON, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="proposed")
    answers: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    problems: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClearingTransfer(IdMixin, Base):
    """One inter-node transfer of a settlement: due -> paid (payer) -> confirmed (payee)."""

    __tablename__ = "clearing_transfers"
    __table_args__ = (Index("ix_clearing_transfers_settlement", "settlement_uri"),)

    uri: Mapped[str] = mapped_column(String(600), unique=True, nullable=False)
    settlement_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    period: Mapped[str] = mapped_column(String(7), nullable=False)
    payer_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    payee_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="due")
    provider: Mapped[str | None] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(255))
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClearingKey(IdMixin, Base):
    """A remote node's clearing key, as its actor published it (refetched once on a mismatch)."""

    __tablename__ = "clearing_keys"

    actor_uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    key_id: Mapped[str] = mapped_column(String(600), nullable=False)
    multibase: Mapped[str] = mapped_column(String(120), nullable=False)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Payout(IdMixin, Base):
    """Money paid out of an artist's ledger balance: pending -> paid | failed."""

    __tablename__ = "payouts"
    __table_args__ = (Index("ix_payouts_state", "state", "created_at"),)

    artist_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    reference: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_by: Mapped[str | None] = mapped_column(String(64))


class StripeAccount(IdMixin, Base):
    """A Stripe Connect connected account of an artist or a node (by actor URI)."""

    __tablename__ = "stripe_accounts"

    owner_uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    stripe_account_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class BillingCustomer(IdMixin, Base):
    """A fan's Stripe customer and subscription, so webhooks find the account."""

    __tablename__ = "billing_customers"

    account_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("accounts.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    stripe_customer_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(24), nullable=False, default="new")
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class StripeEvent(IdMixin, Base):
    """A webhook event already handled (Stripe retries; each event counts once)."""

    __tablename__ = "stripe_events"

    event_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    outcome: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class FoundationGrant(IdMixin, Base):
    """A grant from the foundation pool to an artist: proposed -> approved by a curator."""

    __tablename__ = "foundation_grants"
    __table_args__ = (UniqueConstraint("ledger_ref", name="uq_foundation_grants_ledger_ref"),)

    artist_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="proposed")
    proposed_by: Mapped[str] = mapped_column(String(64), nullable=False)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    ledger_ref: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
