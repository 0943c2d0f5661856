"""Shared fixtures: a migrated database per test (SQLite and PostgreSQL), a temporary home,
a Prefect test server for the few tests that run whole flows, and `seed`, which writes
municipalities, sensors and readings the way ingestion leaves them."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

import polars as pl
import pytest
from sqlalchemy import create_engine, insert, inspect, text
from sqlalchemy.engine import make_url

from tasks.database import _engine_for, bulk_insert
from tasks.models import IngestBatch, Municipality, Sensor, Station
from tasks.settings import reset_settings

# The test server must not try to send usage telemetry (no internet here; it logs the failure).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

POSTGRES_ADMIN_URL = os.environ.get(
    "WATERLINE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("WATERLINE_REQUIRE_POSTGRES", "") not in ("", "0", "false")


def _postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


_PG_PROBLEM = _postgres_reachable()


def pytest_sessionstart(session):  # noqa: ANN001
    if REQUIRE_POSTGRES and _PG_PROBLEM:
        raise pytest.UsageError(
            f"WATERLINE_REQUIRE_POSTGRES is set but PostgreSQL is unreachable: {_PG_PROBLEM}"
        )


def pytest_collection_modifyitems(config, items):  # noqa: ANN001
    if _PG_PROBLEM is None:
        return
    skip = pytest.mark.skip(reason=f"PostgreSQL unreachable ({_PG_PROBLEM})")
    for item in items:
        if "postgresql" in item.keywords or "[postgresql" in item.nodeid:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres_worker_url(worker_id: str) -> str:
    """A throwaway PostgreSQL database for this xdist worker, migrated once."""
    name = re.sub(r"\W", "_", f"waterline_test_{worker_id}_{os.getpid()}")
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'drop database if exists "{name}" with (force)'))
        conn.execute(text(f'create database "{name}"'))
    admin.dispose()
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    _migrate(url)
    yield url
    _engine_for.cache_clear()
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


def _migrate(url: str) -> None:
    os.environ["WATERLINE_DATABASE_URL"] = url
    reset_settings()
    from tasks.migrations import upgrade

    upgrade()


def _truncate_all(url: str) -> None:
    engine = _engine_for(url)
    with engine.begin() as conn:
        tables = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
        conn.execute(text(f"truncate {', '.join(tables)} restart identity cascade"))


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh Waterline home (object store and inbox) with settings read anew."""
    monkeypatch.setenv("WATERLINE_HOME", str(tmp_path / "home"))
    for name in list(os.environ):
        if name.startswith("WATERLINE_") and name not in (
            "WATERLINE_HOME",
            "WATERLINE_TEST_POSTGRES_URL",
            "WATERLINE_REQUIRE_POSTGRES",
        ):
            monkeypatch.delenv(name, raising=False)
    reset_settings()
    yield tmp_path / "home"
    reset_settings()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database(request, home, monkeypatch):
    """A migrated, empty database: a SQLite file, or this worker's PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'waterline.db'}"
        monkeypatch.setenv("WATERLINE_DATABASE_URL", url)
        reset_settings()
        from tasks.migrations import upgrade

        upgrade()
    else:
        url = request.getfixturevalue("postgres_worker_url")
        monkeypatch.setenv("WATERLINE_DATABASE_URL", url)
        reset_settings()
        _truncate_all(url)
    yield url
    reset_settings()


@pytest.fixture
def postgres_database(request, home, monkeypatch):
    """Like `database`, PostgreSQL only (for tests of the production path)."""
    if _PG_PROBLEM:
        pytest.skip(f"PostgreSQL unreachable ({_PG_PROBLEM})")
    url = request.getfixturevalue("postgres_worker_url")
    monkeypatch.setenv("WATERLINE_DATABASE_URL", url)
    reset_settings()
    _truncate_all(url)
    yield url
    reset_settings()


@pytest.fixture(scope="session")
def prefect_server():
    """A Prefect API server for this test session (about 9 s to start; use only for flow tests)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def worker_id(request) -> str:
    """The xdist worker name, or 'master' without xdist."""
    workerinput = getattr(request.config, "workerinput", None)
    return workerinput["workerid"] if workerinput else "master"


@pytest.fixture(scope="session")
def s3_server() -> str:
    """A real S3-protocol server (moto's, on loopback) with a bucket `waterline`; its endpoint."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    ).create_bucket(Bucket="waterline")
    yield endpoint
    server.stop()


@pytest.fixture
def self_signed_certificate():
    """Makes one-hour self-signed certificates: `self_signed_certificate(folder, san)`."""
    return _self_signed_certificate


def _self_signed_certificate(folder, subject_alt_name) -> tuple:  # noqa: ANN001
    """A one-hour self-signed certificate (its own CA) for `subject_alt_name` (an x509 general
    name: DNSName or IPAddress) and its key, as PEM files in `folder`: (cert_file, key_file)."""
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "waterline test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([subject_alt_name]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class Seeder:
    """Writes municipalities, sensors and readings the way ingestion leaves them."""

    def municipality(
        self,
        conn,
        municipality_id: str,
        timezone: str,
        sensors: dict[str, str],
        interval_seconds: int = 600,
    ) -> int:
        """A municipality with one station and `sensors` ({id: parameter}) reading every
        `interval_seconds`; returns a batch id."""
        from tasks.parameters import parameter

        conn.execute(
            insert(Municipality).values(
                id=municipality_id,
                name=municipality_id.title(),
                timezone=timezone,
                standards=["WHO"],
                regulator_emails=[],
            )
        )
        station = f"{municipality_id}-plant"
        conn.execute(insert(Station).values(id=station, municipality_id=municipality_id, name="Plant"))
        for sensor_id, name in sensors.items():
            spec = parameter(name)
            conn.execute(
                insert(Sensor).values(
                    id=sensor_id,
                    municipality_id=municipality_id,
                    station_id=station,
                    parameter=name,
                    unit=spec.unit,
                    kind="online",
                    valid_min=spec.min,
                    valid_max=spec.max,
                    interval_seconds=interval_seconds,
                    installed_at=datetime(2026, 1, 1, tzinfo=UTC),
                    last_calibrated_at=datetime(2026, 3, 1, tzinfo=UTC),
                    active=True,
                )
            )
        return conn.execute(
            insert(IngestBatch).values(
                municipality_id=municipality_id,
                source=f"test://{municipality_id}",
                checksum_sha256=municipality_id,
                file_format="csv",
                status="loaded",
            )
        ).inserted_primary_key[0]

    def readings(self, conn, municipality_id: str, batch_id: int, frame: pl.DataFrame) -> int:
        """Insert `sensor_id`, `observed_at`, `value` (and optional `qc_flag`) rows."""
        if "qc_flag" not in frame.columns:
            frame = frame.with_columns(qc_flag=pl.lit(1))
        rows = frame.with_columns(municipality_id=pl.lit(municipality_id), batch_id=pl.lit(batch_id))
        return bulk_insert(conn, "readings", rows, conflict_columns=["sensor_id", "observed_at"])


@pytest.fixture
def seed() -> Seeder:
    return Seeder()
