"""royalties: ledger (append-only, balanced per currency, enforced by triggers), subscriptions,
play holds, venue licences and closed periods (totals, lines, payables)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The database's half of "balanced per currency" (royalties/ledger.py is the other):
# a transaction is sealed by one UPDATE after its entries are in, and the seal is
# refused unless they sum to zero per currency. Entries and sealed transactions are
# append-only: no update, no delete, no entry added after the seal.
SQLITE_TRIGGERS = [
    """CREATE TRIGGER ledger_seal_balanced BEFORE UPDATE OF sealed ON ledger_transactions
    WHEN NEW.sealed AND NOT OLD.sealed
    BEGIN
      SELECT RAISE(ABORT, 'ledger transaction not balanced per currency')
      WHERE EXISTS (SELECT 1 FROM ledger_entries WHERE txn_id = NEW.id
                    GROUP BY currency HAVING SUM(amount_minor) <> 0);
    END""",
    """CREATE TRIGGER ledger_txn_sealed_update BEFORE UPDATE ON ledger_transactions
    WHEN OLD.sealed
    BEGIN SELECT RAISE(ABORT, 'ledger transactions are append-only'); END""",
    """CREATE TRIGGER ledger_txn_sealed_delete BEFORE DELETE ON ledger_transactions
    WHEN OLD.sealed
    BEGIN SELECT RAISE(ABORT, 'ledger transactions are append-only'); END""",
    """CREATE TRIGGER ledger_entry_update BEFORE UPDATE ON ledger_entries
    BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END""",
    """CREATE TRIGGER ledger_entry_delete BEFORE DELETE ON ledger_entries
    BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END""",
    """CREATE TRIGGER ledger_entry_after_seal BEFORE INSERT ON ledger_entries
    WHEN (SELECT sealed FROM ledger_transactions WHERE id = NEW.txn_id)
    BEGIN SELECT RAISE(ABORT, 'ledger transaction already sealed'); END""",
]
SQLITE_DROP = [
    "ledger_seal_balanced",
    "ledger_txn_sealed_update",
    "ledger_txn_sealed_delete",
    "ledger_entry_update",
    "ledger_entry_delete",
    "ledger_entry_after_seal",
]

PG_TRIGGERS = [
    """CREATE FUNCTION ledger_txn_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF OLD.sealed THEN
        RAISE EXCEPTION 'ledger transactions are append-only';
      END IF;
      IF NEW.sealed AND EXISTS (SELECT 1 FROM ledger_entries WHERE txn_id = NEW.id
                                GROUP BY currency HAVING SUM(amount_minor) <> 0) THEN
        RAISE EXCEPTION 'ledger transaction not balanced per currency';
      END IF;
      RETURN NEW;
    END $$""",
    """CREATE FUNCTION ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'ledger entries and sealed transactions are append-only';
    END $$""",
    """CREATE FUNCTION ledger_entry_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF (SELECT sealed FROM ledger_transactions WHERE id = NEW.txn_id) THEN
        RAISE EXCEPTION 'ledger transaction already sealed';
      END IF;
      RETURN NEW;
    END $$""",
    """CREATE TRIGGER ledger_txn_update BEFORE UPDATE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_txn_guard()""",
    """CREATE TRIGGER ledger_txn_delete BEFORE DELETE ON ledger_transactions
    FOR EACH ROW WHEN (OLD.sealed) EXECUTE FUNCTION ledger_refuse()""",
    """CREATE TRIGGER ledger_entry_change BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse()""",
    """CREATE TRIGGER ledger_entry_insert BEFORE INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_guard()""",
]
PG_DROP = [
    "DROP TRIGGER IF EXISTS ledger_txn_update ON ledger_transactions",
    "DROP TRIGGER IF EXISTS ledger_txn_delete ON ledger_transactions",
    "DROP TRIGGER IF EXISTS ledger_entry_change ON ledger_entries",
    "DROP TRIGGER IF EXISTS ledger_entry_insert ON ledger_entries",
    "DROP FUNCTION IF EXISTS ledger_txn_guard()",
    "DROP FUNCTION IF EXISTS ledger_refuse()",
    "DROP FUNCTION IF EXISTS ledger_entry_guard()",
]


def upgrade() -> None:
    op.create_table(
        "ledger_transactions",
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("memo", sa.Text(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=True),
        sa.Column(
            "reverses_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("sealed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_ledger_transactions_reverses_id_ledger_transactions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transactions")),
        sa.UniqueConstraint("ref", name=op.f("uq_ledger_transactions_ref")),
    )
    with op.batch_alter_table("ledger_transactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_transactions_period_kind", ["period", "kind"], unique=False
        )

    op.create_table(
        "royalty_payables",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("node_uri", sa.String(length=512), nullable=False),
        sa.Column("artist_uri", sa.String(length=512), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("plays", sa.BigInteger(), nullable=False),
        sa.Column("listeners", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_royalty_payables")),
        sa.UniqueConstraint(
            "period", "node_uri", "artist_uri", "currency", name="uq_royalty_payables_line"
        ),
    )
    with op.batch_alter_table("royalty_payables", schema=None) as batch_op:
        batch_op.create_index(
            "ix_royalty_payables_period_node", ["period", "node_uri", "currency"], unique=False
        )

    op.create_table(
        "royalty_period_totals",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("collected_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunds_minor", sa.BigInteger(), nullable=False),
        sa.Column("node_share_minor", sa.BigInteger(), nullable=False),
        sa.Column("foundation_minor", sa.BigInteger(), nullable=False),
        sa.Column("artists_local_minor", sa.BigInteger(), nullable=False),
        sa.Column("artists_remote_minor", sa.BigInteger(), nullable=False),
        sa.Column("venue_fees_minor", sa.BigInteger(), nullable=False),
        sa.Column("subscribers", sa.Integer(), nullable=False),
        sa.Column("zero_play_subscribers", sa.Integer(), nullable=False),
        sa.Column("qualified_plays", sa.BigInteger(), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_royalty_period_totals")),
        sa.UniqueConstraint("period", "currency", name="uq_royalty_period_totals_period_currency"),
    )
    op.create_table(
        "royalty_periods",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(length=64), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_royalty_periods")),
        sa.UniqueConstraint("period", name=op.f("uq_royalty_periods_period")),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("txn_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account", sa.String(length=600), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["txn_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_ledger_entries_txn_id_ledger_transactions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_entries_account_currency", ["account", "currency"], unique=False
        )
        batch_op.create_index("ix_ledger_entries_txn", ["txn_id"], unique=False)

    op.create_table(
        "royalty_lines",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("artist_uri", sa.String(length=512), nullable=False),
        sa.Column("node_uri", sa.String(length=512), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("venue_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("plays", sa.BigInteger(), nullable=False),
        sa.Column("listeners", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("pro_rata_minor", sa.BigInteger(), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"],
            ["venues.id"],
            name=op.f("fk_royalty_lines_venue_id_venues"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_royalty_lines")),
    )
    with op.batch_alter_table("royalty_lines", schema=None) as batch_op:
        batch_op.create_index(
            "ix_royalty_lines_artist_period", ["artist_uri", "period"], unique=False
        )
        batch_op.create_index(
            "ix_royalty_lines_period_artist", ["period", "artist_uri"], unique=False
        )

    op.create_table(
        "subscriptions",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("first_period", sa.String(length=7), nullable=False),
        sa.Column("last_period", sa.String(length=7), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_subscriptions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("provider", "external_id", name="uq_subscriptions_provider_external"),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index("ix_subscriptions_account", ["account_id"], unique=False)

    op.create_table(
        "venue_licences",
        sa.Column("venue_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"],
            ["venues.id"],
            name=op.f("fk_venue_licences_venue_id_venues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_venue_licences")),
        sa.UniqueConstraint("venue_id", name=op.f("uq_venue_licences_venue_id")),
    )
    op.create_table(
        "subscription_payments",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "subscription_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column(
            "refunds_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ledger_ref", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_subscription_payments_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["refunds_id"],
            ["subscription_payments.id"],
            name=op.f("fk_subscription_payments_refunds_id_subscription_payments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_payments_subscription_id_subscriptions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_payments")),
        sa.UniqueConstraint(
            "provider", "external_id", name="uq_subscription_payments_provider_ext"
        ),
    )
    with op.batch_alter_table("subscription_payments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_subscription_payments_account", ["account_id", "period"], unique=False
        )
        batch_op.create_index(
            "ix_subscription_payments_period_currency",
            ["period", "currency", "account_id"],
            unique=False,
        )

    op.create_table(
        "play_holds",
        sa.Column("play_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=64), nullable=True),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["play_id"], ["plays.id"], name=op.f("fk_play_holds_play_id_plays"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_play_holds")),
        sa.UniqueConstraint("play_id", name=op.f("uq_play_holds_play_id")),
    )
    with op.batch_alter_table("play_holds", schema=None) as batch_op:
        batch_op.create_index("ix_play_holds_released", ["released_at", "created_at"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        for stmt in PG_TRIGGERS:
            op.execute(stmt)
    else:
        for stmt in SQLITE_TRIGGERS:
            op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for stmt in PG_DROP:
            op.execute(stmt)
    else:
        for name in SQLITE_DROP:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    for table in (
        "royalty_payables",
        "royalty_lines",
        "royalty_period_totals",
        "royalty_periods",
        "venue_licences",
        "play_holds",
        "subscription_payments",
        "subscriptions",
        "ledger_entries",
        "ledger_transactions",
    ):
        op.drop_table(table)
