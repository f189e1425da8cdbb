"""subsonic: credentials, API keys, playlists, stars and ratings

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column:
    return sa.Column("id", ID, autoincrement=True, nullable=False)


def _account(table: str) -> list:
    return [
        sa.Column("account_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f(f"fk_{table}_account_id_accounts"),
            ondelete="CASCADE",
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "subsonic_credentials",
        *_account("subsonic_credentials"),
        sa.Column("password_enc", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_subsonic_credentials")),
    )
    op.create_table(
        "subsonic_api_keys",
        *_account("subsonic_api_keys"),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        _id(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subsonic_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_subsonic_api_keys_key_hash")),
    )
    with op.batch_alter_table("subsonic_api_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subsonic_api_keys_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "subsonic_playlists",
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        _id(),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["accounts.id"],
            name=op.f("fk_subsonic_playlists_owner_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subsonic_playlists")),
    )
    with op.batch_alter_table("subsonic_playlists", schema=None) as batch_op:
        batch_op.create_index("ix_subsonic_playlists_owner", ["owner_id", "id"], unique=False)

    op.create_table(
        "subsonic_playlist_entries",
        sa.Column("playlist_id", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("track_id", ID, nullable=False),
        _id(),
        sa.ForeignKeyConstraint(
            ["playlist_id"],
            ["subsonic_playlists.id"],
            name=op.f("fk_subsonic_playlist_entries_playlist_id_subsonic_playlists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["tracks.id"],
            name=op.f("fk_subsonic_playlist_entries_track_id_tracks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subsonic_playlist_entries")),
    )
    with op.batch_alter_table("subsonic_playlist_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_subsonic_playlist_entries_pos", ["playlist_id", "position"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_subsonic_playlist_entries_track_id"), ["track_id"], unique=False
        )

    op.create_table(
        "subsonic_stars",
        *_account("subsonic_stars"),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("item_id", ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _id(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subsonic_stars")),
        sa.UniqueConstraint("account_id", "kind", "item_id", name="uq_subsonic_stars_item"),
    )
    op.create_table(
        "subsonic_ratings",
        *_account("subsonic_ratings"),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("item_id", ID, nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _id(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subsonic_ratings")),
        sa.UniqueConstraint("account_id", "kind", "item_id", name="uq_subsonic_ratings_item"),
    )


def downgrade() -> None:
    op.drop_table("subsonic_ratings")
    op.drop_table("subsonic_stars")
    with op.batch_alter_table("subsonic_playlist_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subsonic_playlist_entries_track_id"))
        batch_op.drop_index("ix_subsonic_playlist_entries_pos")
    op.drop_table("subsonic_playlist_entries")
    with op.batch_alter_table("subsonic_playlists", schema=None) as batch_op:
        batch_op.drop_index("ix_subsonic_playlists_owner")
    op.drop_table("subsonic_playlists")
    with op.batch_alter_table("subsonic_api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subsonic_api_keys_account_id"))
    op.drop_table("subsonic_api_keys")
    op.drop_table("subsonic_credentials")
