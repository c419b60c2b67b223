"""Secrets from SSM Parameter Store, loaded once at cold start.

On AWS a function's environment names its parameters, never their values:
`SUPABASE_SERVICE_ROLE_KEY_SSM=/chat-functions/prod/supabase-service-role-key`.
Before settings are read, each such name is fetched (one batched, decrypted,
cached call through Powertools Parameters) into `SUPABASE_SERVICE_ROLE_KEY`.
A variable present in the environment, even empty, wins and is never
fetched; and with SECRETS_SOURCE=env (local runs, `sls invoke local`,
infra/dev/local.env) nothing is fetched at all: unset means unset.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from shared.errors import ConfigurationError

SUFFIX = "_SSM"


def wanted(environ: MutableMapping[str, str]) -> dict[str, str]:
    """Setting name -> parameter name, for the settings not already set."""
    return {
        key[: -len(SUFFIX)]: value
        for key, value in environ.items()
        if key.endswith(SUFFIX) and value and key[: -len(SUFFIX)] not in environ
    }


def load_ssm_parameters(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Fills the environment from SSM; returns the setting names it filled."""
    env = os.environ if environ is None else environ
    if env.get("SECRETS_SOURCE", "ssm").lower() == "env":
        return []
    names = wanted(env)
    if not names:
        return []
    # Imported only when there is something to fetch: boto3 costs cold start.
    from aws_lambda_powertools.utilities.parameters import get_parameters_by_name
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        values = get_parameters_by_name(
            parameters={name: {} for name in names.values()}, decrypt=True, max_age=300
        )
    except GetParameterError as exc:
        raise ConfigurationError(f"cannot read SSM parameters: {exc}") from None
    for setting, parameter in names.items():
        env[setting] = str(values[parameter])
    return sorted(names)
