"""Puts the functions' secrets into SSM Parameter Store from a .env file, as
SecureString under /chat-functions/<stage>/ (the names serverless.yml gives
each function), in the region the deploy uses (serverless.yml's default,
eu-west-1, unless --region). Values are never printed.

    make secrets STAGE=prod ENV_FILE=.env.prod [REGION=eu-west-1]
    (runs: scripts/put_ssm_parameters.py --stage prod --env-file .env.prod [--region ...])
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a file, Python puts scripts/ first on the path, not the project.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.args import Parser, fail

PROG = "put_ssm_parameters"
DEFAULT_REGION = "eu-west-1"  # serverless.yml's provider.region

PARAMETERS = {
    "SUPABASE_ANON_KEY": "supabase-anon-key",
    "SUPABASE_SERVICE_ROLE_KEY": "supabase-service-role-key",
    "WEBHOOK_SECRET": "webhook-secret",
    "OPENROUTER_API_KEY": "openrouter-api-key",
    "SUPABASE_JWT_SECRET": "supabase-jwt-secret",  # only for legacy HS256 projects
}
REQUIRED = {
    "SUPABASE_ANON_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "WEBHOOK_SECRET",
    "OPENROUTER_API_KEY",
}


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True, help="the stage you deploy, e.g. prod")
    parser.add_argument("--env-file", type=Path, required=True, help="e.g. .env.prod")
    parser.add_argument("--region", default=DEFAULT_REGION, help="the region you deploy to")
    parser.add_argument("--service", default="chat-functions")
    args = parser.parse_args(argv)
    if not args.stage.replace("-", "").isalnum():
        fail(PROG, f"--stage {args.stage!r}: letters, digits and dashes only (the deploy's stage)")
    try:
        values = read_env(args.env_file)
    except FileNotFoundError:
        fail(PROG, f"no file {args.env_file}: create it with {', '.join(sorted(REQUIRED))}"
                   " (NAME=value lines; README, Deploy)")  # fmt: skip
    except (OSError, UnicodeDecodeError) as exc:
        fail(PROG, f"cannot read {args.env_file}: {getattr(exc, 'strerror', None) or exc}")
    missing = sorted(name for name in REQUIRED if not values.get(name))
    if missing:
        fail(PROG, f"missing in {args.env_file}: {', '.join(missing)}")
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        ssm = boto3.client("ssm", region_name=args.region)
        for setting, leaf in PARAMETERS.items():
            if values.get(setting):
                name = f"/{args.service}/{args.stage}/{leaf}"
                ssm.put_parameter(Name=name, Value=values[setting], Type="SecureString",
                                  Overwrite=True)  # fmt: skip
                print(f"put {name}")
    except NoCredentialsError:
        fail(PROG, "no AWS credentials: run `aws configure` (or set AWS_PROFILE) first")
    except ClientError as exc:
        error = exc.response.get("Error", {})
        fail(PROG, f"SSM refused: {error.get('Code', '?')}: {error.get('Message', exc)}")
    except BotoCoreError as exc:
        fail(PROG, f"cannot reach SSM in {args.region}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
