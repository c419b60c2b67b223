"""`make invoke FN=... [EVENT=...] [EXPECT=...]`: `sls invoke local` of one
function against the running `make dev`, whatever its ports, offline.

Settings, weakest first: infra/dev/local.env, then what `make dev` published
(its database and auth URLs, and its job queue's SQS API: bot-trigger's jobs
go to the queue make dev's worker reads, see infra/dev/sqs.py), then the
caller's own environment. The sample event's credentials are made good for
that stack: a bearer token or session cookie signed with the local secret is
re-signed for its issuer with an hour to live, the webhook secret header is
the stack's. The command fails (non-zero) when sls fails or prints no
response, on any 4xx or 5xx (unless EXPECT names the status the event should
get), or when the worker reports failed records. Without FN, or with one
serverless.yml does not define, it lists the functions and their events.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt

from infra.dev.stack import NoStack, Stack, find, port_from_env
from infra.serverless import functions
from scripts.dev_tokens import SECRET
from shared.session.cookies import decode, encode

ROOT = Path(__file__).resolve().parents[2]
LOCAL_ENV = ROOT / "infra" / "dev" / "local.env"
EVENTS = ROOT / "events"
HOUR = 3600
# Credentials for the local queue only: never a real account's (nothing else is called).
OFFLINE_AWS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
               "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip


def usage(problem: str) -> str:
    rows = "\n".join(f"  {f.name:14} {f.event}" for f in functions())
    return (
        f"make invoke: {problem}. The functions and their sample events:\n{rows}\n"
        "e.g. make invoke FN=threadEnsure  (EVENT=<file> for another event, EXPECT=<status>"
        " for one that should fail, PORT=<make dev's PORT> when several run)"
    )


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
        stack: Stack | None = find(port_from_env())
    except NoStack as exc:
        if "DATABASE_URL" not in environ:
            raise
        print(f"make invoke: {exc}; using DATABASE_URL from the environment", file=sys.stderr)
        stack = None
    if stack is not None:
        values.update(
            DATABASE_URL=stack.functions_database_url, SUPABASE_URL=stack.supabase_url,
            BOT_QUEUE_URL=stack.queue_url, AWS_ENDPOINT_URL_SQS=stack.sqs_endpoint, **OFFLINE_AWS,
        )  # fmt: skip
    values.update({key: environ[key] for key in values if key in environ})
    return values


def _resign(token: str, supabase_url: str) -> str | None:
    """The token signed again for this stack's issuer, valid for an hour;
    None for one not signed with the local secret (left as it is)."""
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"],
                            options={"verify_exp": False, "verify_aud": False})  # fmt: skip
    except jwt.InvalidTokenError:
        return None
    now = int(time.time())
    claims.update(iss=f"{supabase_url}/auth/v1", iat=now, exp=now + HOUR)
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _fresh_cookie(cookie: str, supabase_url: str) -> str:
    """A session cookie whose access token is re-signed (so the token
    function answers with it, no refresh needed)."""
    name, _, value = cookie.partition("=")
    decoded = decode(value)
    if decoded is None:
        return cookie
    session, encoding = decoded
    token = _resign(str(session.get("access_token", "")), supabase_url)
    if token is None:
        return cookie
    claims = jwt.decode(token, options={"verify_signature": False})
    session = {**session, "access_token": token, "expires_at": claims["exp"], "expires_in": HOUR}
    return f"{name}={encode(session, encoding)}"


def prepared(event: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The sample event with its credentials good for this stack."""
    supabase_url = values["SUPABASE_URL"]
    headers = event.get("headers")
    if isinstance(headers, dict):
        headers = dict(headers)
        bearer = headers.get("authorization")
        if isinstance(bearer, str) and bearer.startswith("Bearer "):
            token = _resign(bearer[7:], supabase_url)
            if token is not None:
                headers["authorization"] = f"Bearer {token}"
        secret_header = values.get("WEBHOOK_SECRET_HEADER", "x-webhook-secret").lower()
        if secret_header in headers and values.get("WEBHOOK_SECRET"):
            headers[secret_header] = values["WEBHOOK_SECRET"]
        event = {**event, "headers": headers}
    cookies = event.get("cookies")
    if isinstance(cookies, list):
        event = {**event, "cookies": [_fresh_cookie(str(c), supabase_url) for c in cookies]}
    return event


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


def failure(response: Any, expect: int | None = None) -> str | None:
    if not isinstance(response, dict):
        return "sls printed no response"
    status = response.get("statusCode")
    if expect is not None:
        return None if status == expect else f"the function answered {status}, not {expect}"
    if isinstance(status, int) and status >= 400:
        return f"the function answered {status}"
    if response.get("batchItemFailures"):
        return f"the worker failed {len(response['batchItemFailures'])} record(s)"
    return None


def main(argv: list[str]) -> int:
    asked, event_file = [*argv, "", ""][:2]
    known = functions()
    if not asked:
        print(usage("which function? Give FN"), file=sys.stderr)
        return 2
    chosen = next((f for f in known if f.answers_to(asked)), None)
    if chosen is None:
        print(usage(f"serverless.yml has no function {asked!r}"), file=sys.stderr)
        return 2
    expect_text = os.environ.get("EXPECT", "").strip()
    if expect_text and not (expect_text.isdigit() and 100 <= int(expect_text) <= 599):
        print(f"make invoke: EXPECT={expect_text!r} is not an HTTP status", file=sys.stderr)
        return 2
    expect = int(expect_text) if expect_text else None
    try:
        values = settings(dict(os.environ))
    except NoStack as exc:
        print(f"make invoke: {exc} (or set DATABASE_URL to a database of your own)",
              file=sys.stderr)  # fmt: skip
        return 1
    event_path = Path(event_file or chosen.event)
    try:
        payload = prepared(json.loads(event_path.read_text()), values)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not JSON ({exc})"
        print(f"make invoke: cannot read the event {event_path}: {reason}; give EVENT=<a JSON"
              f" event file>, e.g. {chosen.event}", file=sys.stderr)  # fmt: skip
        return 2
    path = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    offline = {k: v for k, v in values.items() if k in OFFLINE_AWS or k == "AWS_ENDPOINT_URL_SQS"}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as prepared_event:
        json.dump(payload, prepared_event)
        prepared_event.flush()
        command = ["npx", "--no-install", "sls", "invoke", "local", "-f", chosen.name, "-p",
                   prepared_event.name]  # fmt: skip
        command += [arg for key, value in values.items() for arg in ("-e", f"{key}={value}")]
        done = subprocess.run(  # noqa: S603
            command, cwd=ROOT, env={**os.environ, **offline, "PATH": path}, capture_output=True,
            text=True, check=False,
        )  # fmt: skip
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        print(f"make invoke: sls invoke local failed (exit {done.returncode})", file=sys.stderr)
        return done.returncode
    problem = failure(response_of(done.stdout), expect)
    if problem:
        print(f"make invoke: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
