"""Verifies Supabase access tokens locally: no call to Supabase per request.

Asymmetric keys (ES256, RS256) come from the project's JWKS; the legacy
HS256 secret is used only when configured. The algorithm must match the
key's type, so `none` and HS/RS confusion are refused before any check. The
issuer must be the project's GoTrue (`SUPABASE_URL` + `/auth/v1`), so a token
signed for another project or service sharing a key is refused.

Tokens come from anyone: size and nesting are bounded before any parsing, so
a hostile header is a 401, never a RecursionError.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

import jwt
from jwt.exceptions import InvalidTokenError

from shared.auth.jwks import JwksCache
from shared.auth.principal import Principal
from shared.errors import Unauthorized

ASYMMETRIC = {"ES256": "EC", "RS256": "RSA"}
AUDIENCE = "authenticated"
LEEWAY_SECONDS = 30
# GoTrue's tokens are about 1 KB (with app_metadata, a few KB); a header
# segment is under 200 bytes.
MAX_TOKEN_CHARS = 16 * 1024
MAX_HEADER_SEGMENT_CHARS = 1024


class TokenVerifier:
    def __init__(self, jwks: JwksCache, hs256_secret: str | None = None, *, issuer: str) -> None:
        self._jwks = jwks
        self._secret = hs256_secret
        self._issuer = issuer

    def verify(self, token: str, *, verify_exp: bool = True) -> Principal:
        """A signed-in user's principal; with verify_exp=False an expired but
        otherwise valid token is accepted (to decide whether to refresh)."""
        claims = self.claims(token, verify_exp=verify_exp)
        if claims.get("role") != "authenticated":
            raise Unauthorized("token is not a signed-in user's", code="invalid_token")
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except (KeyError, ValueError):
            raise Unauthorized("token has no valid subject", code="invalid_token") from None
        return Principal(user_id=user_id, role="authenticated", claims=claims, token=token)

    def claims(self, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
        """Signature, algorithm, exp, aud and iss checked; the claims, or Unauthorized."""
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized("token too large", code="invalid_token")
        header = _header(token)
        alg = header.get("alg")
        key: Any
        if alg in ASYMMETRIC:
            kid = header.get("kid")
            jwk = self._jwks.key(str(kid)) if isinstance(kid, str) and kid else None
            if jwk is None or jwk.key_type != ASYMMETRIC[alg]:
                raise Unauthorized("token signed by an unknown key", code="invalid_token")
            key = jwk.key
        elif alg == "HS256" and self._secret:
            key = self._secret
        else:
            raise Unauthorized("token algorithm not accepted", code="invalid_token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=AUDIENCE,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub", "aud", "iss"], "verify_exp": verify_exp},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token has expired", code="token_expired") from None
        except (InvalidTokenError, RecursionError):
            # RecursionError: a signed payload nested too deep to parse.
            raise Unauthorized("invalid token", code="invalid_token") from None
        return claims


def _header(token: str) -> dict[str, Any]:
    """The unverified header, only to choose the key. PyJWT would decode (and
    character-check) all three segments here and again in decode()."""
    segment = token.split(".", 1)[0]
    if len(segment) > MAX_HEADER_SEGMENT_CHARS:
        raise Unauthorized("malformed token", code="invalid_token")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        raise Unauthorized("malformed token", code="invalid_token") from None
    if not isinstance(header, dict):
        raise Unauthorized("malformed token", code="invalid_token")
    return header
