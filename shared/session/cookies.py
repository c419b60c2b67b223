"""The session cookie as @supabase/ssr writes it.

Name `sb-<project-ref>-auth-token`, whole or split into `.0`, `.1`, ...
chunks whose URI-encoded length is at most 3180; value either `base64-` +
base64url(JSON) (the current default) or the URL-encoded JSON itself (older
releases). We read both and write back in the format we were given.

Cookies come from anyone: a value too large or nested too deep to be a
session reads as no session (401 no_session), never as an error.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, unquote

BASE64_PREFIX = "base64-"
MAX_CHUNK_SIZE = 3180
MAX_AGE_SECONDS = 400 * 24 * 3600  # @supabase/ssr's default
# A session (two tokens, the user) is a few KB; browsers send at most about
# 4 KB per cookie and API Gateway at most 10 KB of headers per value.
MAX_SESSION_CHARS = 32 * 1024
Encoding = Literal["base64url", "raw"]


def parse_cookie_header(header: str) -> dict[str, str]:
    """Name -> decoded value, as the `cookie` package's parse() does."""
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if not sep or not name or name in cookies:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        try:
            cookies[name] = unquote(value, errors="strict")
        except UnicodeDecodeError:
            cookies[name] = value
    return cookies


def _chunk_names(cookies: dict[str, str], name: str) -> list[str]:
    pattern = re.compile(re.escape(name) + r"\.(0|[1-9][0-9]*)$")
    return [c for c in cookies if pattern.match(c)]


@dataclass(frozen=True)
class StoredSession:
    session: dict[str, Any]
    encoding: Encoding
    cookie_names: list[str]  # every cookie of ours the browser sent


def combine(cookies: dict[str, str], name: str) -> str | None:
    if cookies.get(name):
        return cookies[name]
    parts = []
    index = 0
    while f"{name}.{index}" in cookies:
        parts.append(cookies[f"{name}.{index}"])
        index += 1
    return "".join(parts) or None


def decode(value: str) -> tuple[dict[str, Any], Encoding] | None:
    if len(value) > MAX_SESSION_CHARS:
        return None
    encoding: Encoding = "raw"
    text = value
    if value.startswith(BASE64_PREFIX):
        encoding = "base64url"
        payload = value[len(BASE64_PREFIX) :]
        try:
            text = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
    try:
        session = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(session, list) and session and isinstance(session[0], str):
        # The oldest auth-helpers format: [access_token, refresh_token, ...]
        session = {
            "access_token": session[0],
            "refresh_token": session[1] if len(session) > 1 else None,
        }
    return (session, encoding) if isinstance(session, dict) else None


def read_session(cookie_header: str, name: str) -> StoredSession | None:
    cookies = parse_cookie_header(cookie_header)
    value = combine(cookies, name)
    if value is None:
        return None
    decoded = decode(value)
    if decoded is None:
        return None
    names = ([name] if name in cookies else []) + _chunk_names(cookies, name)
    return StoredSession(decoded[0], decoded[1], names)


def encode(session: dict[str, Any], encoding: Encoding) -> str:
    text = json.dumps(session, separators=(",", ":"))
    if encoding == "raw":
        return text
    return BASE64_PREFIX + base64.urlsafe_b64encode(text.encode("utf-8")).rstrip(b"=").decode()


def _uri_encode(value: str) -> str:
    """JavaScript's encodeURIComponent."""
    return quote(value, safe="-_.!~*'()")


def chunks(name: str, value: str, size: int = MAX_CHUNK_SIZE) -> list[tuple[str, str]]:
    """Splits as @supabase/ssr's createChunks: by URI-encoded length, never
    inside an escape sequence or a character."""
    if len(_uri_encode(value)) <= size:
        return [(name, value)]
    parts: list[str] = []
    rest = value
    while rest:
        taken = 0
        encoded_len = 0
        for char in rest:
            width = len(_uri_encode(char))
            if encoded_len + width > size:
                break
            encoded_len += width
            taken += 1
        parts.append(rest[:taken])
        rest = rest[taken:]
    return [(f"{name}.{i}", part) for i, part in enumerate(parts)]


def set_cookie(name: str, value: str, *, max_age: int, secure: bool, domain: str | None) -> str:
    attributes = [f"{name}={_uri_encode(value)}", f"Max-Age={max_age}", "Path=/", "SameSite=Lax"]
    if domain:
        attributes.append(f"Domain={domain}")
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


def session_cookies(
    name: str,
    session: dict[str, Any],
    encoding: Encoding,
    previous: list[str],
    *,
    secure: bool,
    domain: str | None,
) -> list[str]:
    """Set-Cookie values writing the session, clearing chunks no longer used."""
    written = chunks(name, encode(session, encoding))
    headers = [
        set_cookie(n, v, max_age=MAX_AGE_SECONDS, secure=secure, domain=domain) for n, v in written
    ]
    keep = {n for n, _ in written}
    headers += [clear_cookie(n, secure=secure, domain=domain) for n in previous if n not in keep]
    return headers


def clear_cookie(name: str, *, secure: bool, domain: str | None) -> str:
    return set_cookie(name, "", max_age=0, secure=secure, domain=domain)
