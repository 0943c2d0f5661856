"""Apply the schema migrations in `sql/migrations` (Alembic) to the configured database."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from tasks.database import SQL_DIR, get_engine


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SQL_DIR / "migrations"))
    engine = get_engine()
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(revision: str = "head") -> str:
    """Bring the database to `revision`; returns the revision now in force."""
    with get_engine().begin() as conn:
        command.upgrade(alembic_config(conn), revision)
    return current_revision()


def current_revision() -> str | None:
    from alembic.runtime.migration import MigrationContext

    with get_engine().connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
