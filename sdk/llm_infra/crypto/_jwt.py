"""JWTs on pyjwt, with the algorithm pinned per key.

A `JwtKey` carries exactly one algorithm. `JwtVerifier` picks the key by the
token's ``kid`` (or takes the only key) and hands pyjwt that key's algorithm
alone, so a token cannot choose ``none`` or turn an RSA public key into an
HMAC secret. `JwksVerifier` does the same over a remote key set (pyjwt's
`PyJWKClient`, cached), pinning the algorithm of the JWK, never the token's.

pyjwt errors map to `errors.TokenExpired` (``exp``) and `errors.InvalidToken`
(everything else about the token); messages name the claim, never the token.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec as _ec
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from llm_infra import errors

HmacAlgorithm = Literal["HS256", "HS384", "HS512"]
RsaAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
EcAlgorithm = Literal["ES256", "ES384", "ES512"]

_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}  # RFC 7518 3.2: key >= hash size
_EC_CURVES: dict[str, type[_ec.EllipticCurve]] = {
    "ES256": _ec.SECP256R1,
    "ES384": _ec.SECP384R1,
    "ES512": _ec.SECP521R1,
}
_RSA_MIN_BITS = 2048
_ASYMMETRIC = frozenset(
    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
)


def _bad_key(message: str, expected: str) -> errors.ValidationError:
    return errors.ValidationError(message, field="key", expected=expected)


def _load_private(pem: str | bytes) -> Any:
    try:
        return serialization.load_pem_private_key(
            pem.encode() if isinstance(pem, str) else pem, password=None
        )
    except (ValueError, TypeError):
        raise _bad_key("not a valid unencrypted PEM private key", "PEM private key") from None


def _load_public(pem: str | bytes) -> Any:
    try:
        return serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except (ValueError, TypeError):
        raise _bad_key("not a valid PEM public key", "PEM public key") from None


def _key_pair(
    private_pem: str | bytes | None, public_pem: str | bytes | None, kind: type[Any]
) -> tuple[Any, Any]:
    if private_pem is None and public_pem is None:
        raise _bad_key("give a private key, a public key or both", "private_pem or public_pem")
    private = None if private_pem is None else _load_private(private_pem)
    public = None if public_pem is None else _load_public(public_pem)
    if private is not None and not isinstance(private, kind):
        raise _bad_key("private key of the wrong type for this algorithm", kind.__name__)
    if public is None and private is not None:
        public = private.public_key()
    elif public is not None and private is not None:
        raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if private.public_key().public_bytes(*raw) != public.public_bytes(*raw):
            raise _bad_key("the public key is not the private key's", "a matching key pair")
    return private, public


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class JwtKey:
    """A key for one JWT algorithm; build it with `hmac`, `rsa`, `ec` or `ed25519`.

    `signing_key` is None for a verify-only key. The repr shows only ``alg`` and ``kid``.
    """

    alg: str
    kid: str | None
    signing_key: Any
    verifying_key: Any

    def __repr__(self) -> str:
        return f"JwtKey(alg={self.alg!r}, kid={self.kid!r}, can_sign={self.can_sign})"

    @property
    def can_sign(self) -> bool:
        return self.signing_key is not None

    @classmethod
    def hmac(
        cls, secret: str | bytes, alg: HmacAlgorithm = "HS256", kid: str | None = None
    ) -> JwtKey:
        """A shared secret, at least as long as the hash (32/48/64 bytes, RFC 7518 3.2)."""
        if alg not in _HMAC_MIN_BYTES:
            raise _bad_key("unsupported HMAC algorithm", "HS256, HS384 or HS512")
        raw = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(raw) < _HMAC_MIN_BYTES[alg]:
            raise errors.ValidationError(
                f"{alg} secret too short",
                field="secret",
                expected=f">= {_HMAC_MIN_BYTES[alg]} bytes",
                actual=f"{len(raw)} bytes",
            )
        return cls(alg=alg, kid=kid, signing_key=raw, verifying_key=raw)

    @classmethod
    def rsa(
        cls,
        private_pem: str | bytes | None = None,
        public_pem: str | bytes | None = None,
        alg: RsaAlgorithm = "RS256",
        kid: str | None = None,
    ) -> JwtKey:
        """An RSA key (2048 bits or more) for RS* or PS*; the public half is derived if omitted."""
        if alg not in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
            raise _bad_key("unsupported RSA algorithm", "RS256/384/512 or PS256/384/512")
        private, public = _key_pair(private_pem, public_pem, rsa.RSAPrivateKey)
        if not isinstance(public, rsa.RSAPublicKey):
            raise _bad_key("not an RSA public key", "RSA public key")
        if public.key_size < _RSA_MIN_BITS:
            raise _bad_key("RSA key too small", f">= {_RSA_MIN_BITS} bits")
        return cls(alg=alg, kid=kid, signing_key=private, verifying_key=public)

    @classmethod
    def ec(
        cls,
        private_pem: str | bytes | None = None,
        public_pem: str | bytes | None = None,
        alg: EcAlgorithm = "ES256",
        kid: str | None = None,
    ) -> JwtKey:
        """An EC key on the curve `alg` names (ES256: P-256, ES384: P-384, ES512: P-521)."""
        if alg not in _EC_CURVES:
            raise _bad_key("unsupported EC algorithm", "ES256, ES384 or ES512")
        private, public = _key_pair(private_pem, public_pem, _ec.EllipticCurvePrivateKey)
        if not isinstance(public, _ec.EllipticCurvePublicKey) or not isinstance(
            public.curve, _EC_CURVES[alg]
        ):
            raise _bad_key(f"not an EC public key on the curve of {alg}", f"curve for {alg}")
        return cls(alg=alg, kid=kid, signing_key=private, verifying_key=public)

    @classmethod
    def ed25519(
        cls,
        private_pem: str | bytes | None = None,
        public_pem: str | bytes | None = None,
        alg: Literal["EdDSA"] = "EdDSA",
        kid: str | None = None,
    ) -> JwtKey:
        """An Ed25519 key for EdDSA (RFC 8037)."""
        if alg != "EdDSA":
            raise _bad_key("unsupported Ed25519 algorithm", "EdDSA")
        private, public = _key_pair(private_pem, public_pem, ed25519.Ed25519PrivateKey)
        if not isinstance(public, ed25519.Ed25519PublicKey):
            raise _bad_key("not an Ed25519 public key", "Ed25519 public key")
        return cls(alg=alg, kid=kid, signing_key=private, verifying_key=public)

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK (with ``kid``, ``alg``, ``use``), for a JWKS document."""
        if self.alg not in _ASYMMETRIC:
            raise _bad_key("an HMAC secret has no public JWK", "an asymmetric key")
        algorithm = jwt.get_algorithm_by_name(self.alg)
        jwk: dict[str, Any] = dict(algorithm.to_jwk(self.verifying_key, as_dict=True))
        jwk.update({"alg": self.alg, "use": "sig"})
        if self.kid is not None:
            jwk["kid"] = self.kid
        return jwk


def sign_jwt(
    claims: Mapping[str, Any],
    key: JwtKey,
    *,
    expires_in: float | timedelta | None = None,
    now: float | None = None,
) -> str:
    """A compact JWS of `claims` signed with `key` (its pinned algorithm, its ``kid`` header).

    Sets ``iat`` (unless `claims` has one) and, when `expires_in` is given,
    ``exp = iat + expires_in``. Verifiers require ``exp`` by default: give
    `expires_in` or an ``exp`` claim.
    """
    if not key.can_sign:
        raise errors.CryptoError(
            "this JwtKey holds no private key", operation=errors.CryptoOperation.SIGN
        )
    payload = dict(claims)
    issued_at = int(time.time() if now is None else now)
    payload.setdefault("iat", issued_at)
    if expires_in is not None:
        seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
        payload["exp"] = int(payload["iat"] + seconds)
    headers = {"kid": key.kid} if key.kid is not None else None
    return jwt.encode(payload, key.signing_key, algorithm=key.alg, headers=headers)


def _mapped(exc: jwt.PyJWTError) -> errors.AuthError:
    """Our error for a pyjwt one; the message names the claim, never echoes the token."""
    cause = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if isinstance(exc, jwt.ExpiredSignatureError):
        return errors.TokenExpired("token has expired (exp)", cause=cause)
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return errors.InvalidToken(f"token lacks the required {exc.claim!r} claim", cause=cause)
    messages: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
        (jwt.ImmatureSignatureError, "token is not valid yet (nbf or iat in the future)"),
        (jwt.InvalidAudienceError, "token audience (aud) is not accepted"),
        (jwt.InvalidIssuerError, "token issuer (iss) is not accepted"),
        (jwt.InvalidIssuedAtError, "token issued-at (iat) is not a number"),
        (jwt.exceptions.InvalidSubjectError, "token subject (sub) is invalid"),
        (jwt.exceptions.InvalidJTIError, "token id (jti) is invalid"),
        (jwt.InvalidSignatureError, "token signature does not verify"),
        (jwt.InvalidAlgorithmError, "token algorithm is not the one pinned for its key"),
        (jwt.InvalidKeyError, "token cannot be verified with the configured key"),
        (jwt.DecodeError, "token is malformed"),
    )
    message = next((text for kind, text in messages if isinstance(exc, kind)), "token is invalid")
    return errors.InvalidToken(message, cause=cause)


def _unverified_header(token: object) -> dict[str, Any]:
    if not isinstance(token, str | bytes) or not token:
        raise errors.InvalidToken("token is empty or not a string")
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _mapped(exc) from None


def _options(require: Iterable[str]) -> jwt.types.Options:
    return {"require": list(require), "enforce_minimum_key_length": True}


class JwtVerifier:
    """Verifies tokens against known keys, each pinned to its algorithm.

    With several keys, tokens must carry a ``kid``; with one key, a token
    without ``kid`` uses it. `issuer`/`audience`, when set, must match (and
    are then required); a token with an ``aud`` is refused when no `audience`
    is configured. `leeway` (seconds) applies to ``exp``, ``nbf`` and ``iat``.
    """

    def __init__(
        self,
        keys: Sequence[JwtKey],
        *,
        issuer: str | Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        leeway: float = 30,
        require: Sequence[str] = ("exp",),
    ) -> None:
        if not keys:
            raise errors.ValidationError("a JwtVerifier needs at least one key", field="keys")
        kids = [key.kid for key in keys]
        if len(keys) > 1 and (None in kids or len(set(kids)) != len(kids)):
            raise errors.ValidationError(
                "with several keys, every key needs a distinct kid", field="keys"
            )
        self._keys = tuple(keys)
        self._by_kid = {key.kid: key for key in keys if key.kid is not None}
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.require = tuple(require)

    def __repr__(self) -> str:
        return f"JwtVerifier(keys={list(self._keys)!r}, issuer={self.issuer!r})"

    def _key_for(self, header: Mapping[str, Any]) -> JwtKey:
        kid = header.get("kid")
        if kid is None:
            if len(self._keys) == 1:
                return self._keys[0]
            raise errors.InvalidToken("token has no kid and the verifier holds several keys")
        key = self._by_kid.get(kid) if isinstance(kid, str) else None
        if key is None and len(self._keys) == 1 and self._keys[0].kid is None:
            key = self._keys[0]
        if key is None:
            raise errors.InvalidToken("token kid matches no configured key")
        return key

    def verify(self, token: str) -> dict[str, Any]:
        """The verified claims; `errors.TokenExpired` or `errors.InvalidToken` otherwise."""
        key = self._key_for(_unverified_header(token))
        try:
            return jwt.decode(
                token,
                key.verifying_key,
                algorithms=[key.alg],  # the key's algorithm, never the token's choice
                options=_options(self.require),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
            )
        except jwt.PyJWTError as exc:
            raise _mapped(exc) from None


class JwksVerifier:
    """Verifies tokens against a remote JWKS (pyjwt `PyJWKClient`, key set cached `cache_seconds`).

    The algorithm comes from the JWK (its ``alg``, else its key type) and must
    be in `algorithms_allowed`, which may only name asymmetric algorithms. An
    unreachable JWKS raises `errors.ExternalServiceError` (retryable).
    """

    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str | Sequence[str] | None,
        audience: str | Sequence[str] | None,
        algorithms_allowed: Sequence[str] = ("RS256", "ES256", "EdDSA"),
        cache_seconds: float = 300,
        leeway: float = 30,
        require: Sequence[str] = ("exp",),
        timeout: float = 10,
    ) -> None:
        unsupported = set(algorithms_allowed) - _ASYMMETRIC
        if unsupported or not algorithms_allowed:
            raise errors.ValidationError(
                "a JWKS verifier accepts asymmetric algorithms only",
                field="algorithms_allowed",
                expected=", ".join(sorted(_ASYMMETRIC)),
                actual=", ".join(sorted(unsupported)),
            )
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self.algorithms_allowed = tuple(algorithms_allowed)
        self.leeway = leeway
        self.require = tuple(require)
        self._client = jwt.PyJWKClient(
            jwks_url, cache_jwk_set=True, lifespan=cache_seconds, timeout=timeout
        )

    def __repr__(self) -> str:
        return f"JwksVerifier({self.jwks_url!r}, issuer={self.issuer!r})"

    def _signing_key(self, token: str) -> jwt.PyJWK:
        try:
            return self._client.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError:
            raise errors.ExternalServiceError(
                "JWKS endpoint unreachable",
                service="jwks",
                operation=f"GET {self.jwks_url}",
                retry_after=1.0,
                cause="jwt.exceptions.PyJWKClientConnectionError",
            ) from None
        except jwt.PyJWKClientError:
            raise errors.InvalidToken(
                "token kid matches no key in the JWKS",
                cause="jwt.exceptions.PyJWKClientError",
            ) from None
        except jwt.PyJWTError as exc:
            raise _mapped(exc) from None

    def verify(self, token: str) -> dict[str, Any]:
        """The verified claims; `errors.TokenExpired` or `errors.InvalidToken` otherwise."""
        _unverified_header(token)
        jwk = self._signing_key(token)
        algorithm = jwk.algorithm_name
        if algorithm not in self.algorithms_allowed:
            raise errors.InvalidToken("the JWK's algorithm is not allowed by this verifier")
        try:
            return jwt.decode(
                token,
                jwk.key,
                algorithms=[algorithm],  # the JWK's algorithm, never the token's choice
                options=_options(self.require),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
            )
        except jwt.PyJWTError as exc:
            raise _mapped(exc) from None
