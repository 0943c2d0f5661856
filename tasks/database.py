"""Database plumbing: engines, transactions, and the two fast paths (bulk load and frame read)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from functools import lru_cache
from pathlib import Path

import polars as pl
from psycopg import sql as psycopg_sql
from sqlalchemy import Connection, Engine, bindparam, create_engine, event, text
from sqlalchemy.orm import Session

from tasks.settings import get_settings

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cursor = dbapi_conn.cursor()
            cursor.execute("pragma foreign_keys = on")
            cursor.execute("pragma journal_mode = wal")
            cursor.execute("pragma synchronous = normal")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)

    @event.listens_for(engine, "connect")
    def _utc_session(dbapi_conn, _record):  # noqa: ANN001
        with dbapi_conn.cursor() as cursor:
            cursor.execute("set time zone 'UTC'")
        dbapi_conn.commit()

    return engine


def get_engine() -> Engine:
    """The engine for the configured database (one pool per URL per process)."""
    return _engine_for(get_settings().resolved_database_url)


@contextmanager
def begin() -> Iterator[Connection]:
    """A connection inside one transaction: committed on success, rolled back on error."""
    with get_engine().begin() as conn:
        yield conn


@contextmanager
def begin_snapshot() -> Iterator[Connection]:
    """A transaction whose every statement sees the same snapshot of the database: REPEATABLE
    READ on PostgreSQL (whose default gives each statement its own). On SQLite an explicit
    BEGIN: Python's sqlite3 opens a transaction only before a write, so each read would see the
    newest data; in a transaction, reads keep the snapshot of the first (WAL mode)."""
    engine = get_engine()
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite" and not conn.connection.driver_connection.in_transaction:
            conn.exec_driver_sql("begin")
        yield conn


@contextmanager
def arrow_readers(conn: Connection, count: int) -> Iterator[list]:
    """`count` ADBC connections to `conn`'s PostgreSQL database that read its snapshot (exported
    with `pg_export_snapshot()`, imported with `SET TRANSACTION SNAPSHOT`): results come as Arrow
    tables parsed in C++, without a Python object per row, and reads on several of them run at
    once. `conn` must be in a REPEATABLE READ transaction (`begin_snapshot`) and stay open."""
    import adbc_driver_postgresql.dbapi as adbc

    exported = conn.exec_driver_sql("select pg_export_snapshot()").scalar_one()
    snapshot = psycopg_sql.Literal(exported).as_string(conn.connection.driver_connection)
    uri = conn.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with ExitStack() as stack:
        readers = []
        for _ in range(count):
            reader = stack.enter_context(adbc.connect(uri))  # not autocommit: inside a transaction
            with reader.cursor() as cursor:
                cursor.execute("set transaction isolation level repeatable read")
                cursor.execute(f"set transaction snapshot {snapshot}")  # a quoted literal
            readers.append(reader)
        yield readers


def read_arrow(reader, sql: str, params: Mapping, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:  # noqa: ANN001
    """A named query's rows read on an ADBC connection (`arrow_readers`), as a frame of `schema`."""
    statement, values = _psycopg_statement(sql, params, paramstyle="numeric_dollar")
    with reader.cursor() as cursor:
        cursor.execute(statement, values)
        frame = pl.from_arrow(cursor.fetch_arrow_table())
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())


@contextmanager
def session() -> Iterator[Session]:
    """An ORM session inside one transaction."""
    with Session(get_engine()) as s, s.begin():
        yield s


def load_sql(name: str) -> str:
    """The text of a named query, `sql/queries/<name>.sql`."""
    return (SQL_DIR / "queries" / f"{name}.sql").read_text()


def run_sql(conn: Connection, name: str, params: Mapping | None = None):
    """Run a named query with bound parameters and return the SQLAlchemy result."""
    params = dict(params or {})
    return conn.execute(bound_text(load_sql(name), params), params)


def bound_text(sql: str, params: Mapping):
    """`text(sql)` with list and tuple parameters expanded for `in :name`."""
    clause = text(sql)
    expanding = [bindparam(k, expanding=True) for k, v in params.items() if isinstance(v, list | tuple)]
    return clause.bindparams(*expanding) if expanding else clause


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _to_db_frame(df: pl.DataFrame, sqlite: bool) -> pl.DataFrame:
    """Timestamps as UTC: naive text on SQLite (SQLAlchemy's format), ISO with zone on PostgreSQL."""
    casts = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.Datetime):
            col = pl.col(name)
            if dtype.time_zone is not None:
                col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            fmt = "%Y-%m-%d %H:%M:%S.%6f" if sqlite else "%Y-%m-%dT%H:%M:%S.%6f+00:00"
            casts.append(col.dt.strftime(fmt).alias(name))
        elif dtype == pl.Date:
            casts.append(pl.col(name).dt.strftime("%Y-%m-%d").alias(name))
        elif isinstance(dtype, pl.List | pl.Struct | pl.Object):
            raise TypeError(f"column {name} of type {dtype} cannot be bulk-loaded")
    return df.with_columns(casts) if casts else df


def _quoted(name: str) -> str:
    """A column name quoted for both dialects (`window`, `hour`, `day` are reserved in some)."""
    return '"' + name.replace('"', '""') + '"'


def bulk_insert(
    conn: Connection,
    table: str,
    df: pl.DataFrame,
    conflict_columns: list[str] | None = None,
    update_columns: list[str] | None = None,
) -> int:
    """Insert a frame fast (COPY on PostgreSQL), skipping or updating rows whose key exists.

    With `conflict_columns` and no `update_columns`, existing keys are left alone; with
    `update_columns` they are overwritten. Returns the number of rows inserted or updated.
    """
    if df.is_empty():
        return 0
    columns = list(df.columns)
    col_list = ", ".join(_quoted(c) for c in columns)
    if conflict_columns is None:
        conflict = ""
    else:
        keys = ", ".join(_quoted(c) for c in conflict_columns)
        if update_columns:
            sets = ", ".join(f"{_quoted(c)} = excluded.{_quoted(c)}" for c in update_columns)
            conflict = f" on conflict ({keys}) do update set {sets}"
        else:
            conflict = f" on conflict ({keys}) do nothing"
    if is_postgres(conn):
        staging = f"_bulk_{table}"
        conn.exec_driver_sql(
            f"create temp table if not exists {staging} (like {table} including defaults) on commit drop"
        )
        conn.exec_driver_sql(f"truncate {staging}")
        append_frame(conn, staging, df)
        return conn.exec_driver_sql(
            f"insert into {table} ({col_list}) select {col_list} from {staging}{conflict}"
        ).rowcount
    placeholders = ", ".join("?" for _ in columns)
    statement = f"insert into {table} ({col_list}) values ({placeholders}){conflict}"
    raw = conn.connection.driver_connection
    before = raw.total_changes
    _insert_rows(raw, statement, _to_db_frame(df, sqlite=True))
    return raw.total_changes - before


def append_frame(conn: Connection, table: str, df: pl.DataFrame, analyze: bool = False) -> None:
    """Append a frame to a table as is: COPY on PostgreSQL, executemany on SQLite.

    With `analyze`, PostgreSQL gathers statistics afterwards: a temporary table has none until asked,
    and the planner then guesses badly when joining it to a large table.
    """
    if df.is_empty():
        return
    columns = ", ".join(_quoted(c) for c in df.columns)
    frame = _to_db_frame(df, sqlite=not is_postgres(conn))
    raw = conn.connection.driver_connection
    if is_postgres(conn):
        with raw.cursor() as cursor, cursor.copy(f"copy {table} ({columns}) from stdin (format csv)") as copy:
            for chunk in frame.iter_slices(200_000):
                buffer = io.BytesIO()
                chunk.write_csv(buffer, include_header=False, null_value="")
                copy.write(buffer.getvalue())
        if analyze:
            raw.execute(f"analyze {table}")
        return
    placeholders = ", ".join("?" for _ in df.columns)
    _insert_rows(raw, f"insert into {table} ({columns}) values ({placeholders})", frame)


def _insert_rows(raw, statement: str, frame: pl.DataFrame) -> None:
    cursor = raw.cursor()
    for chunk in frame.iter_slices(200_000):
        cursor.executemany(statement, chunk.iter_rows())
    cursor.close()


def read_frame(
    conn: Connection,
    sql: str,
    params: Mapping | None = None,
    schema: Mapping[str, pl.DataType] | None = None,
) -> pl.DataFrame:
    """Run a query and return a Polars frame (COPY on PostgreSQL); timestamps come back UTC-aware."""
    params = dict(params or {})
    if is_postgres(conn):
        raw = conn.connection.driver_connection
        statement, values = _psycopg_statement(sql, params)
        buffer = io.BytesIO()
        with raw.cursor() as cursor:
            with cursor.copy(f"copy ({statement}) to stdout (format csv, header)", values) as copy:
                for block in copy:
                    buffer.write(block)
        if buffer.tell() == 0:
            return pl.DataFrame(schema=schema)
        buffer.seek(0)
        df = pl.read_csv(buffer, schema_overrides=_csv_overrides(schema), try_parse_dates=False)
    else:
        result = conn.execute(bound_text(sql, params), params)
        names = list(result.keys())
        rows = result.fetchall()
        df = pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
        if df.is_empty() and schema:
            return pl.DataFrame(schema=schema)
    return _parse_frame(df, schema)


def _psycopg_statement(sql: str, params: Mapping, paramstyle: str = "format") -> tuple[str, list]:
    """Turn `:name` parameters into positional placeholders: psycopg's `%s` (client-side binding
    for COPY), or `$1` for ADBC with `paramstyle="numeric_dollar"`."""
    compiled = (
        bound_text(sql, params)
        .bindparams(**params)
        .compile(
            compile_kwargs={"render_postcompile": True},
            dialect=_pg_dialect(paramstyle),
        )
    )
    values = [compiled.params[name] for name in compiled.positiontup]
    return str(compiled), values


@lru_cache(maxsize=2)
def _pg_dialect(paramstyle: str):
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    dialect = PGDialect_psycopg()
    dialect.paramstyle = paramstyle
    dialect.positional = True
    return dialect


def _csv_overrides(schema: Mapping[str, pl.DataType] | None) -> dict | None:
    if not schema:
        return None
    return {
        name: (pl.String if isinstance(dtype, pl.Datetime) or dtype == pl.Date else dtype)
        for name, dtype in schema.items()
    }


def _parse_frame(df: pl.DataFrame, schema: Mapping[str, pl.DataType] | None) -> pl.DataFrame:
    if not schema:
        return df
    exprs = []
    for name, dtype in schema.items():
        if name not in df.columns:
            continue
        current = df.schema[name]
        if isinstance(dtype, pl.Datetime):
            if current == pl.String:
                col = pl.col(name).str.to_datetime(time_zone="UTC", time_unit="us")
            elif isinstance(current, pl.Datetime) and current.time_zone is None:
                col = pl.col(name).dt.replace_time_zone("UTC")
            else:
                col = pl.col(name)
            exprs.append(col.cast(pl.Datetime("us", "UTC")).alias(name))
        elif dtype == pl.Date and current == pl.String:
            exprs.append(pl.col(name).str.to_date().alias(name))
        else:
            exprs.append(pl.col(name).cast(dtype).alias(name))
    return df.with_columns(exprs)
