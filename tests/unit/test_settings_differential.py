"""Our settings (plain pydantic models read from os.environ, shared.settings)
against pydantic-settings, which they replace: each settings class, given
the same generated environment, loads the same values or fails in both.

pydantic-settings is configured as ours behaves by design: variable names
are exact (case-sensitive) and a comma-separated value reaches the field's
own validator as it is (ALLOWED_ORIGINS is not JSON)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from functions.token.settings import TokenSettings
from shared.bots.settings import BotTriggerSettings, BotWorkerSettings
from shared.errors import ConfigurationError
from shared.settings import EnvSettings, Settings, load

pytestmark = pytest.mark.unit

# Each class with an environment it loads; examples change or drop some of it.
CLASSES: dict[type[EnvSettings], dict[str, str]] = {
    Settings: {"SUPABASE_URL": "https://abc.supabase.co", "SUPABASE_ANON_KEY": "anon"},
    TokenSettings: {},
    BotTriggerSettings: {"WEBHOOK_SECRET": "a-long-enough-webhook-secret", "BOT_QUEUE_URL": "q"},
    BotWorkerSettings: {},
}


def _reference(cls: type[EnvSettings]) -> type[BaseSettings]:
    """The same fields and validators, read by pydantic-settings."""
    config = SettingsConfigDict(
        case_sensitive=True, enable_decoding=False, extra="ignore", frozen=True
    )
    return type(f"Reference{cls.__name__}", (cls, BaseSettings), {"model_config": config})


def _variables(cls: type[EnvSettings]) -> list[str]:
    names = []
    for field in cls.model_fields.values():
        alias: Any = field.validation_alias
        names += [str(c) for c in alias.choices] if hasattr(alias, "choices") else [str(alias)]
    return names


_VALUES = [
    "", " ", "https://abc.supabase.co", "https://abc.supabase.co/", "http://127.0.0.1:54321",
    "ftp://x", "not a url", "https://a.example.com,https://b.example.com", "https://a.example.com/",
    "https://a.example.com/path", "postgresql://authenticator@db:5432/postgres", "mysql://x",
    "0", "1", "-1", "2.5", "60", "51", "abc", "x-webhook-secret", "bad header",
    "a-long-enough-webhook-secret", "short", "sb_secret_abc", "eyJ.a.b", "sqs://q", "true",
]  # fmt: skip


def _outcome(load_it: Any) -> Any:
    try:
        return load_it().model_dump(mode="json")
    except (ValidationError, ConfigurationError):
        return "refused"


@pytest.mark.parametrize("cls", list(CLASSES), ids=lambda c: c.__name__)
def test_each_settings_class_reads_an_environment_as_pydantic_settings_would(
    cls: type[EnvSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    names, reference = _variables(cls), _reference(cls)
    seen = {"loaded": 0, "refused": 0}

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(
        changes=st.dictionaries(st.sampled_from(names), st.sampled_from(_VALUES), max_size=3),
        dropped=st.sets(st.sampled_from(names), max_size=1),
    )
    def same(changes: dict[str, str], dropped: set[str]) -> None:
        env = {k: v for k, v in {**CLASSES[cls], **changes}.items() if k not in dropped}
        for name in names:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        ours = _outcome(lambda: load(cls, env))
        theirs = _outcome(reference)
        assert ours == theirs, env
        seen["refused" if ours == "refused" else "loaded"] += 1

    same()
    # Both outcomes were met often: the agreement means something
    assert min(seen.values()) >= 10, seen
