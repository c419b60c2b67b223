"""Secrets come from SSM by name on AWS, from the environment locally."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from shared.errors import ConfigurationError
from shared.secrets import load_ssm_parameters

pytestmark = pytest.mark.unit


@pytest.fixture
def ssm(aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("ssm", region_name="eu-west-1")
        client.put_parameter(
            Name="/chat/prod/service-key", Value="the-service-key", Type="SecureString"
        )
        client.put_parameter(
            Name="/chat/prod/webhook-secret", Value="the-webhook-secret", Type="SecureString"
        )
        yield client


def test_parameters_named_in_the_environment_are_loaded_decrypted(ssm: Any) -> None:
    env = {
        "SUPABASE_SERVICE_ROLE_KEY_SSM": "/chat/prod/service-key",
        "WEBHOOK_SECRET_SSM": "/chat/prod/webhook-secret",
    }
    assert load_ssm_parameters(env) == ["SUPABASE_SERVICE_ROLE_KEY", "WEBHOOK_SECRET"]
    assert env["SUPABASE_SERVICE_ROLE_KEY"] == "the-service-key"
    assert env["WEBHOOK_SECRET"] == "the-webhook-secret"


def test_a_value_already_in_the_environment_wins_and_nothing_is_fetched(ssm: Any) -> None:
    env = {"WEBHOOK_SECRET_SSM": "/chat/prod/does-not-exist", "WEBHOOK_SECRET": "from-dotenv"}
    assert load_ssm_parameters(env) == []
    assert env["WEBHOOK_SECRET"] == "from-dotenv"


def test_a_missing_parameter_fails_at_cold_start_naming_it(ssm: Any) -> None:
    with pytest.raises(ConfigurationError) as failed:
        load_ssm_parameters({"OPENROUTER_API_KEY_SSM": "/chat/prod/missing"})
    assert "/chat/prod/missing" in str(failed.value)


def test_locally_nothing_is_fetched_even_for_unset_settings() -> None:
    env = {"SECRETS_SOURCE": "env", "OPENROUTER_API_KEY_SSM": "/chat/prod/openrouter"}
    assert load_ssm_parameters(env) == []
    assert "OPENROUTER_API_KEY" not in env
