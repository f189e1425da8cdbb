"""Royalties tables: the ledger, subscriptions, holds, venue licences and period closes.

The ledger is append-only. Entries carry a signed `amount_minor` (debit
positive, credit negative), so "balanced per currency" is "sums to zero per
currency". The database enforces it (migration 0006 installs the triggers):
a transaction is written unsealed, its entries are inserted, and sealing it
(`sealed` false -> true) fails unless its entries sum to zero in every
currency; entries can never be added to a sealed transaction, and neither
entries nor sealed transactions can be updated or deleted. Balances count
sealed transactions only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from node.models.base import Base, BigID, IdMixin, UTCDateTime, utcnow


class LedgerTxn(IdMixin, Base):
    """One balanced movement of money. `ref` is unique: posting the same ref twice is a no-op."""

    __tablename__ = "ledger_transactions"
    __table_args__ = (Index("ix_ledger_transactions_period_kind", "period", "kind"),)

    ref: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    memo: Mapped[str] = mapped_column(Text, nullable=False, default="")
    period: Mapped[str | None] = mapped_column(String(7))
    reverses_id: Mapped[int | None] = mapped_column(
        BigID, ForeignKey("ledger_transactions.id", ondelete="RESTRICT")
    )
    sealed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class LedgerEntry(IdMixin, Base):
    """One line of a transaction: an account, a currency and a signed amount (debit > 0)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_account_currency", "account", "currency"),
        Index("ix_ledger_entries_txn", "txn_id"),
    )

    txn_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), nullable=False
    )
    account: Mapped[str] = mapped_column(String(600), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Subscription(IdMixin, Base):
    """A fan's subscription on their home node (provider `ledger` = granted by an admin, or `stripe`)."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        Index("ix_subscriptions_account", "account_id"),
        UniqueConstraint("provider", "external_id", name="uq_subscriptions_provider_external"),
    )

    account_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    provider: Mapped[str] = mapped_column(String(16), nullable=False, default="ledger")
    external_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default="active"
    )  # active | past_due | canceled
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    first_period: Mapped[str] = mapped_column(String(7), nullable=False)
    last_period: Mapped[str | None] = mapped_column(String(7))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SubscriptionPayment(IdMixin, Base):
    """Money a subscriber paid for a period (or, negative, a refund or chargeback of it)."""

    __tablename__ = "subscription_payments"
    __table_args__ = (
        UniqueConstraint("provider", "external_id", name="uq_subscription_payments_provider_ext"),
        Index("ix_subscription_payments_period_currency", "period", "currency", "account_id"),
        Index("ix_subscription_payments_account", "account_id", "period"),
    )

    account_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False
    )
    subscription_id: Mapped[int | None] = mapped_column(
        BigID, ForeignKey("subscriptions.id", ondelete="SET NULL")
    )
    period: Mapped[str] = mapped_column(String(7), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    kind: Mapped[str] = mapped_column(
        String(16), nullable=False, default="payment"
    )  # payment | refund | chargeback
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    external_id: Mapped[str] = mapped_column(String(255), nullable=False)
    refunds_id: Mapped[int | None] = mapped_column(
        BigID, ForeignKey("subscription_payments.id", ondelete="RESTRICT")
    )
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    ledger_ref: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class HeldPlay(IdMixin, Base):
    """A play held back from royalties (a flagged device, a fraud rule) until an admin releases it."""

    __tablename__ = "play_holds"
    __table_args__ = (Index("ix_play_holds_released", "released_at", "created_at"),)

    play_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("plays.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(String(64))


class VenueLicence(IdMixin, Base):
    """The monthly licence fee a venue pays, split at close over that venue's detected plays."""

    __tablename__ = "venue_licences"

    venue_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("venues.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class RoyaltyPeriod(IdMixin, Base):
    """A closed month. Its existence is what makes closing twice change nothing."""

    __tablename__ = "royalty_periods"

    period: Mapped[str] = mapped_column(String(7), unique=True, nullable=False)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    closed_by: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    stats: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)


class RoyaltyTotal(IdMixin, Base):
    """What a closed period collected and where it went, per currency."""

    __tablename__ = "royalty_period_totals"
    __table_args__ = (
        UniqueConstraint("period", "currency", name="uq_royalty_period_totals_period_currency"),
    )

    period: Mapped[str] = mapped_column(String(7), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    collected_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    refunds_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    node_share_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    foundation_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    artists_local_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    artists_remote_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    venue_fees_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    subscribers: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    zero_play_subscribers: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    qualified_plays: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class RoyaltyLine(IdMixin, Base):
    """One artist's share of a closed period from one source (UCPS, or one venue's licence).

    `node_uri` is the creditor node's actor URI for a remote artist (null for
    a local one). `pro_rata_minor` is what the same money would have paid
    under a pro-rata split: stored for the transparency pages, never paid.
    """

    __tablename__ = "royalty_lines"
    __table_args__ = (
        Index("ix_royalty_lines_period_artist", "period", "artist_uri"),
        Index("ix_royalty_lines_artist_period", "artist_uri", "period"),
    )

    period: Mapped[str] = mapped_column(String(7), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    artist_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    node_uri: Mapped[str | None] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # ucps | venue
    venue_id: Mapped[int | None] = mapped_column(
        BigID, ForeignKey("venues.id", ondelete="SET NULL")
    )
    plays: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    listeners: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    pro_rata_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class RoyaltyPayable(IdMixin, Base):
    """What this node owes a remote node for one of its artists in a closed period.

    One row per (period, creditor node, artist, currency): the lines of the
    statement the clearing protocol sends to that node.
    """

    __tablename__ = "royalty_payables"
    __table_args__ = (
        UniqueConstraint(
            "period", "node_uri", "artist_uri", "currency", name="uq_royalty_payables_line"
        ),
        Index("ix_royalty_payables_period_node", "period", "node_uri", "currency"),
    )

    period: Mapped[str] = mapped_column(String(7), nullable=False)
    node_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    artist_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    plays: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    listeners: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
