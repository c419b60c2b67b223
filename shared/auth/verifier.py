"""Verifies Supabase access tokens locally: no call to Supabase per request.

Asymmetric keys (ES256, RS256) come from the project's JWKS; the legacy
HS256 secret is used only when configured. The algorithm must match the
key's type, so `none` and HS/RS confusion are refused before any check. The
issuer must be the project's GoTrue (`SUPABASE_URL` + `/auth/v1`), so a token
signed for another project or service sharing a key is refused.

Tokens come from anyone: size and nesting are bounded before any parsing, so
a hostile header is a 401, never a RecursionError. Keys are chosen by `kid`
and `alg` together; the registered claims are read as RFC 7519 4.1 types
them, and the subject must be a user id exactly as GoTrue writes it (a
canonical UUID), so nothing else ever reaches the database as one.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from shared.auth.jwks import JwksCache
from shared.auth.jws import CompactJws, MalformedToken, VerifyingKey, hs256_key
from shared.auth.principal import Principal
from shared.errors import Unauthorized

AUDIENCE = "authenticated"
LEEWAY_SECONDS = 30
# GoTrue's tokens are about 1 KB (with app_metadata, a few KB); a header
# segment is under 200 bytes.
MAX_TOKEN_CHARS = 16 * 1024
MAX_HEADER_SEGMENT_CHARS = 1024
REQUIRED_CLAIMS = ("exp", "sub", "aud", "iss")
# A user id as GoTrue writes `sub`: lowercase, hyphenated. uuid.UUID would
# also take braces, `urn:uuid:` and upper case.
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class UnknownSigningKey(Unauthorized):
    """The token names a key the project's JWKS does not list: one revoked
    since, one too new for this container's key set yet, or a forgery.
    `unexpired`: its own exp, unverified (a hint, never trusted), is ahead."""

    def __init__(self, *, unexpired: bool) -> None:
        super().__init__("token signed by an unknown key", code="invalid_token")
        self.unexpired = unexpired


class TokenVerifier:
    def __init__(
        self,
        jwks: JwksCache,
        hs256_secret: str | None = None,
        *,
        issuer: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._jwks = jwks
        self._hs256 = hs256_key(hs256_secret) if hs256_secret else None
        self._issuer = issuer
        self._clock = clock

    def verify(
        self, token: str, *, verify_exp: bool = True, refetch_unknown: bool = False
    ) -> Principal:
        """A signed-in user's principal; with verify_exp=False an expired but
        otherwise valid token is accepted (to decide whether to refresh);
        with refetch_unknown an unknown key refetches the key set at once (a
        token GoTrue has just issued: never one a client sent)."""
        claims = self.claims(token, verify_exp=verify_exp, refetch_unknown=refetch_unknown)
        if claims.get("role") != "authenticated":
            raise Unauthorized("token is not a signed-in user's", code="invalid_token")
        subject = claims["sub"]  # a string: checked with the claims
        if not CANONICAL_UUID.fullmatch(subject):
            raise Unauthorized("token has no valid subject", code="invalid_token")
        user_id = uuid.UUID(subject)
        return Principal(user_id=user_id, role="authenticated", claims=claims, token=token)

    def claims(
        self, token: str, *, verify_exp: bool = True, refetch_unknown: bool = False
    ) -> dict[str, Any]:
        """Signature, algorithm, exp, nbf, iat, aud and iss checked; the
        claims, or Unauthorized (UnknownSigningKey for a key not in the JWKS)."""
        if len(token) > MAX_TOKEN_CHARS or len(token.split(".", 1)[0]) > MAX_HEADER_SEGMENT_CHARS:
            raise Unauthorized("malformed token", code="invalid_token")
        try:
            jws = CompactJws.parse(token)
        except MalformedToken:
            raise Unauthorized("malformed token", code="invalid_token") from None
        if not any(key.verifies(jws) for key in self._keys_for(jws, refetch_unknown)):
            raise Unauthorized("invalid token", code="invalid_token")
        try:
            claims = jws.payload()
        except MalformedToken:
            raise Unauthorized("invalid token", code="invalid_token") from None
        self._check(claims, verify_exp=verify_exp)
        return claims

    def _keys_for(self, jws: CompactJws, refetch_unknown: bool) -> tuple[VerifyingKey, ...]:
        """The keys the header names by `kid`, for the algorithm it names:
        a key's own algorithm must match, so `none` and HS/RS confusion
        never verify."""
        header = jws.header
        alg = header.get("alg")
        if alg in ("ES256", "RS256"):
            kid = header.get("kid")  # a string if present (CompactJws)
            if not kid:
                raise Unauthorized("token signed by an unknown key", code="invalid_token")
            keys = self._jwks.keys(kid, alg, refetch_unknown=refetch_unknown)
            if not keys:
                raise UnknownSigningKey(unexpired=self._unexpired(jws))
            return keys
        if alg == "HS256" and self._hs256 is not None:
            return (self._hs256,)
        raise Unauthorized("token algorithm not accepted", code="invalid_token")

    def _unexpired(self, jws: CompactJws) -> bool:
        """Whether an unverified token's own exp is ahead: a hint only."""
        try:
            exp: Any = jws.payload().get("exp")
        except MalformedToken:
            return False
        return _is_number(exp) and float(exp) > self._clock()

    def _check(self, claims: dict[str, Any], *, verify_exp: bool) -> None:
        """The registered claims as RFC 7519 4.1 defines them, with leeway for
        clock skew; a claim of the wrong type is an invalid token."""
        if any(name not in claims for name in REQUIRED_CLAIMS):
            raise Unauthorized("invalid token", code="invalid_token")
        now = self._clock()
        times = {name: claims[name] for name in ("exp", "nbf", "iat") if name in claims}
        if not all(_is_number(value) for value in times.values()):
            raise Unauthorized("invalid token", code="invalid_token")
        if (
            times.get("nbf", now) > now + LEEWAY_SECONDS
            or times.get("iat", now) > now + LEEWAY_SECONDS
        ):
            raise Unauthorized("token is not valid yet", code="invalid_token")
        # aud: a string, or an array of strings (RFC 7519 4.1.3)
        audience = claims["aud"]
        audiences = [audience] if isinstance(audience, str) else audience
        if (
            not isinstance(audiences, list)
            or not all(isinstance(a, str) for a in audiences)
            or AUDIENCE not in audiences
        ):
            raise Unauthorized("invalid token", code="invalid_token")
        if claims["iss"] != self._issuer or not isinstance(claims["sub"], str):
            raise Unauthorized("invalid token", code="invalid_token")
        if not isinstance(claims.get("jti", ""), str):  # RFC 7519 4.1.7
            raise Unauthorized("invalid token", code="invalid_token")
        # Expiry to the whole second, as PyJWT reads it (never later than the
        # exact value): a token is never accepted that PyJWT would refuse.
        if verify_exp and math.floor(times["exp"]) <= now - LEEWAY_SECONDS:
            raise Unauthorized("token has expired", code="token_expired")


def _is_number(value: Any) -> bool:
    """A NumericDate: JSON's `NaN` and `Infinity` (which Python's json reads)
    are not, nor is `true`."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
