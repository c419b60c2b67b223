"""Compact JWS (RFC 7515) verification for the algorithms Supabase Auth signs
access tokens with: ES256 and RS256 (keys from the project's JWKS) and the
legacy HS256 secret.

Why not PyJWT: importing it loads every algorithm it knows and most of
cryptography (x509 included), about 70 ms of every cold start; this module
imports only the EC or RSA primitives a key needs, when its JWKS has one.
It does one thing: given the key the caller chose, is this token's signature
valid? The caller (shared.auth.verifier) chooses the key from the header and
checks the claims.

Strict where a lenient parser would let an attacker choose how bytes are
read: exactly three segments, each canonical base64url (the alphabet only,
no padding, no non-zero trailing bits: one token has one encoding), JSON in
UTF-8, an ES256 signature of exactly 64 bytes (r || s, RFC 7518 3.4; not
DER), a P-256 point that is on the curve, an RSA modulus of at least 2048
bits, no `crit` header (no extension is understood, RFC 7515 4.1.11).
tests/unit/test_jwt_differential.py holds this module and the verifier to
PyJWT's behaviour over generated tokens, listing where they are stricter
and the RFC sentence that says so.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import ECDSA

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_P256_COORDINATE_BYTES = 32
_MIN_RSA_BITS = 2048


class MalformedToken(ValueError):
    """Not a compact JWS we can read."""


def b64url_decode(segment: str) -> bytes:
    """Canonical unpadded base64url (RFC 7515 2): anything outside its
    alphabet is refused, where the standard decoder would silently skip it,
    and so are padding and non-zero trailing bits (which let one token be
    written several ways)."""
    if not _SEGMENT.fullmatch(segment):
        raise MalformedToken("not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise MalformedToken("not base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment.encode("ascii"):
        raise MalformedToken("not canonical base64url")
    return raw


def json_object(data: bytes) -> dict[str, Any]:
    """A JSON object in UTF-8 (RFC 7515 5.2), or MalformedToken (arrays,
    scalars, other encodings, a byte order mark, nesting too deep to parse)."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        raise MalformedToken("not JSON") from None
    if not isinstance(value, dict):
        raise MalformedToken("not a JSON object")
    return value


class CompactJws:
    """A token split and decoded as far as is safe before its signature is
    checked: the payload's JSON is read only once the signature is known to
    be good. (Plain classes here and in shared.auth.principal: a dataclass
    compiles its methods at import, about 1 ms of every cold start each.)"""

    __slots__ = ("header", "payload_octets", "signature", "signing_input")

    def __init__(
        self, header: dict[str, Any], payload_octets: bytes, signing_input: bytes, signature: bytes
    ) -> None:
        self.header = header
        self.payload_octets = payload_octets
        self.signing_input = signing_input
        self.signature = signature

    @classmethod
    def parse(cls, token: str) -> CompactJws:
        parts = token.split(".")
        if len(parts) != 3:
            raise MalformedToken("not three segments")
        header_segment, payload_segment, signature_segment = parts
        header = json_object(b64url_decode(header_segment))
        if "crit" in header:
            raise MalformedToken("critical header extensions are not supported")
        if not isinstance(header.get("kid", ""), str):
            raise MalformedToken("kid is not a string")  # RFC 7515 4.1.4
        if header.get("b64", True) is False:
            raise MalformedToken("unencoded payloads (RFC 7797) are not supported")
        return cls(
            header=header,
            payload_octets=b64url_decode(payload_segment),
            signing_input=f"{header_segment}.{payload_segment}".encode("ascii"),
            signature=b64url_decode(signature_segment),
        )

    def payload(self) -> dict[str, Any]:
        return json_object(self.payload_octets)


class VerifyingKey:
    """A key bound to the one algorithm it may verify."""

    __slots__ = ("_verify", "algorithm")

    def __init__(self, algorithm: str, verify: Callable[[bytes, bytes], bool]) -> None:
        self.algorithm = algorithm
        self._verify = verify

    def __repr__(self) -> str:
        return f"VerifyingKey({self.algorithm})"

    def verifies(self, jws: CompactJws) -> bool:
        return jws.header.get("alg") == self.algorithm and self._verify(
            jws.signing_input, jws.signature
        )


def hs256_key(secret: str) -> VerifyingKey:
    key = secret.encode()

    def verify(signing_input: bytes, signature: bytes) -> bool:
        expected = hmac.new(key, signing_input, hashlib.sha256).digest()
        return hmac.compare_digest(expected, signature)

    return VerifyingKey("HS256", verify)


def key_from_jwk(jwk: Mapping[str, Any]) -> VerifyingKey | None:
    """The public key of an ES256 (P-256) or RS256 JWK; None for any key we
    must not or cannot use to verify (other types, curves or algorithms,
    `use`/`key_ops` that exclude verifying, bad or weak parameters)."""
    if jwk.get("use", "sig") != "sig":
        return None
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    try:
        if jwk.get("kty") == "EC" and jwk.get("alg", "ES256") == "ES256":
            return _es256(jwk)
        if jwk.get("kty") == "RSA" and jwk.get("alg", "RS256") == "RS256":
            return _rs256(jwk)
    except (MalformedToken, ValueError, TypeError):
        return None
    return None


def _unsigned(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"JWK without {name}")
    return b64url_decode(value)


def _es256(jwk: Mapping[str, Any]) -> VerifyingKey | None:
    if jwk.get("crv") != "P-256":
        return None
    x, y = _unsigned(jwk, "x"), _unsigned(jwk, "y")
    if len(x) != _P256_COORDINATE_BYTES or len(y) != _P256_COORDINATE_BYTES:
        return None
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    # Raises ValueError for a point not on the curve (an invalid-curve attack).
    public_key = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
    ).public_key()
    algorithm = _ecdsa_over_sha256()

    def verify(signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != 2 * _P256_COORDINATE_BYTES:
            return False
        r = int.from_bytes(signature[:_P256_COORDINATE_BYTES], "big")
        s = int.from_bytes(signature[_P256_COORDINATE_BYTES:], "big")
        try:
            public_key.verify(encode_dss_signature(r, s), signing_input, algorithm)
        except InvalidSignature:
            return False
        return True

    return VerifyingKey("ES256", verify)


class CryptoSelfTestFailed(RuntimeError):
    """ES256 verification fails its fixed test vector: the installed
    cryptography is broken for us."""


# A fixed ES256 test vector (not a credential: its private key was thrown
# away). Verifying it needs no randomness, so it may also run while a
# SnapStart snapshot is being prepared.
_TEST_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": "9cjTw-4bCt3TInWMP5N3kirVGx7ZpVWv411Eu79d3yA",
    "y": "XUlKLjdOno4Fa0C4w4GnNOYROF151uMMXnDk2NzqKqw",
}
_TEST_JWS = (
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzbmFwc3RhcnQtcHJpbWluZyJ9."
    "Rzd8CIPbglohwwh1laCXMUqoOAMC3o9LYDV8vtof6L90QMJVu98t3hKal6RpP1pdZeufbVMtueqiqKf9OvO4xA"
)


def self_test() -> None:
    """Verifies the fixed test vector, and refuses it with one byte of its
    signature changed. Run at every cold start that builds a verifier: the
    EC code a first ES256 token needs is loaded during init (which Lambda
    runs at full CPU, and a SnapStart snapshot keeps), and a cryptography
    that cannot verify stops the cold start with one line naming the cause
    instead of every ES256 request failing."""
    jws = CompactJws.parse(_TEST_JWS)
    bent = bytes([jws.signature[0] ^ 1]) + jws.signature[1:]
    try:
        _ecdsa_over_sha256()  # its own errors named (key_from_jwk would only say "unusable")
        key = key_from_jwk(_TEST_JWK)
        verified = key is not None and key.verifies(jws)
        refused = key is not None and not key._verify(jws.signing_input, bent)
    except Exception as exc:
        raise CryptoSelfTestFailed(
            f"ES256 verification failed its test vector ({type(exc).__name__}: {exc}): "
            "check the cryptography release shipped in the artifact"
        ) from exc
    if not (verified and refused):
        failure = (
            "could not load the test vector's key"
            if key is None
            else "accepted a bent signature"
            if verified
            else "refused a valid signature"
        )
        raise CryptoSelfTestFailed(
            f"ES256 verification {failure}: check the cryptography release shipped in the artifact"
        )


@functools.cache
def _ecdsa_over_sha256() -> ECDSA:
    """ECDSA over SHA-256, to verify with (one instance: it holds no state).
    (Until issue 22 a subclass skipped its constructor's import of
    cryptography's OpenSSL backend module; measured side by side, that saved
    nothing outside the noise, so the library's own class is used.)"""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.hashes import SHA256

    return ec.ECDSA(SHA256())


def _rs256(jwk: Mapping[str, Any]) -> VerifyingKey | None:
    modulus = int.from_bytes(_unsigned(jwk, "n"), "big")
    exponent = int.from_bytes(_unsigned(jwk, "e"), "big")
    if modulus.bit_length() < _MIN_RSA_BITS:
        return None
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.hashes import SHA256

    public_key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    size = (modulus.bit_length() + 7) // 8

    def verify(signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != size:
            return False
        try:
            public_key.verify(signature, signing_input, padding.PKCS1v15(), SHA256())
        except InvalidSignature:
            return False
        return True

    return VerifyingKey("RS256", verify)
