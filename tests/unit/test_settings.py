"""Settings are validated at cold start and the error names the setting."""

from __future__ import annotations

import pytest

from shared.errors import ConfigurationError
from shared.settings import load_settings

pytestmark = pytest.mark.unit

BASE = {"SUPABASE_URL": "https://abcdefgh.supabase.co/", "SUPABASE_ANON_KEY": "anon"}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "SUPABASE_URL",
        "SUPABASE_ANON_KEY",
        "SUPABASE_PUBLISHABLE_KEY",
        "SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_SECRET_KEY",
        "SUPABASE_JWT_SECRET",
        "DATABASE_URL",
        "ALLOWED_ORIGINS",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_minimal_settings_load(env: pytest.MonkeyPatch) -> None:
    for k, v in BASE.items():
        env.setenv(k, v)
    env.setenv("ALLOWED_ORIGINS", " https://app.example.com, http://localhost:5173/ ,")
    settings = load_settings()
    assert settings.supabase_url == "https://abcdefgh.supabase.co"
    assert settings.project_ref == "abcdefgh"
    assert settings.allowed_origins == ("https://app.example.com", "http://localhost:5173")
    assert settings.database_url is None


def test_publishable_and_secret_key_names_are_accepted(env: pytest.MonkeyPatch) -> None:
    env.setenv("SUPABASE_URL", "https://x.supabase.co")
    env.setenv("SUPABASE_PUBLISHABLE_KEY", "sb_publishable_1")
    env.setenv("SUPABASE_SECRET_KEY", "sb_secret_1")
    settings = load_settings()
    assert settings.supabase_anon_key.get_secret_value() == "sb_publishable_1"
    assert settings.supabase_service_role_key is not None


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"SUPABASE_URL": None}, "SUPABASE_URL"),
        ({"SUPABASE_URL": "not a url"}, "SUPABASE_URL"),
        ({"SUPABASE_ANON_KEY": None}, "SUPABASE_ANON_KEY"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"ALLOWED_ORIGINS": "*"}, "ALLOWED_ORIGINS"),
        ({"ALLOWED_ORIGINS": "https://app.example.com/path"}, "ALLOWED_ORIGINS"),
    ],
)
def test_a_bad_setting_is_named(
    env: pytest.MonkeyPatch, overrides: dict[str, str | None], named: str
) -> None:
    for k, v in {**BASE, **overrides}.items():
        if v is not None:
            env.setenv(k, v)
    with pytest.raises(ConfigurationError) as failed:
        load_settings()
    assert named in str(failed.value)


def test_secrets_do_not_show_in_repr(env: pytest.MonkeyPatch) -> None:
    for k, v in BASE.items():
        env.setenv(k, v)
    env.setenv("SUPABASE_SERVICE_ROLE_KEY", "very-secret-service-key")
    assert "very-secret-service-key" not in repr(load_settings())


def test_a_direct_database_url_without_psycopg_stops_the_cold_start(
    env: pytest.MonkeyPatch,
) -> None:
    from shared import container

    for k, v in {**BASE, "DATABASE_URL": "postgresql://u@db/postgres"}.items():
        env.setenv(k, v)
    env.setattr(container, "find_spec", lambda _name: None)
    container.reset()
    try:
        with pytest.raises(SystemExit) as stopped:
            container.configured()
        assert "DATABASE_URL is set but this artifact has no psycopg" in str(stopped.value)
        assert "--with-direct-db" in str(stopped.value)
    finally:
        container.reset()


def test_a_missing_setting_says_it_is_not_set(env: pytest.MonkeyPatch) -> None:
    env.setenv("SUPABASE_URL", "https://x.supabase.co")
    with pytest.raises(ConfigurationError) as failed:
        load_settings()
    assert "SUPABASE_ANON_KEY or SUPABASE_PUBLISHABLE_KEY is not set" in str(failed.value)


def test_the_workers_retry_delays_follow_the_receive_count(env: pytest.MonkeyPatch) -> None:
    from shared.bots.settings import BotWorkerSettings
    from shared.settings import load

    env.setenv("BOT_RETRY_DELAYS", " 5, 20,60 ,180")
    config = load(BotWorkerSettings)
    assert config.bot_retry_delays == (5, 20, 60, 180)
    assert [config.retry_delay(n) for n in range(1, 7)] == [5, 20, 60, 180, 180, 180]
    # a provider's Retry-After is honoured, up to the longest delay
    assert config.retry_delay(1, asked=42) == 42
    assert config.retry_delay(1, asked=3600) == 180
    assert config.retry_delay(3, asked=1) == 60
    for bad in ("", "5,-1", "5,50000", "soon"):
        env.setenv("BOT_RETRY_DELAYS", bad)
        with pytest.raises(ConfigurationError, match="BOT_RETRY_DELAYS"):
            load(BotWorkerSettings)
