"""clearing: statements, settlements, transfers, clearing keys, payouts, Stripe links, grants

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column:
    return sa.Column("id", _BIGID, autoincrement=True, nullable=False)


def upgrade() -> None:
    op.create_table(
        "clearing_statements",
        _id(),
        sa.Column("uri", sa.String(512), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("issuer_uri", sa.String(512), nullable=False),
        sa.Column("recipient_uri", sa.String(512), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("supersedes_uri", sa.String(512), nullable=True),
        sa.Column("prev_hash", sa.String(80), nullable=True),
        sa.Column("hash", sa.String(80), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("disputed", sa.JSON(), nullable=False),
        sa.Column("carried_into", sa.String(512), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("answered_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clearing_statements")),
        sa.UniqueConstraint("uri", name=op.f("uq_clearing_statements_uri")),
    )
    op.create_index("ix_clearing_statements_period", "clearing_statements", ["period", "role"])
    op.create_index(
        "ix_clearing_statements_pair",
        "clearing_statements",
        ["issuer_uri", "recipient_uri", "currency"],
    )
    op.create_table(
        "clearing_settlements",
        _id(),
        sa.Column("uri", sa.String(512), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("house_uri", sa.String(512), nullable=False),
        sa.Column("hash", sa.String(80), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("settled_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clearing_settlements")),
        sa.UniqueConstraint("uri", name=op.f("uq_clearing_settlements_uri")),
    )
    op.create_index("ix_clearing_settlements_period", "clearing_settlements", ["period"])
    op.create_table(
        "clearing_transfers",
        _id(),
        sa.Column("uri", sa.String(600), nullable=False),
        sa.Column("settlement_uri", sa.String(512), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("payer_uri", sa.String(512), nullable=False),
        sa.Column("payee_uri", sa.String(512), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(16), nullable=True),
        sa.Column("reference", sa.String(255), nullable=True),
        sa.Column("paid_at", _TS, nullable=True),
        sa.Column("confirmed_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clearing_transfers")),
        sa.UniqueConstraint("uri", name=op.f("uq_clearing_transfers_uri")),
    )
    op.create_index("ix_clearing_transfers_settlement", "clearing_transfers", ["settlement_uri"])
    op.create_table(
        "clearing_keys",
        _id(),
        sa.Column("actor_uri", sa.String(512), nullable=False),
        sa.Column("key_id", sa.String(600), nullable=False),
        sa.Column("multibase", sa.String(120), nullable=False),
        sa.Column("fetched_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clearing_keys")),
        sa.UniqueConstraint("actor_uri", name=op.f("uq_clearing_keys_actor_uri")),
    )
    op.create_table(
        "payouts",
        _id(),
        sa.Column("artist_uri", sa.String(512), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(100), nullable=False),
        sa.Column("reference", sa.String(255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("paid_at", _TS, nullable=True),
        sa.Column("paid_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payouts_idempotency_key")),
    )
    op.create_index("ix_payouts_state", "payouts", ["state", "created_at"])
    op.create_table(
        "stripe_accounts",
        _id(),
        sa.Column("owner_uri", sa.String(512), nullable=False),
        sa.Column("stripe_account_id", sa.String(255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_accounts")),
        sa.UniqueConstraint("owner_uri", name=op.f("uq_stripe_accounts_owner_uri")),
        sa.UniqueConstraint("stripe_account_id", name=op.f("uq_stripe_accounts_stripe_account_id")),
    )
    op.create_table(
        "billing_customers",
        _id(),
        sa.Column("account_id", _BIGID, nullable=False),
        sa.Column("stripe_customer_id", sa.String(255), nullable=False),
        sa.Column("stripe_subscription_id", sa.String(255), nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_billing_customers_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_customers")),
        sa.UniqueConstraint("account_id", name=op.f("uq_billing_customers_account_id")),
        sa.UniqueConstraint(
            "stripe_customer_id", name=op.f("uq_billing_customers_stripe_customer_id")
        ),
    )
    op.create_table(
        "stripe_events",
        _id(),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(300), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_stripe_events_event_id")),
    )
    op.create_table(
        "foundation_grants",
        _id(),
        sa.Column("artist_uri", sa.String(512), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("proposed_by", sa.String(64), nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=True),
        sa.Column("ledger_ref", sa.String(200), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("decided_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_foundation_grants")),
        sa.UniqueConstraint("ledger_ref", name="uq_foundation_grants_ledger_ref"),
    )


def downgrade() -> None:
    for table in (
        "foundation_grants",
        "stripe_events",
        "billing_customers",
        "stripe_accounts",
        "payouts",
        "clearing_keys",
        "clearing_transfers",
        "clearing_settlements",
        "clearing_statements",
    ):
        op.drop_table(table)
