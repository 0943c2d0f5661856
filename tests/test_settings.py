from tasks.settings import Settings, get_settings, redact, reset_settings


def test_defaults_run_embedded_with_nothing_set(home):
    settings = get_settings()
    assert settings.resolved_database_url == f"sqlite:///{(home / 'waterline.db').resolve()}"
    assert settings.resolved_object_store_url == str((home / "objects").resolve())
    assert settings.resolved_inbox_url == str((home / "inbox").resolve())
    assert settings.smtp_host is None


def test_secrets_are_redacted_and_hidden_from_repr(home, monkeypatch):
    monkeypatch.setenv("WATERLINE_DATABASE_URL", "postgresql+psycopg://wl:s3cr3t-pw@db:5432/wl")
    monkeypatch.setenv("WATERLINE_SMTP_PASSWORD", "mail-pa55")
    reset_settings()
    settings = get_settings()
    assert "s3cr3t-pw" not in repr(settings) and "mail-pa55" not in repr(settings)
    assert "s3cr3t-pw" not in settings.redacted_database_url
    message = redact("could not connect to postgresql+psycopg://wl:s3cr3t-pw@db:5432/wl; auth mail-pa55")
    assert "s3cr3t-pw" not in message and "mail-pa55" not in message


def test_s3_options_carry_endpoint_and_keys(home, monkeypatch):
    settings = Settings(s3_endpoint_url="http://127.0.0.1:9000", s3_access_key_id="k",
                        s3_secret_access_key="s")
    assert settings.storage_options() == {
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}, "key": "k", "secret": "s",
    }
