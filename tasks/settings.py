"""One settings object for the whole pipeline, read from the environment (prefix ``WATERLINE_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path(".waterline")


class Settings(BaseSettings):
    """Every knob of Waterline; the defaults run the whole pipeline with no server at all."""

    model_config = SettingsConfigDict(
        env_prefix="WATERLINE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(DEFAULT_HOME, description="Folder for the embedded database and object store.")
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL; defaults to a SQLite file under `home`."
    )
    object_store_url: str | None = Field(
        None, description="Folder or s3://bucket/prefix for reports and other objects."
    )
    inbox_url: str | None = Field(None, description="Folder or s3://bucket/prefix of incoming files.")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, Ceph...).")
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_region: str | None = None

    default_timezone: str = Field("UTC", description="Timezone of a municipality whose registry names none.")
    clock_skew_seconds: int = Field(300, description="How far in the future a reading may be stamped.")
    ingest_chunk_rows: int = Field(
        500_000, gt=0, description="Rows of a file gated and written at a time (bounds memory)."
    )
    ingest_in_memory_rows: int = Field(
        6_000_000,
        ge=0,
        description="A CSV or JSON Lines file of more rows is read in pieces (bounded memory).",
    )

    smtp_host: str | None = Field(None, description="SMTP server; unset writes .eml files instead.")
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: str = Field("starttls", description="starttls, ssl or none.")
    smtp_timeout_seconds: float = 30.0
    smtp_ca_file: Path | None = Field(
        None, description="PEM bundle of the CA(s) to trust for SMTP TLS besides the system's (a private CA)."
    )
    mail_from: str = "Waterline <waterline@localhost>"

    webhook_timeout_seconds: float = Field(15.0, description="Whole-request timeout per attempt.")
    webhook_secret_overlap_hours: int = Field(24, description="Old secret keeps signing this long.")
    webhook_max_concurrency_per_endpoint: int = 4
    webhook_require_https: bool = Field(False, description="Refuse http:// endpoints (production).")
    webhook_allowed_networks: list[str] = Field(
        default_factory=list, description="CIDRs exempt from the private-address refusal."
    )
    public_base_url: str | None = Field(None, description="Base for links in webhook payloads.")

    @property
    def resolved_database_url(self) -> str:
        """The database URL in force (secret: never log it; see `redacted_database_url`)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.home / 'waterline.db').resolve()}"

    @property
    def redacted_database_url(self) -> str:
        """The database URL with any password masked, safe for logs and artifacts."""
        from sqlalchemy.engine import make_url

        return make_url(self.resolved_database_url).render_as_string(hide_password=True)

    @property
    def resolved_object_store_url(self) -> str:
        return self.object_store_url or str((self.home / "objects").resolve())

    @property
    def resolved_inbox_url(self) -> str:
        return self.inbox_url or str((self.home / "inbox").resolve())

    def storage_options(self) -> dict:
        """fsspec options for s3:// URLs (empty for local folders)."""
        client_kwargs = {}
        if self.s3_endpoint_url:
            client_kwargs["endpoint_url"] = self.s3_endpoint_url
        if self.s3_region:
            client_kwargs["region_name"] = self.s3_region
        options: dict = {"client_kwargs": client_kwargs} if client_kwargs else {}
        if self.s3_access_key_id:
            options["key"] = self.s3_access_key_id
        if self.s3_secret_access_key is not None:
            options["secret"] = self.s3_secret_access_key.get_secret_value()
        return options


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment on first use."""
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()


def redact(text: str) -> str:
    """`text` with every configured secret (passwords, keys, URL credentials) replaced by ***."""
    settings = get_settings()
    secrets = [
        s.get_secret_value()
        for s in (settings.smtp_password, settings.s3_secret_access_key)
        if s is not None and s.get_secret_value()
    ]
    from sqlalchemy.engine import make_url

    try:
        password = make_url(settings.resolved_database_url).password
    except Exception:  # noqa: BLE001 - an unparsable URL has no password to hide
        password = None
    if password:
        secrets.append(str(password))
        secrets.append(settings.resolved_database_url)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
