"""Signing keys and access tokens shaped like Supabase Auth's."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, RSAAlgorithm

HS256_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"


@dataclass(eq=False)
class SigningKeys:
    """The project's current ES256 key (in the JWKS), an RSA key, the legacy secret.

    `issuer` is what GoTrue puts in `iss`: SUPABASE_URL + "/auth/v1". The
    Supabase stand-in serving these keys sets it to its own URL."""

    ec_private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    rsa_private: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    ec_kid: str = field(default_factory=lambda: f"ec-{uuid.uuid4().hex[:8]}")
    rsa_kid: str = field(default_factory=lambda: f"rsa-{uuid.uuid4().hex[:8]}")
    secret: str = HS256_SECRET
    issuer: str = "http://127.0.0.1/auth/v1"

    def serve_at(self, supabase_url: str) -> None:
        """Tokens from now on are issued by the project at `supabase_url`."""
        self.issuer = f"{supabase_url}/auth/v1"

    def jwks(self) -> dict[str, Any]:
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec_private.public_key()))
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa_private.public_key()))
        ec_jwk.update(kid=self.ec_kid, alg="ES256", use="sig")
        rsa_jwk.update(kid=self.rsa_kid, alg="RS256", use="sig")
        return {"keys": [ec_jwk, rsa_jwk]}

    def user_claims(
        self,
        user_id: uuid.UUID | str,
        *,
        mongo_id: str | None = None,
        ttl: int = 3600,
        **extra: Any,
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": str(user_id),
            "aud": "authenticated",
            "role": "authenticated",
            "iat": now,
            "exp": now + ttl,
            "email": f"{str(user_id)[:8]}@example.test",
            "app_metadata": {
                "provider": "email",
                **({"mongo_user_id": mongo_id} if mongo_id else {}),
            },
            "user_metadata": {},
            "session_id": str(uuid.uuid4()),
        }
        claims.update(extra)
        return claims

    def sign(self, claims: dict[str, Any], *, alg: str = "ES256", kid: str | None = None) -> str:
        if alg == "ES256":
            return jwt.encode(
                claims, self.ec_private, algorithm="ES256", headers={"kid": kid or self.ec_kid}
            )
        if alg == "RS256":
            return jwt.encode(
                claims, self.rsa_private, algorithm="RS256", headers={"kid": kid or self.rsa_kid}
            )
        if alg == "HS256":
            return jwt.encode(claims, self.secret, algorithm="HS256")
        raise ValueError(alg)

    def token(self, user_id: uuid.UUID | str, *, mongo_id: str | None = None, **extra: Any) -> str:
        return self.sign(self.user_claims(user_id, mongo_id=mongo_id, **extra))

    @cache  # noqa: B019 (one per key set, for the session's life)
    def service_key(self) -> str:
        now = int(time.time())
        return self.sign(
            {"role": "service_role", "iss": "supabase", "iat": now, "exp": now + 86400}, alg="HS256"
        )

    @cache  # noqa: B019
    def anon_key(self) -> str:
        now = int(time.time())
        return self.sign(
            {"role": "anon", "iss": "supabase", "iat": now, "exp": now + 86400}, alg="HS256"
        )


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_SIGNERS = {
    "ES256": ECAlgorithm(ECAlgorithm.SHA256),
    "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
    "HS256": HMACAlgorithm(HMACAlgorithm.SHA256),
}


def sign_segments(header_segment: str, payload_segment: str, alg: str, key: Any) -> str:
    """A compact JWS over the two segments exactly as given (any header, any
    encoding), signed with `key` by PyJWT's algorithm for `alg`: what a
    hostile or sloppy issuer can make."""
    signer = _SIGNERS[alg]
    prepared = signer.prepare_key(key.encode() if isinstance(key, str) else key)
    signature = signer.sign(f"{header_segment}.{payload_segment}".encode(), prepared)
    return f"{header_segment}.{payload_segment}.{b64url(signature)}"


def sign_json(header: dict[str, Any], claims: dict[str, Any], alg: str, key: Any) -> str:
    return sign_segments(
        b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), alg, key
    )
