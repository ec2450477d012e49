from __future__ import annotations

from pathlib import Path

import pytest

from seo_engine.settings import SettingsError, display_name, host_urls, load_settings


def test_defaults_use_the_embedded_server_in_a_local_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = load_settings()
    assert settings.database_url is None
    assert settings.data_dir == Path(".seo-engine")
    assert settings.statement_cache_size == 100


def test_environment_values_are_read_with_their_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.internal:6432/pages")
    monkeypatch.setenv("SEO_ENGINE_STATEMENT_CACHE_SIZE", "0")
    monkeypatch.setenv("SEO_ENGINE_ACQUIRE_TIMEOUT", "0.5")
    settings = load_settings()
    assert settings.database_url == "postgresql://app@db.internal:6432/pages"
    assert settings.statement_cache_size == 0
    assert settings.acquire_timeout == 0.5


def test_a_bad_value_fails_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEO_ENGINE_POOL_MAX_SIZE", "lots")
    with pytest.raises(SettingsError, match="SEO_ENGINE_POOL_MAX_SIZE"):
        load_settings()


def test_a_negative_timeout_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEO_ENGINE_STATEMENT_TIMEOUT", "-1")
    with pytest.raises(SettingsError, match="SEO_ENGINE_STATEMENT_TIMEOUT"):
        load_settings()


def test_a_database_url_that_is_not_postgres_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://root@localhost/db")
    with pytest.raises(SettingsError, match=r"DATABASE_URL: .*postgresql://"):
        load_settings()


def test_pool_minimum_above_maximum_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEO_ENGINE_POOL_MIN_SIZE", "20")
    monkeypatch.setenv("SEO_ENGINE_POOL_MAX_SIZE", "5")
    with pytest.raises(SettingsError, match="SEO_ENGINE_POOL_MIN_SIZE"):
        load_settings()


def test_an_error_message_never_repeats_the_database_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://root:hunter2@localhost/db")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)


def test_read_replicas_are_one_host_or_several(monkeypatch: pytest.MonkeyPatch) -> None:
    several = "postgresql://app:pw@r1:5432,[::1]:5433/pages?target_session_attrs=prefer-standby"
    monkeypatch.setenv("SEO_ENGINE_READ_DATABASE_URL", several)
    assert host_urls(str(load_settings().read_database_url)) == [
        "postgresql://app:pw@r1:5432/pages?target_session_attrs=prefer-standby",
        "postgresql://app:pw@[::1]:5433/pages?target_session_attrs=prefer-standby",
    ]
    assert [display_name(url) for url in host_urls(several)] == ["r1:5432", "[::1]:5433"]
    assert host_urls("postgresql:///pages?host=/run/postgresql") == [
        "postgresql:///pages?host=/run/postgresql"
    ]
    for bad in ("postgresql://r1:5432,,r2/pages", "mysql://r1/pages"):
        monkeypatch.setenv("SEO_ENGINE_READ_DATABASE_URL", bad)
        with pytest.raises(SettingsError, match="SEO_ENGINE_READ_DATABASE_URL"):
            load_settings()
