"""The registered claims as Supabase Auth issues them, checked against a fixed
clock: expiry with leeway, tokens not valid yet, audience, issuer, subject,
and claims of the wrong type."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import jwt
import pytest

from shared.auth.jwks import JwksCache
from shared.auth.verifier import LEEWAY_SECONDS, TokenVerifier
from shared.errors import Unauthorized
from tests.support.tokens import HS256_SECRET, SigningKeys, sign_json

pytestmark = pytest.mark.unit

NOW = 1_800_000_000
KEYS = SigningKeys()
USER = uuid.uuid4()


def _verifier(*, secret: str | None = None) -> TokenVerifier:
    client = httpx.Client(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json=KEYS.jwks()))
    )
    jwks = JwksCache("http://auth/jwks", client)
    return TokenVerifier(jwks, secret, issuer=KEYS.issuer, clock=lambda: NOW)


def _claims(**changes: Any) -> dict[str, Any]:
    claims = {**KEYS.user_claims(USER), "iat": NOW - 60, "exp": NOW + 3600}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not ...}


def _signed_as_is(claims: dict[str, Any]) -> str:
    """Signed without PyJWT's claim checks: a hostile issuer may send anything."""
    payload = json.dumps(claims).encode()
    return jwt.api_jws.encode(payload, KEYS.ec_private, algorithm="ES256",
                              headers={"kid": KEYS.ec_kid})  # fmt: skip


def _refusal(token: str, **options: Any) -> str:
    with pytest.raises(Unauthorized) as refused:
        _verifier(secret=HS256_SECRET).verify(token, **options)
    return refused.value.code


@pytest.mark.parametrize("alg", ["ES256", "RS256", "HS256"])
def test_a_current_token_gives_its_user(alg: str) -> None:
    principal = _verifier(secret=HS256_SECRET).verify(KEYS.sign(_claims(), alg=alg))

    assert principal.user_id == USER
    assert principal.claims["aud"] == "authenticated"


def test_hs256_is_refused_when_no_secret_is_configured() -> None:
    with pytest.raises(Unauthorized):
        _verifier().verify(KEYS.sign(_claims(), alg="HS256"))


def test_expiry_allows_the_leeway_and_no_more() -> None:
    assert _verifier().verify(KEYS.sign(_claims(exp=NOW - LEEWAY_SECONDS + 1)))
    assert _refusal(KEYS.sign(_claims(exp=NOW - LEEWAY_SECONDS))) == "token_expired"


def test_an_expired_token_is_read_when_expiry_is_not_the_question() -> None:
    # The token function decides whether to refresh from an expired token.
    principal = _verifier().verify(KEYS.sign(_claims(exp=NOW - 86400)), verify_exp=False)

    assert principal.user_id == USER


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_a_token_from_the_future_is_refused(claim: str) -> None:
    assert _verifier().verify(KEYS.sign(_claims(**{claim: NOW + LEEWAY_SECONDS})))
    assert _refusal(KEYS.sign(_claims(**{claim: NOW + LEEWAY_SECONDS + 1}))) == "invalid_token"


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": ...},
        {"sub": ...},
        {"aud": ...},
        {"iss": ...},
        {"exp": str(NOW + 3600)},
        {"exp": True},
        {"exp": None},
        {"exp": float("inf")},
        {"exp": float("nan")},
        {"nbf": "0"},
        {"iat": [NOW]},
        {"aud": "anon"},
        {"aud": ["anon", "service"]},
        {"aud": {"authenticated": True}},
        {"aud": ""},
        {"iss": KEYS.issuer + "/"},
        {"iss": ["http://127.0.0.1/auth/v1"]},
        {"sub": 42},
        {"sub": "not-a-uuid"},
        {"role": "service_role"},
        {"role": ...},
    ],
    ids=str,
)
def test_claims_of_the_wrong_shape_are_refused(changes: dict[str, Any]) -> None:
    assert _refusal(_signed_as_is(_claims(**changes))) == "invalid_token"


def test_an_audience_list_that_includes_authenticated_is_accepted() -> None:
    assert _verifier().verify(KEYS.sign(_claims(aud=["other", "authenticated"])))


def test_a_kid_naming_a_key_of_another_algorithm_is_refused() -> None:
    # An ES256 header naming the RSA key's id: the key decides the algorithm.
    token = KEYS.sign(_claims(), alg="ES256", kid=KEYS.rsa_kid)

    assert _refusal(token) == "invalid_token"


def _jwks_verifier(jwks: dict[str, Any]) -> TokenVerifier:
    client = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200, json=jwks)))
    return TokenVerifier(
        JwksCache("http://auth/jwks", client), issuer=KEYS.issuer, clock=lambda: NOW
    )


def test_keys_of_different_types_sharing_a_kid_each_verify_their_own_tokens() -> None:
    # Given a JWKS where an EC and an RSA key share one kid (RFC 7517 4.5 allows it)
    jwks = KEYS.jwks()
    for jwk in jwks["keys"]:
        jwk["kid"] = "shared-kid"
    verifier = _jwks_verifier(jwks)
    # When tokens signed by each name that kid, Then each verifies, whichever key came last
    for alg in ("ES256", "RS256"):
        token = KEYS.sign(_claims(), alg=alg, kid="shared-kid")
        assert verifier.verify(token).user_id == USER
    for order in (jwks["keys"], list(reversed(jwks["keys"]))):
        reordered = _jwks_verifier({"keys": order})
        assert reordered.verify(KEYS.sign(_claims(), alg="ES256", kid="shared-kid"))


@pytest.mark.parametrize(
    "sub",
    [
        str(USER).upper(),
        "{" + str(USER) + "}",
        "urn:uuid:" + str(USER),
        str(USER).replace("-", ""),
        " " + str(USER),
        str(USER) + "\n",
        "",
    ],
    ids=["upper case", "braces", "urn", "no hyphens", "leading space", "newline", "empty"],
)
def test_a_subject_that_is_not_exactly_a_canonical_uuid_is_an_invalid_token(sub: str) -> None:
    # (uuid.UUID would read each of these as the same user id, and the
    # database would then get the string as it is)
    assert _refusal(_signed_as_is(_claims(sub=sub))) == "invalid_token"


@pytest.mark.parametrize(
    "changes",
    [{"aud": ["authenticated", 1]}, {"aud": ["authenticated", None]}, {"jti": 7}],
    ids=str,
)
def test_audience_arrays_hold_strings_only_and_jti_is_a_string(changes: dict[str, Any]) -> None:
    assert _refusal(_signed_as_is(_claims(**changes))) == "invalid_token"


def test_a_kid_that_is_not_a_string_is_refused_whatever_the_algorithm() -> None:
    token = sign_json({"alg": "HS256", "kid": 7}, _claims(), "HS256", HS256_SECRET)

    assert _refusal(token) == "invalid_token"
