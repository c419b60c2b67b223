"""Puts the functions' secrets into SSM Parameter Store from a .env file, as
SecureString under /chat-functions/<stage>/ (the names serverless.yml gives
each function). Values are never printed.

    uv run python scripts/put_ssm_parameters.py --stage prod --env-file .env.prod
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", required=True)
    parser.add_argument("--env-file", type=Path, required=True)
    parser.add_argument("--service", default="chat-functions")
    args = parser.parse_args()
    values = read_env(args.env_file)
    missing = sorted(name for name in REQUIRED if not values.get(name))
    if missing:
        print(f"missing in {args.env_file}: {', '.join(missing)}", file=sys.stderr)
        return 1
    import boto3

    ssm = boto3.client("ssm")
    for setting, leaf in PARAMETERS.items():
        if values.get(setting):
            name = f"/{args.service}/{args.stage}/{leaf}"
            ssm.put_parameter(Name=name, Value=values[setting], Type="SecureString", Overwrite=True)
            print(f"put {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
