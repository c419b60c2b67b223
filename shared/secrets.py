"""Secrets from SSM Parameter Store, loaded once at cold start.

On AWS a function's environment names its parameters, never their values:
`SUPABASE_SERVICE_ROLE_KEY_SSM=/chat-functions/prod/supabase-service-role-key`.
Before settings are read, each such name is fetched, decrypted, into
`SUPABASE_SERVICE_ROLE_KEY`. A variable present in the environment, even
empty, wins and is never fetched.

SECRETS_SOURCE chooses how:
- `extension` (what serverless.yml deploys): AWS's Parameters and Secrets
  Lambda Extension, a layer answering on http://localhost:2773 (or
  PARAMETERS_SECRETS_EXTENSION_HTTP_PORT), authenticated with the
  function's AWS_SESSION_TOKEN. A loopback HTTP call: no boto3 import, no
  SDK client, no TLS handshake in the cold start.
- `ssm` (the default): one batched GetParameters call through Powertools and
  boto3, for runs with AWS credentials but without the extension.
- `env` (local runs, `sls invoke local`, infra/dev/local.env): nothing is
  fetched: unset means unset.

Every failure is a ConfigurationError naming the parameter and what to do,
never an SDK traceback.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping, MutableMapping
from urllib.parse import quote

from shared.errors import ConfigurationError

SUFFIX = "_SSM"
EXTENSION_PORT = 2773
# The extension starts with the container; its server may need a moment.
EXTENSION_WAIT_SECONDS = 2.0
SOURCES = ("extension", "ssm", "env")


def wanted(environ: Mapping[str, str]) -> dict[str, str]:
    """Setting name -> parameter name, for the settings not already set.
    AWS_* names are the SDK's own (AWS_ENDPOINT_URL_SSM is an endpoint)."""
    return {
        key[: -len(SUFFIX)]: value
        for key, value in environ.items()
        if key.endswith(SUFFIX)
        and not key.startswith("AWS_")
        and value
        and key[: -len(SUFFIX)] not in environ
    }


def load_ssm_parameters(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Fills the environment from SSM; returns the setting names it filled."""
    env = os.environ if environ is None else environ
    source = env.get("SECRETS_SOURCE", "ssm").strip().lower()
    if source not in SOURCES:
        raise ConfigurationError(
            f"SECRETS_SOURCE={source!r} is not one of {', '.join(SOURCES)}: "
            "fix it in the function's environment"
        )
    if source == "env":
        return []
    names = wanted(env)
    if not names:
        return []
    fetch = _from_extension if source == "extension" else _from_ssm
    values = fetch(sorted(set(names.values())), env)
    for setting, parameter in names.items():
        env[setting] = values[parameter]
    return sorted(names)


def _missing(parameters: list[str]) -> ConfigurationError:
    return ConfigurationError(
        f"SSM parameter {', '.join(parameters)} does not exist: create it with "
        "`uv run python scripts/put_ssm_parameters.py --stage <stage> --env-file .env.<stage>`"
    )


def _from_extension(parameters: list[str], env: Mapping[str, str]) -> dict[str, str]:
    """All parameters at once, one thread each: the extension fetches each
    from SSM on a cache miss (every cold start), a network round trip that
    would otherwise be paid once per parameter."""
    token = env.get("AWS_SESSION_TOKEN")
    if not token:
        raise ConfigurationError(
            "SECRETS_SOURCE=extension needs AWS_SESSION_TOKEN (Lambda sets it); "
            "outside Lambda use SECRETS_SOURCE=ssm or env"
        )
    port = int(env.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT") or EXTENSION_PORT)
    deadline = time.monotonic() + EXTENSION_WAIT_SECONDS
    outcomes: dict[str, str | BaseException] = {}

    def read(parameter: str) -> None:
        try:
            outcomes[parameter] = _extension_get(parameter, port, token, deadline)
        except BaseException as exc:  # raised below, in the caller's thread
            outcomes[parameter] = exc

    threads = [threading.Thread(target=read, args=(p,), daemon=True) for p in parameters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    values: dict[str, str] = {}
    for parameter in parameters:  # the first failure in name order, whatever finished first
        outcome = outcomes[parameter]
        if isinstance(outcome, BaseException):
            raise outcome
        values[parameter] = outcome
    return values


def _extension_get(parameter: str, port: int, token: str, deadline: float) -> str:
    # The standard library's client (loaded by httpx anyway): a loopback call
    # needs no pool, TLS or proxy (an HTTP(S)_PROXY for the function's egress
    # must not see it).
    import http.client

    path = f"/systemsmanager/parameters/get?name={quote(parameter, safe='')}&withDecryption=true"
    headers = {"X-Aws-Parameters-Secrets-Token": token}
    while True:
        connection = http.client.HTTPConnection("localhost", port, timeout=5)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            status, body = response.status, response.read()
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"cannot read SSM parameter {parameter}: nothing answers on "
                    f"localhost:{port}; deploy with the Parameters and Secrets "
                    "extension layer (serverless.yml) or set SECRETS_SOURCE=ssm"
                ) from None
            time.sleep(0.02)
        except (OSError, http.client.HTTPException) as exc:  # e.g. an answer cut short
            raise ConfigurationError(
                f"cannot read SSM parameter {parameter} from the secrets extension: {exc!r}"
            ) from None
        finally:
            connection.close()
    if status == 404 or (status == 400 and b"ParameterNotFound" in body):
        raise _missing([parameter])
    if status != 200:
        raise ConfigurationError(
            f"cannot read SSM parameter {parameter}: the secrets extension answered "
            f"{status}; check that the function's role may ssm:GetParameter it "
            "(and kms:Decrypt its key)"
        )
    try:
        return str(json.loads(body)["Parameter"]["Value"])
    except (ValueError, KeyError, TypeError):
        raise ConfigurationError(
            f"cannot read SSM parameter {parameter}: unexpected answer from the extension"
        ) from None


def _from_ssm(parameters: list[str], env: Mapping[str, str]) -> dict[str, str]:  # noqa: ARG001
    # Imported only when there is something to fetch: boto3 costs cold start.
    from aws_lambda_powertools.utilities.parameters import get_parameters_by_name
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        values = get_parameters_by_name(
            parameters={name: {} for name in parameters}, decrypt=True, max_age=300
        )
    except NoCredentialsError:
        raise ConfigurationError(
            f"cannot read SSM parameter {', '.join(parameters)}: no AWS credentials; "
            "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "or SECRETS_SOURCE=env with the values in the environment"
        ) from None
    except GetParameterError as exc:
        missing = [name for name in parameters if name in str(exc)] or parameters
        # Powertools: "Failed to fetch parameters: [names]" for invalid ones.
        if "failed to fetch" in str(exc).lower() or "not found" in str(exc).lower():
            raise _missing(missing) from None
        raise ConfigurationError(f"cannot read SSM parameter {', '.join(missing)}: {exc}") from None
    except (BotoCoreError, ClientError) as exc:
        raise ConfigurationError(
            f"cannot read SSM parameter {', '.join(parameters)}: {exc}; check the region "
            "(AWS_REGION) and that the role may ssm:GetParameters them"
        ) from None
    return {name: str(values[name]) for name in parameters}
