"""Signature verification: the RFC's own ES256 example, tokens signed by an
independent implementation (PyJWT) for every algorithm we accept, and every
way a token or key could be bent to verify when it must not."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.auth.jws import CompactJws, MalformedToken, VerifyingKey, hs256_key, key_from_jwk
from tests.support.tokens import HS256_SECRET, SigningKeys

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.unit

# RFC 7515, Appendix A.3: the ES256 example's public key and JWS.
RFC_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}
RFC_JWS = (
    "eyJhbGciOiJFUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
)
KEYS = SigningKeys()
CLAIMS = {"sub": "someone", "aud": "authenticated"}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwk(kid: str) -> dict[str, Any]:
    return next(k for k in KEYS.jwks()["keys"] if k["kid"] == kid)


def _usable(jwk: dict[str, Any]) -> VerifyingKey:
    key = key_from_jwk(jwk)
    assert key is not None
    return key


def _verifies(token: str, key: Any) -> bool:
    return bool(key.verifies(CompactJws.parse(token)))


def test_the_rfc_es256_example_verifies_and_reads_its_claims() -> None:
    key = _usable(RFC_JWK)
    jws = CompactJws.parse(RFC_JWS)

    assert key.verifies(jws)
    assert jws.payload() == {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}


@pytest.mark.parametrize(
    ("alg", "signing_key", "key"),
    [
        ("ES256", KEYS.ec_private, _usable(_jwk(KEYS.ec_kid))),
        ("RS256", KEYS.rsa_private, _usable(_jwk(KEYS.rsa_kid))),
        ("HS256", HS256_SECRET, hs256_key(HS256_SECRET)),
    ],
)
def test_tokens_signed_by_pyjwt_verify(alg: str, signing_key: Any, key: Any) -> None:
    token = jwt.encode(CLAIMS, signing_key, algorithm=alg)

    assert _verifies(token, key)
    assert CompactJws.parse(token).payload() == CLAIMS


@given(index=st.integers(min_value=0), replacement=st.sampled_from("AQgw_-"))
def test_changing_any_character_breaks_the_signature(index: int, replacement: str) -> None:
    # Given a valid ES256 token
    key = _usable(RFC_JWK)
    position = index % len(RFC_JWS)
    if RFC_JWS[position] in (".", replacement):
        return
    # When one character of any segment changes
    bent = RFC_JWS[:position] + replacement + RFC_JWS[position + 1 :]
    # Then it is unreadable or does not verify
    try:
        jws = CompactJws.parse(bent)
    except MalformedToken:
        return
    assert not key.verifies(jws)


def test_a_key_verifies_only_its_own_algorithm() -> None:
    # The classic confusion: an HS256 token whose secret is the public key.
    rsa_key = _usable(_jwk(KEYS.rsa_kid))
    public_pem = KEYS.rsa_private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = _b64(b'{"alg":"HS256"}') + "." + _b64(json.dumps(CLAIMS).encode())
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    confused = f"{signing_input}.{_b64(mac)}"
    unsigned = _b64(b'{"alg":"none"}') + "." + _b64(json.dumps(CLAIMS).encode()) + "."

    assert not _verifies(confused, rsa_key)
    assert not _verifies(unsigned, rsa_key)
    assert not _verifies(unsigned, hs256_key(HS256_SECRET))
    assert not _verifies(jwt.encode(CLAIMS, KEYS.rsa_private, algorithm="RS256"),
                         _usable(_jwk(KEYS.ec_kid)))  # fmt: skip


def test_es256_accepts_only_the_64_byte_r_s_form() -> None:
    # Given a valid token re-encoded with its signature in DER (what
    # OpenSSL produces, and what JOSE forbids)
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    header, payload, signature = RFC_JWS.split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key = _usable(RFC_JWK)

    assert not _verifies(f"{header}.{payload}.{_b64(der)}", key)
    assert not _verifies(f"{header}.{payload}.{_b64(raw + bytes(1))}", key)
    assert not _verifies(f"{header}.{payload}.{_b64(bytes(64))}", key)


@pytest.mark.parametrize(
    "token",
    [
        "a.b",
        "a.b.c.d",
        f"{RFC_JWS}=",
        RFC_JWS.replace(".", ". ", 1),
        RFC_JWS.replace("e", "+", 1),
        "e30.e30." + "A",  # five bits: not a length base64 can have
        f"{_b64(b'[1]')}.e30.",
        f"{_b64(b'{')}.e30.",
        _b64(b'{"alg":"ES256","crit":["exp"],"exp":1}') + ".e30.",
        _b64(b'{"alg":"ES256","b64":false}') + ".e30.",  # an unencoded payload (RFC 7797)
        _b64(b'{"alg":"ES256","kid":7}') + ".e30.",
        "e30.e31.",  # `e31` is `{}` with non-zero trailing bits: a second spelling
        "e30=.e30.",
        _b64('{"alg":"ES256"}'.encode("utf-16")) + ".e30.",
        "[" * 500 + ".e30.",
    ],
)
def test_malformed_tokens_are_refused_before_any_key_is_used(token: str) -> None:
    with pytest.raises(MalformedToken):
        CompactJws.parse(token)


def test_a_payload_that_is_not_an_object_is_refused() -> None:
    token = jwt.api_jws.encode(b"[1, 2]", HS256_SECRET, algorithm="HS256")
    jws = CompactJws.parse(token)

    assert hs256_key(HS256_SECRET).verifies(jws)
    with pytest.raises(MalformedToken):
        jws.payload()


def _ec_jwk(**changes: Any) -> dict[str, Any]:
    return {**RFC_JWK, **changes}


def _off_curve() -> dict[str, Any]:
    y = int.from_bytes(base64.urlsafe_b64decode(RFC_JWK["y"] + "="), "big") ^ 1
    return _ec_jwk(y=_b64(y.to_bytes(32, "big")))


def _jwk_of(public_key: Any) -> dict[str, Any]:
    if isinstance(public_key, rsa.RSAPublicKey):
        return dict(json.loads(RSAAlgorithm.to_jwk(public_key)))
    return dict(json.loads(ECAlgorithm.to_jwk(public_key)))


@pytest.mark.parametrize(
    "jwk",
    [
        _off_curve(),  # a point not on P-256 (an invalid-curve attack)
        _ec_jwk(x=RFC_JWK["x"][:-2]),  # a coordinate shorter than 32 bytes
        _ec_jwk(crv="P-384"),
        _ec_jwk(alg="ES384"),
        _ec_jwk(use="enc"),
        _ec_jwk(key_ops=["sign"]),
        _ec_jwk(x=None),
        _ec_jwk(x="not base64!"),
        _jwk_of(ec.generate_private_key(ec.SECP384R1()).public_key()),
        _jwk_of(rsa.generate_private_key(65537, key_size=1024).public_key()),  # noqa: S505
        {"kty": "oct", "k": _b64(b"secret"), "alg": "HS256"},
        {"kty": "OKP", "crv": "Ed25519", "x": RFC_JWK["x"]},
    ],
    ids=[
        "off-curve",
        "short x",
        "P-384 crv",
        "ES384 alg",
        "use enc",
        "sign only",
        "no x",
        "bad x",
        "P-384 key",
        "RSA 1024",
        "symmetric",
        "EdDSA",
    ],
)
def test_keys_we_must_not_verify_with_are_not_candidates(jwk: dict[str, Any]) -> None:
    assert key_from_jwk(jwk) is None


def test_a_jwk_with_verify_among_its_key_ops_is_used() -> None:
    key = _usable(_ec_jwk(key_ops=["verify"], use="sig", alg="ES256"))

    assert _verifies(RFC_JWS, key)


_COLD_START = """
import sys
from cryptography.hazmat.primitives.asymmetric import ec
{breakage}
import functions.thread_ensure.handler
print("started")
"""
# A cryptography whose ECDSA cannot be used (here: its class refuses to be built).
_BROKEN_ECDSA = """
def _broken(self, *args, **kwargs):
    raise TypeError("ECDSA is not available in this build")
ec.ECDSA.__init__ = _broken
"""


@pytest.mark.parametrize(("breakage", "started"), [("", True), (_BROKEN_ECDSA, False)])
def test_es256_is_checked_on_a_test_vector_at_every_cold_start(
    breakage: str, started: bool
) -> None:
    # Given a function's cold start, with cryptography as shipped or broken
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "SUPABASE_URL": "http://127.0.0.1:9",
        "SUPABASE_ANON_KEY": "anon",
        "ALLOWED_ORIGINS": "https://app.example.test",
        "SECRETS_SOURCE": "env",
    }
    done = subprocess.run(
        [sys.executable, "-c", _COLD_START.format(breakage=breakage)],
        capture_output=True, text=True, check=False, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip
    if started:
        assert (done.returncode, done.stdout.split()) == (0, ["started"]), done.stderr
        return
    # Then the broken one stops the cold start with one line naming the cause
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("cold start stopped: ES256 verification failed its test vector")
    assert "ECDSA is not available in this build" in line
