"""Access tokens and session cookies for the local demo users, signed with
the local JWT secret (infra/dev/local.env), for the running `make dev`
(their issuer is its local auth). Local use only.

    eval "$(make -s tokens)"               # ADA_TOKEN, BOB_TOKEN, ADA_COOKIE, BOB_COOKIE
    eval "$(make -s tokens PORT=8400)"     # for the make dev on that port
    make -s tokens FORMAT=json             # the same as JSON

(the make target runs `scripts/dev_tokens.py [--shell] [--port PORT]`).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import jwt

if __name__ == "__main__" and not __package__:
    # Run as a file, Python puts scripts/ first on the path, not the project.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.session.cookies import encode

SECRET = "local-dev-jwt-secret-not-for-production-0123456789"  # noqa: S105 (local only)
USERS = {
    "ada": "00000000-0000-4000-8000-00000000a0a0",
    "bob": "00000000-0000-4000-8000-00000000b0b0",
}
FAR_FUTURE = 4102444800  # 2100-01-01: for the committed sample events only


def _supabase_url() -> str:
    """The issuer's base: the local auth of the `make dev` this token is for.

    Inside `make dev`, SUPABASE_URL is its local auth. From another shell, the
    running stack says where it is (tokens must carry its `iss`), whatever
    ports it was started on; without one, DEV_AUTH_PORT or the default."""
    if os.environ.get("SUPABASE_URL", "").startswith("http://127.0.0.1:"):
        return os.environ["SUPABASE_URL"].rstrip("/")
    from infra.dev.stack import NoStack, find, port_from_env

    try:
        return find(port_from_env()).supabase_url
    except NoStack:
        return f"http://127.0.0.1:{os.environ.get('DEV_AUTH_PORT', '54321')}"


def access_token(mongo_id: str, *, expires_at: int | None = None) -> str:
    now = int(time.time())
    claims = {
        "iss": f"{_supabase_url()}/auth/v1", "sub": USERS[mongo_id], "aud": "authenticated",
        "role": "authenticated", "iat": now, "exp": expires_at or now + 3600,
        "email": f"{mongo_id}@example.test",
        "app_metadata": {"provider": "email", "mongo_user_id": mongo_id},
        "user_metadata": {}, "session_id": f"local-{mongo_id}",
    }  # fmt: skip
    return jwt.encode(claims, SECRET, algorithm="HS256")


def session_cookie(
    mongo_id: str, cookie_name: str = "sb-127-auth-token", *, expires_in: int = 3600
) -> str:
    token = access_token(mongo_id, expires_at=int(time.time()) + expires_in)
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    session = {
        "access_token": token, "token_type": "bearer", "expires_in": 3600,
        "expires_at": claims["exp"], "refresh_token": f"local-refresh-{mongo_id}",
        "user": {"id": USERS[mongo_id], "aud": "authenticated", "role": "authenticated",
                 "app_metadata": claims["app_metadata"]},
    }  # fmt: skip
    return f"{cookie_name}={encode(session, 'base64url')}"


def shell_exports() -> str:
    """`export ADA_TOKEN=...` lines for `eval`: the printed curl commands use them."""
    lines = []
    for mongo_id in USERS:
        name = mongo_id.upper()
        lines.append(f"export {name}_TOKEN={shlex.quote(access_token(mongo_id))}")
        lines.append(f"export {name}_COOKIE={shlex.quote(session_cookie(mongo_id))}")
    return "\n".join(lines)


USAGE = "usage: make -s tokens [PORT=<make dev's PORT>] [FORMAT=json]"


def main(argv: list[str]) -> int:
    args = list(argv)
    if "--port" in args:
        at = args.index("--port")
        port = args[at + 1] if at + 1 < len(args) else ""
        if not port.isdigit():
            print(f"dev_tokens: --port needs make dev's PORT, a number ({USAGE})", file=sys.stderr)
            return 2
        from infra.dev.stack import NoStack, find

        # Tokens for the `make dev` on this port (its local auth is their issuer).
        try:
            os.environ["SUPABASE_URL"] = find(int(port)).supabase_url
        except NoStack as exc:
            print(f"dev_tokens: {exc}", file=sys.stderr)
            if "--shell" in args:
                # What `eval "$(...)"` runs: a failing statement, so the eval
                # fails too (a command substitution's own status is lost).
                print("false")
            return 1
        del args[at : at + 2]
    if args == ["--shell"]:
        print(shell_exports())
        return 0
    if args:
        print(f"dev_tokens: unknown argument {args[0]!r} ({USAGE})", file=sys.stderr)
        return 2
    tokens = {m: {"access_token": access_token(m), "cookie": session_cookie(m)} for m in USERS}
    print(json.dumps(tokens, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
