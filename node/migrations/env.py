"""Alembic environment: runs on a connection handed in by `node.db.migrate`."""

from alembic import context
from sqlalchemy import create_engine

from node.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    # Offline autogenerate by developers: a sync URL (sqlite:///file).
    url = config.get_main_option("sqlalchemy.url").replace("+aiosqlite", "")
    engine = create_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
