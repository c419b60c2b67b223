"""Every token a client could forge or replay is refused with 401 and
WWW-Authenticate, before any database call."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.conftest import Invoke
from tests.support.database import User, create_user
from tests.support.fake_supabase import FakeSupabase
from tests.support.tokens import SigningKeys

pytestmark = pytest.mark.integration


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _hs256_by_hand(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """The classic key-confusion forgery: the public key used as an HMAC secret."""
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_b64(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _forged_tokens(keys: SigningKeys, user: User) -> dict[str, str]:
    claims = keys.user_claims(user.id, mongo_id=user.mongo_id)
    other_key = ec.generate_private_key(ec.SECP256R1())
    public_pem = keys.rsa_private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    valid = keys.sign(claims)
    header, _payload, signature = valid.split(".")
    tampered_payload = _b64({**claims, "sub": "00000000-0000-0000-0000-000000000001"})
    return {
        "bad signature": f"{header}.{tampered_payload}.{signature}",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "expired": keys.sign({**claims, "exp": int(time.time()) - 120}),
        "wrong audience": keys.sign({**claims, "aud": "some-other-app"}),
        "no audience": keys.sign({k: v for k, v in claims.items() if k != "aud"}),
        "forged service_role": keys.sign({**claims, "role": "service_role"}),
        "another issuer": keys.sign({**claims, "iss": "https://other-project.supabase.co/auth/v1"}),
        "issuer without /auth/v1": keys.sign(
            {**claims, "iss": claims["iss"].removesuffix("/auth/v1")}
        ),
        "no issuer": keys.sign({k: v for k, v in claims.items() if k != "iss"}),
        "anon key as bearer": keys.anon_key(),
        "signed by another key, same kid": jwt.encode(
            claims, other_key, algorithm="ES256", headers={"kid": keys.ec_kid}
        ),
        "unknown kid": keys.sign(claims, kid="not-a-known-kid"),
        "HS256 when no secret is configured": keys.sign(claims, alg="HS256"),
        "HS256 signed with the RSA public key": _hs256_by_hand(claims, public_pem, keys.rsa_kid),
        "garbage": "not.a.jwt",
        # uuid.UUID reads these as the user's id; the database would not
        "subject as a URN": keys.sign({**claims, "sub": f"urn:uuid:{user.id}"}),
        "subject in braces": keys.sign({**claims, "sub": f"{{{user.id}}}"}),
        "subject in upper case": keys.sign({**claims, "sub": str(user.id).upper()}),
    }


@pytest.fixture
def amy(admin: psycopg.Connection[Any]) -> User:
    create_user(admin, "bob")
    return create_user(admin, "amy")


def test_every_forged_token_is_refused(
    thread_ensure: Invoke, keys: SigningKeys, amy: User, supabase: FakeSupabase
) -> None:
    for name, token in _forged_tokens(keys, amy).items():
        result = thread_ensure(
            "POST",
            "/chat/threads/ensure",
            body={"other_mongo_id": "bob"},
            headers={"authorization": f"Bearer {token}"},
        )
        assert result.status == 401, name
        assert result.headers["www-authenticate"].startswith("Bearer"), name
        assert result.error_code in {"invalid_token", "token_expired"}, name
    assert supabase.rpc_calls == []


def test_missing_or_malformed_authorization_is_401(thread_ensure: Invoke, amy: User) -> None:
    for headers in ({}, {"authorization": "Basic YTpi"}, {"authorization": "Bearer "}):
        result = thread_ensure(
            "POST", "/chat/threads/ensure", body={"other_mongo_id": "bob"}, headers=headers
        )
        assert result.status == 401
        assert "www-authenticate" in result.headers


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_valid_asymmetric_tokens_are_accepted(
    thread_ensure: Invoke, keys: SigningKeys, amy: User, alg: str
) -> None:
    token = keys.sign(keys.user_claims(amy.id, mongo_id="amy"), alg=alg)
    result = thread_ensure(
        "POST",
        "/chat/threads/ensure",
        body={"other_mongo_id": "bob"},
        headers={"authorization": f"Bearer {token}"},
    )
    assert result.status == 200, result.body


def test_legacy_hs256_works_when_the_secret_is_configured(
    thread_ensure: Invoke, keys: SigningKeys, amy: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared import container

    monkeypatch.setenv("SUPABASE_JWT_SECRET", keys.secret)
    container.reset()
    token = keys.sign(keys.user_claims(amy.id, mongo_id="amy"), alg="HS256")
    result = thread_ensure(
        "POST",
        "/chat/threads/ensure",
        body={"other_mongo_id": "bob"},
        headers={"authorization": f"Bearer {token}"},
    )
    assert result.status == 200, result.body
    wrong = jwt.encode(
        keys.user_claims(amy.id), "another-secret-of-enough-length-123456", algorithm="HS256"
    )
    refused = thread_ensure(
        "POST",
        "/chat/threads/ensure",
        body={"other_mongo_id": "bob"},
        headers={"authorization": f"Bearer {wrong}"},
    )
    assert refused.status == 401


def test_jwks_is_fetched_once_per_container(
    thread_ensure: Invoke, keys: SigningKeys, amy: User, supabase: FakeSupabase
) -> None:
    for _ in range(5):
        thread_ensure(
            "POST",
            "/chat/threads/ensure",
            body={"other_mongo_id": "bob"},
            headers={"authorization": f"Bearer {keys.token(amy.id, mongo_id='amy')}"},
        )
    assert supabase.jwks_fetches == 1
    # Unknown kids do not turn into a refetch per request
    for _ in range(5):
        thread_ensure(
            "POST",
            "/chat/threads/ensure",
            body={"other_mongo_id": "bob"},
            headers={
                "authorization": f"Bearer {keys.sign(keys.user_claims(amy.id), kid='rotated-away')}"
            },
        )
    assert supabase.jwks_fetches == 1
