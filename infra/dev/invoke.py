"""`make invoke FN=... EVENT=...`: `sls invoke local` against the running
`make dev`, whatever its ports, failing when the function does.

Settings, weakest first: infra/dev/local.env, then what `make dev` published
(its database and auth URLs), then the caller's own environment. The
command exits non-zero when sls fails, when it prints no response, on a 5xx
response, or when the worker reports failed records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jwt

from infra.dev.stack import NoStack, find, port_from_env
from scripts.dev_tokens import SECRET

ROOT = Path(__file__).resolve().parents[2]
LOCAL_ENV = ROOT / "infra" / "dev" / "local.env"


def local_env() -> dict[str, str]:
    values = {}
    for line in LOCAL_ENV.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value
    return values


def settings(environ: dict[str, str]) -> dict[str, str]:
    values = local_env()
    try:
        stack = find(port_from_env())
    except NoStack as exc:
        if "DATABASE_URL" not in environ:
            raise
        print(f"make invoke: {exc}; using DATABASE_URL from the environment", file=sys.stderr)
    else:
        values.update(DATABASE_URL=stack.functions_database_url, SUPABASE_URL=stack.supabase_url)
    values.update({key: environ[key] for key in values if key in environ})
    return values


def for_issuer(event: dict[str, Any], supabase_url: str) -> dict[str, Any]:
    """The event with its sample bearer token re-signed for this stack's
    issuer: the committed events carry the default port's `iss`, which a
    stack on other ports rightly refuses. Tokens not signed with the local
    secret are left alone."""
    headers = event.get("headers")
    if not isinstance(headers, dict):
        return event
    bearer = headers.get("authorization", "")
    if not isinstance(bearer, str) or not bearer.startswith("Bearer "):
        return event
    try:
        claims = jwt.decode(
            bearer[7:],
            SECRET,
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_aud": False},
        )
    except jwt.InvalidTokenError:
        return event
    claims["iss"] = f"{supabase_url}/auth/v1"
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    return {**event, "headers": {**headers, "authorization": f"Bearer {token}"}}


def response_of(output: str) -> Any:
    """The handler's return value: the last JSON document sls prints."""
    decoder = json.JSONDecoder()
    for start in [i for i, c in enumerate(output) if c in "{["][::-1]:
        try:
            value, end = decoder.raw_decode(output, start)
        except ValueError:
            continue
        if not output[end:].strip():
            return value
    return None


def failure(response: Any) -> str | None:
    if not isinstance(response, dict):
        return "sls printed no response"
    status = response.get("statusCode")
    if isinstance(status, int) and status >= 500:
        return f"the function answered {status}"
    if response.get("batchItemFailures"):
        return f"the worker failed {len(response['batchItemFailures'])} record(s)"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not all(argv):
        print("usage: make invoke FN=<function> EVENT=<events/....json>", file=sys.stderr)
        return 2
    function, event = argv
    try:
        values = settings(dict(os.environ))
    except NoStack as exc:
        print(
            f"make invoke: {exc} (or set DATABASE_URL to a database of your own)", file=sys.stderr
        )
        return 1
    path = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    try:
        payload = for_issuer(json.loads(Path(event).read_text()), values["SUPABASE_URL"])
    except (OSError, ValueError) as exc:
        print(f"make invoke: cannot read the event {event}: {exc}", file=sys.stderr)
        return 2
    with tempfile.NamedTemporaryFile("w", suffix=".json") as prepared:
        json.dump(payload, prepared)
        prepared.flush()
        command = ["npx", "--no-install", "sls", "invoke", "local", "-f", function, "-p",
                   prepared.name]  # fmt: skip
        command += [arg for key, value in values.items() for arg in ("-e", f"{key}={value}")]
        done = subprocess.run(  # noqa: S603
            command, cwd=ROOT, env={**os.environ, "PATH": path}, capture_output=True, text=True,
            check=False,
        )  # fmt: skip
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        print(f"make invoke: sls invoke local failed (exit {done.returncode})", file=sys.stderr)
        return done.returncode
    problem = failure(response_of(done.stdout))
    if problem:
        print(f"make invoke: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
