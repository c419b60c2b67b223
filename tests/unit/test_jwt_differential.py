"""The functions' token verifier (shared.auth) against PyJWT, over generated
tokens: valid ones, every segment bent before or after signing, edge-case
claims, odd headers and odd key sets. Both choose keys the same way (the
JWKS's signing keys whose `kid` and algorithm are the header's) and check
the same claims (exp, nbf, iat with 30 s of leeway, aud, iss, sub, jti).

They must accept and refuse the same tokens (and read the same claims),
except where ours is stricter, each case listed in STRICTER with the RFC
sentence that says why. Ours is never the more lenient."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.auth.jwks import JwksCache
from shared.auth.verifier import LEEWAY_SECONDS, TokenVerifier
from shared.errors import Unauthorized
from tests.support.tokens import b64url, sign_segments

pytestmark = pytest.mark.unit

NOW = 1_800_000_000
ISSUER = "https://project.supabase.co/auth/v1"
SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
USER = str(uuid.UUID(int=0x1234_5678_9ABC_4DEF_8123_4567_89AB_CDEF))
MISSING = object()

# Where ours refuses what PyJWT 2.15 accepts, and why.
STRICTER = {
    "padding": (
        "RFC 7515, 2 (Base64url Encoding): 'Base64 encoding using the URL- and "
        "filename-safe character set ... with all trailing '=' characters omitted'"
    ),
    "crit": (
        "RFC 7515, 4.1.11: 'If any of the listed extension Header Parameters are not "
        "understood and supported by the recipient, then the JWS is invalid' (we "
        "support none: PyJWT supports b64)"
    ),
    "utf-8": (
        "RFC 7515, 5.2 steps 3-4 and 8: 'Verify that the resulting octet sequence is a "
        "UTF-8-encoded representation of a completely valid JSON object' (PyJWT also "
        "reads UTF-16/32, a byte order mark and lone surrogates)"
    ),
    "numeric-date": (
        "RFC 7519, 2 (NumericDate): 'A JSON numeric value representing the number of "
        "seconds from 1970-01-01T00:00:00Z UTC ... Non-integer values can be "
        "represented' (PyJWT takes int() of a string or `true`, and truncates nbf/iat)"
    ),
}


def _jwk(public_key: Any, **fields: Any) -> dict[str, Any]:
    if isinstance(public_key, rsa.RSAPublicKey):
        jwk = json.loads(RSAAlgorithm.to_jwk(public_key))
    else:
        jwk = json.loads(ECAlgorithm.to_jwk(public_key))
    return {**jwk, **fields}


def _ec(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def _rsa(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


# Signers: (algorithm, private key or secret). Some have no place in any JWKS.
SIGNERS: dict[str, tuple[str, Any]] = {
    "ec-k1": ("ES256", _ec()),
    "rsa-k1": ("RS256", _rsa()),  # the same kid as ec-k1: RFC 7517 4.5 allows it
    "ec-k2": ("ES256", _ec()),
    "ec-k2-again": ("ES256", _ec()),  # the same kid and type as ec-k2
    "rsa-weak": ("RS256", _rsa(1024)),
    "ec-enc": ("ES256", _ec()),
    "ec-sign-only": ("ES256", _ec()),
    "ec-p384": ("ES256", _ec(ec.SECP384R1())),  # an ES256 header over a P-384 key
    "ec-stranger": ("ES256", _ec()),  # claims kid k1, in no JWKS
    "hs": ("HS256", SECRET),
    "hs-wrong": ("HS256", "another-secret-that-is-long-enough-for-hmac-sha256"),
}
_PUBLIC = {name: key.public_key() for name, (_, key) in SIGNERS.items() if not isinstance(key, str)}
JWKS_KEYS = [
    _jwk(_PUBLIC["ec-k1"], kid="k1", use="sig", alg="ES256"),
    _jwk(_PUBLIC["rsa-k1"], kid="k1", use="sig"),
    _jwk(_PUBLIC["ec-k2"], kid="k2"),
    _jwk(_PUBLIC["ec-k2-again"], kid="k2", alg="ES256"),
    _jwk(_PUBLIC["rsa-weak"], kid="weak", alg="RS256"),
    _jwk(_PUBLIC["ec-enc"], kid="enc", use="enc"),
    _jwk(_PUBLIC["ec-sign-only"], kid="ops", key_ops=["sign"]),
    _jwk(_PUBLIC["ec-p384"], kid="p384"),
    _jwk(_PUBLIC["ec-stranger"], kid="mismatch", alg="RS256"),  # an EC key claiming RS256
    {"kty": "oct", "kid": "k1", "k": b64url(SECRET.encode()), "alg": "HS256"},
]
JWK_SETS = {
    "all": {"keys": JWKS_KEYS},
    "reversed": {"keys": list(reversed(JWKS_KEYS))},
    "no rsa": {"keys": [k for k in JWKS_KEYS if k["kty"] != "RSA"]},
    "one": {"keys": JWKS_KEYS[:1]},
    "empty": {"keys": []},
}


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> _FrozenDatetime:
        return cls.fromtimestamp(NOW, tz=tz or UTC)


@pytest.fixture(scope="module", autouse=True)
def _pyjwt_at_the_same_instant() -> Iterator[None]:
    # PyJWT reads the wall clock; ours is given NOW. (A fixed clock, not a mock.)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jwt.api_jwt, "datetime", _FrozenDatetime)
        yield


@pytest.fixture(scope="module")
def outcomes() -> Iterator[Counter[str]]:
    """What the generated tokens came to: each outcome must be common, or
    agreeing would mean little."""
    seen: Counter[str] = Counter()
    yield seen
    total = sum(seen.values())
    assert seen["both accept"] >= total // 5, seen
    assert seen["both refuse"] >= total // 5, seen
    assert any(seen[reason] for reason in STRICTER), seen


def ours(token: str, jwks: dict[str, Any], secret: str | None) -> dict[str, Any] | None:
    client = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200, json=jwks)))
    verifier = TokenVerifier(
        JwksCache("https://project.supabase.co/auth/v1/.well-known/jwks.json", client),
        secret,
        issuer=ISSUER,
        clock=lambda: NOW,
    )
    try:
        return verifier.claims(token)
    except Unauthorized:
        return None


def _signing_keys(jwks: dict[str, Any]) -> list[jwt.PyJWK]:
    """The key selection, in PyJWT's terms: PyJWKSet's usable keys that
    PyJWKClient deems signing keys (use sig or absent, a kid), without
    keys whose key_ops exclude verifying (RFC 7517 4.3: 'verify (verify
    digital signature or MAC)') or RSA keys under 2048 bits (RFC 7518 3.3:
    'A key of size 2048 bits or larger MUST be used with these algorithms')."""
    try:
        keys = jwt.PyJWKSet.from_dict(jwks).keys
    except jwt.PyJWKSetError:
        return []
    return [
        key
        for key in keys
        if key.public_key_use in ("sig", None)
        and key.key_id
        and "verify" in key._jwk_data.get("key_ops", ["verify"])
        and not (isinstance(key.key, rsa.RSAPublicKey) and key.key.key_size < 2048)
    ]


def pyjwt(token: str, jwks: dict[str, Any], secret: str | None) -> dict[str, Any] | None:
    try:
        header = jwt.get_unverified_header(token)
    except Exception:
        return None
    alg = header.get("alg")
    candidates: list[Any] = []
    if alg == "HS256" and secret:
        candidates = [secret]
    elif alg in ("ES256", "RS256"):
        kid = header.get("kid")
        candidates = [k for k in _signing_keys(jwks) if k.key_id == kid and k.algorithm_name == alg]
    for key in candidates:
        claims = _decoded(token, key, str(alg))
        if claims is not None:
            return claims
    return None


def _decoded(token: str, key: Any, alg: str) -> dict[str, Any] | None:
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[alg], audience="authenticated", issuer=ISSUER,
            leeway=LEEWAY_SECONDS, options={"require": ["exp", "sub", "aud", "iss"]},
        )  # fmt: skip
    except Exception:  # PyJWT's errors, and what it lets escape (RecursionError, ...)
        return None
    return claims


def _lenient_b64(segment: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(segment.rstrip("=") + "=" * (-len(segment.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        return None


def _loose_json(raw: bytes | None) -> Any:
    try:
        return json.loads(raw) if raw is not None else None
    except (ValueError, RecursionError):
        return None


def why_ours_is_stricter(token: str) -> str | None:
    """Which listed rule a token breaks that PyJWT lets pass, read from the
    token itself (not from either verifier)."""
    segments = token.split(".")
    if len(segments) != 3:
        return None
    if any("=" in segment for segment in segments):
        return "padding"
    raw_header, raw_payload = _lenient_b64(segments[0]), _lenient_b64(segments[1])
    header, payload = _loose_json(raw_header), _loose_json(raw_payload)
    if isinstance(header, dict) and "crit" in header:
        return "crit"
    for raw in (raw_header, raw_payload):
        try:
            if raw is not None:
                json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return "utf-8"
    if isinstance(payload, dict):
        for claim in ("exp", "nbf", "iat"):
            value = payload.get(claim)
            if isinstance(value, str | bool):
                return "numeric-date"
            if (
                claim != "exp"
                and isinstance(value, float)
                and int(value) <= NOW + LEEWAY_SECONDS < value
            ):
                return "numeric-date"
    return None


# Generated tokens -----------------------------------------------------------

_TIMES = [
    MISSING, None, NOW - LEEWAY_SECONDS, NOW - LEEWAY_SECONDS + 1, NOW - LEEWAY_SECONDS + 0.5,
    NOW - LEEWAY_SECONDS - 0.5, NOW + LEEWAY_SECONDS, NOW + LEEWAY_SECONDS + 1,
    NOW + LEEWAY_SECONDS + 0.5, NOW + LEEWAY_SECONDS - 0.5, NOW + 3600, NOW - 3600,
    str(NOW + 3600), str(NOW - 3600), True, False, float("nan"), float("inf"), -float("inf"),
    [NOW + 3600], {"at": NOW}, 10**30, -1, 0, 1e300,
]  # fmt: skip
_EDGES: dict[str, list[Any]] = {
    "exp": _TIMES,
    "nbf": _TIMES,
    "iat": _TIMES,
    "aud": [
        ["authenticated"], ["other", "authenticated"], ["authenticated", 1],
        ["authenticated", None], [], "", "anon", ["anon"], {"authenticated": True}, None, MISSING,
        "Authenticated",
    ],
    "iss": [ISSUER + "/", MISSING, None, [ISSUER], "", ISSUER.upper()],
    "sub": [42, None, MISSING, "", "someone", USER.upper(), ["x"], "urn:uuid:" + USER],
    "jti": ["an-id", 7, None, ["x"], ""],
    "role": ["service_role", MISSING, None],
}  # fmt: skip


@st.composite
def claims(draw: st.DrawFn, bend: bool) -> dict[str, Any]:
    """GoTrue's claims; when bent, one to three of them take an edge value."""
    value = {
        "iss": ISSUER, "sub": USER, "aud": "authenticated", "role": "authenticated",
        "exp": NOW + 3600, "iat": NOW - 60, "session_id": "s-1",
        "app_metadata": {"provider": "email", "mongo_user_id": "amy"},
    }  # fmt: skip
    if bend:
        for name in draw(st.sets(st.sampled_from(sorted(_EDGES)), min_size=1, max_size=3)):
            edge = draw(st.sampled_from(_EDGES[name]))
            if edge is MISSING:
                value.pop(name, None)
            else:
                value[name] = edge
    value.update(
        draw(
            st.dictionaries(
                st.sampled_from(["email", "x", "exp_", "amr"]),
                st.recursive(
                    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: (
                        st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
                    ),
                    max_leaves=6,
                ),
                max_size=2,
            )
        )
    )
    return value


def _json_bytes(draw: st.DrawFn, value: Any, bend: bool) -> bytes:
    """The JSON text of `value`, as issuers write it or, bent, as they should not."""
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    if not bend:
        return text.encode()
    form = draw(
        st.sampled_from(
            ["bom", "utf-16", "utf-16-le", "utf-32", "surrogate", "duplicate", "array", "cut"]
        )
    )
    if form == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    if form in ("utf-16", "utf-16-le", "utf-32"):
        return text.encode(form)
    if form == "surrogate" and text.startswith("{"):
        return b'{"x": "\xed\xa0\x80", ' + text[1:].encode() if len(text) > 2 else text.encode()
    if form == "duplicate" and isinstance(value, dict) and value:
        first = next(iter(value))
        return ("{" + json.dumps(first) + ': "shadowed", ' + text[1:]).encode()
    if form == "array":
        return f"[{text}]".encode()
    if form == "cut":
        return text[: len(text) // 2].encode()
    return text.encode()


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _bend(draw: st.DrawFn, segment: str) -> str:
    """A segment as encoded, or written another way: padded, with non-zero
    trailing bits, with a character outside the alphabet, of a length
    base64 cannot have, or with one character changed."""
    how = draw(st.sampled_from(["pad", "trailing bits", "foreign", "length", "change"]))
    if how == "pad" and len(segment) % 4:
        return segment + "=" * (-len(segment) % 4)
    if how == "trailing bits" and len(segment) % 4 in (2, 3):
        unused = 4 if len(segment) % 4 == 2 else 2
        last = _ALPHABET.index(segment[-1])
        return segment[:-1] + _ALPHABET[last | draw(st.integers(1, 2**unused - 1))]
    if how == "foreign":
        at = draw(st.integers(0, len(segment)))
        return (
            segment[:at]
            + draw(st.sampled_from(["+", "/", "!", " ", "\n", "é", "."]))
            + segment[at:]
        )
    if how == "length":
        return segment + "A"
    if how == "change" and segment:
        at = draw(st.integers(0, len(segment) - 1))
        return segment[:at] + draw(st.sampled_from(_ALPHABET)) + segment[at + 1 :]
    return segment


# Each signer's kid in the JWKS (the stranger claims one it does not hold).
KIDS = {
    "ec-k1": "k1", "rsa-k1": "k1", "ec-k2": "k2", "ec-k2-again": "k2", "rsa-weak": "weak",
    "ec-enc": "enc", "ec-sign-only": "ops", "ec-p384": "p384", "ec-stranger": "k1",
    "hs": MISSING, "hs-wrong": MISSING,
}  # fmt: skip
USABLE = ["ec-k1", "rsa-k1", "ec-k2", "ec-k2-again", "hs"]
ASPECTS = ["alg", "kid", "header", "claims", "header json", "payload json", "header segment",
           "payload segment", "signature"]  # fmt: skip


@st.composite
def tokens(draw: st.DrawFn) -> str:
    """A token as an issuer signs it, bent in up to two ways: a different
    alg or kid, extra header parameters, edge-case claims, JSON written
    otherwise, a segment encoded otherwise (then signed as it is), or the
    signature damaged."""
    signer = draw(st.sampled_from(USABLE * 3 + sorted(SIGNERS)))
    signing_alg, key = SIGNERS[signer]
    bent = draw(st.sets(st.sampled_from(ASPECTS), max_size=2))
    header: dict[str, Any] = {"alg": signing_alg}
    if KIDS[signer] is not MISSING:
        header["kid"] = KIDS[signer]
    if "alg" in bent:
        alg = draw(
            st.sampled_from(["ES256", "RS256", "HS256", "none", "ES384", "RS512", "es256", MISSING])
        )
        header.pop("alg")
        if alg is not MISSING:
            header["alg"] = alg
    if "kid" in bent:
        kid = draw(
            st.sampled_from(
                ["k1", "k2", "weak", "enc", "ops", "p384", "mismatch", "", 7, None, "K1", MISSING]
            )
        )
        header.pop("kid", None)
        if kid is not MISSING:
            header["kid"] = kid
    if "header" in bent:
        header.update(
            draw(
                st.sampled_from(
                    [
                        {"typ": "JWT"}, {"crit": ["b64"], "b64": True}, {"crit": ["exp"], "exp": 1},
                        {"crit": []}, {"b64": False, "crit": ["b64"]}, {"b64": False},
                        {"cty": "JWT"}, {"jku": "https://attacker.example/jwks.json"},
                    ]
                )
            )
        )  # fmt: skip
    header_json = _json_bytes(draw, header, "header json" in bent)
    payload_json = _json_bytes(draw, draw(claims("claims" in bent)), "payload json" in bent)
    header_segment = (
        _bend(draw, b64url(header_json)) if "header segment" in bent else b64url(header_json)
    )
    payload_segment = (
        _bend(draw, b64url(payload_json)) if "payload segment" in bent else b64url(payload_json)
    )
    signing_input, signature = sign_segments(
        header_segment, payload_segment, signing_alg, key
    ).rsplit(".", 1)
    if "signature" in bent:
        how = draw(st.sampled_from(["bend", "none", "four segments"]))
        signature = {
            "bend": _bend(draw, signature),
            "none": "",
            "four segments": signature + ".e30",
        }[how]
    return f"{signing_input}.{signature}"


def _valid(signer: str = "ec-k1", kid: str = "k1", **changes: Any) -> str:
    alg, key = SIGNERS[signer]
    payload = {"iss": ISSUER, "sub": USER, "aud": "authenticated", "exp": NOW + 3600, **changes}
    return sign_segments(
        b64url(json.dumps({"alg": alg, "kid": kid}).encode()),
        b64url(json.dumps(payload).encode()),
        alg,
        key,
    )


@settings(
    max_examples=600,
    deadline=None,
    derandomize=True,  # the same tokens every run: CI is never the first to meet one
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    token=tokens(), jwks=st.sampled_from(sorted(JWK_SETS)), secret=st.sampled_from([SECRET, None])
)
@example(token=_valid(), jwks="all", secret=None)
@example(token=_valid("rsa-k1"), jwks="all", secret=None)
@example(token=_valid("ec-k2-again", kid="k2"), jwks="reversed", secret=None)
def test_ours_and_pyjwt_agree_on_every_token_but_the_listed_stricter_cases(
    token: str, jwks: str, secret: str | None, outcomes: Counter[str]
) -> None:
    mine, theirs = ours(token, JWK_SETS[jwks], secret), pyjwt(token, JWK_SETS[jwks], secret)

    if mine is not None:
        assert theirs == mine, f"ours accepted what PyJWT refuses: {token}"
        outcomes["both accept"] += 1
    elif theirs is not None:
        reason = why_ours_is_stricter(token)
        assert reason in STRICTER, f"ours refused, PyJWT accepted: {token}"
        outcomes[reason] += 1
    else:
        outcomes["both refuse"] += 1


def _padded() -> str:
    """As an issuer that pads (AWS ALB does) writes it: padded segments, signed."""

    def pad(segment: str) -> str:
        return segment + "=" * (-len(segment) % 4)

    payload = {"iss": ISSUER, "sub": USER, "aud": "authenticated", "exp": NOW + 3600}
    signed = sign_segments(
        pad(b64url(json.dumps({"alg": "ES256", "kid": "k1"}).encode())),
        pad(b64url(json.dumps(payload).encode())), "ES256", SIGNERS["ec-k1"][1],
    )  # fmt: skip
    signing_input, signature = signed.rsplit(".", 1)
    return f"{signing_input}.{pad(signature)}"


def _with_header(header: dict[str, Any], **changes: Any) -> str:
    payload = {"iss": ISSUER, "sub": USER, "aud": "authenticated", "exp": NOW + 3600, **changes}
    return sign_segments(
        b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()), "ES256",
        SIGNERS["ec-k1"][1],
    )  # fmt: skip


def _utf16_payload() -> str:
    payload = {"iss": ISSUER, "sub": USER, "aud": "authenticated", "exp": NOW + 3600}
    return sign_segments(
        b64url(json.dumps({"alg": "ES256", "kid": "k1"}).encode()),
        b64url(json.dumps(payload).encode("utf-16")), "ES256", SIGNERS["ec-k1"][1],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("reason", "token"),
    [
        ("padding", _padded()),
        ("crit", _with_header({"alg": "ES256", "kid": "k1", "crit": ["b64"], "b64": True})),
        ("utf-8", _utf16_payload()),
        ("numeric-date", _valid(exp=str(NOW + 3600))),
        ("numeric-date", _valid(iat=True)),
        ("numeric-date", _valid(nbf=NOW + LEEWAY_SECONDS + 0.5)),
    ],
    ids=["padding", "crit", "utf-16", "exp as a string", "iat true", "nbf half a second on"],
)
def test_each_listed_case_is_one_pyjwt_accepts_and_ours_refuses(reason: str, token: str) -> None:
    assert pyjwt(token, JWK_SETS["all"], None) is not None
    assert ours(token, JWK_SETS["all"], None) is None
    assert why_ours_is_stricter(token) == reason
