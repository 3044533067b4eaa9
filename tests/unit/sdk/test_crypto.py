"""llm_infra.crypto: known-answer vectors (sdk/testvectors/crypto.json) and security properties."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pickle
import time
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from llm_infra import crypto, errors

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[3] / "sdk" / "testvectors" / "crypto.json").read_text("utf-8")
)


def _cases(section: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize(
        "case", VECTORS[section], ids=[case["name"] for case in VECTORS[section]]
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def rsa_private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_private(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _pem_public(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _assert_no_secret(exc: BaseException, *secrets: str | bytes) -> None:
    shown = f"{exc} {exc!r} {getattr(exc, 'message', '')} {getattr(exc, 'cause', '')}"
    for secret in secrets:
        texts = [secret] if isinstance(secret, str) else [secret.hex(), repr(secret)]
        for text in texts:
            assert text not in shown


def test_all_is_complete() -> None:
    public = {name for name in vars(crypto) if not name.startswith("_")}
    assert set(crypto.__all__) == public - {"annotations"}


def test_vector_file_is_stably_formatted() -> None:
    path = Path(__file__).parents[3] / "sdk" / "testvectors" / "crypto.json"
    assert path.read_text("utf-8") == json.dumps(VECTORS, indent=2, ensure_ascii=False) + "\n"
    assert "RFC 8032" in VECTORS["description"]


# -- digests -----------------------------------------------------------------------------------


@_cases("sha256")
def test_sha256_vectors(case: dict[str, Any]) -> None:
    message = bytes.fromhex(case["message_hex"])
    assert crypto.sha256(message).hex() == case["digest_hex"]
    assert crypto.sha256_hex(message) == case["digest_hex"]
    assert crypto.verify_digest(message, case["digest_hex"])
    assert crypto.verify_digest(message, bytes.fromhex(case["digest_hex"]))
    assert not crypto.verify_digest(message + b"x", case["digest_hex"])


@_cases("hmac_sha256")
def test_hmac_vectors(case: dict[str, Any]) -> None:
    key, data = bytes.fromhex(case["key_hex"]), bytes.fromhex(case["data_hex"])
    assert crypto.hmac_sha256(key, data).hex() == case["mac_hex"]
    assert crypto.verify_hmac_sha256(key, data, bytes.fromhex(case["mac_hex"]))
    assert not crypto.verify_hmac_sha256(key, data + b"!", bytes.fromhex(case["mac_hex"]))


@_cases("blake2b")
def test_blake2b_vectors(case: dict[str, Any]) -> None:
    message = bytes.fromhex(case["message_hex"])
    assert crypto.blake2b_hex(message, case["digest_size"]) == case["digest_hex"]


@_cases("blake3")
def test_blake3_vectors(case: dict[str, Any]) -> None:
    message = bytes.fromhex(case["message_hex"])
    assert crypto.blake3_hex(message) == case["digest_hex"]
    assert crypto.verify_digest(message, case["digest_hex"], "blake3")


def test_digest_defaults_and_bad_input() -> None:
    assert len(crypto.blake2b(b"x")) == 32
    assert crypto.digest(b"x", "blake2b") == hashlib.blake2b(b"x", digest_size=32).digest()
    assert not crypto.verify_digest(b"x", "not hex")
    with pytest.raises(errors.ValidationError):
        crypto.blake2b(b"x", digest_size=65)


# -- passwords ---------------------------------------------------------------------------------


def test_argon2id_hash_and_verify() -> None:
    hashed = crypto.hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert crypto.verify_password("correct horse", hashed)
    assert crypto.verify_password(b"correct horse", hashed)
    assert not crypto.verify_password("wrong horse", hashed)
    assert not crypto.needs_rehash(hashed)
    assert crypto.hash_password("correct horse") != hashed  # salted


@pytest.mark.parametrize("prefix", [b"$2a$", b"$2b$", b"$2y$"])
def test_bcrypt_hashes_from_elsewhere_verify_and_need_rehash(prefix: bytes) -> None:
    hashed = bcrypt.hashpw(b"hunter22", bcrypt.gensalt(rounds=4))
    imported = (prefix + hashed[4:]).decode()
    assert crypto.verify_password("hunter22", imported)
    assert not crypto.verify_password("hunter23", imported)
    assert not crypto.verify_password("x" * 100, imported)
    assert crypto.needs_rehash(imported)


def test_weak_argon2_parameters_need_rehash() -> None:
    import argon2

    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")
    assert crypto.verify_password("pw", weak)
    assert crypto.needs_rehash(weak)


@pytest.mark.parametrize("stored", ["plaintext-password", "$argon2id$garbage", "$2b$garbage"])
def test_unrecognised_hash_is_an_error_without_the_password(stored: str) -> None:
    with pytest.raises(errors.CryptoError) as caught:
        crypto.verify_password("s3cret-pw", stored)
    _assert_no_secret(caught.value, "s3cret-pw")


# -- AES-256-GCM -------------------------------------------------------------------------------


@_cases("aes_256_gcm")
def test_gcm_vectors_through_our_decrypt(case: dict[str, Any]) -> None:
    key = crypto.AeadKey.from_bytes(bytes.fromhex(case["key_hex"]))
    blob = bytes.fromhex(case["iv_hex"] + case["ciphertext_hex"] + case["tag_hex"])
    aad = bytes.fromhex(case["aad_hex"])
    assert key.decrypt(blob, aad).hex() == case["plaintext_hex"]


@_cases("aead_blob")
def test_blob_format_vectors(case: dict[str, Any]) -> None:
    key_bytes, nonce = bytes.fromhex(case["key_hex"]), bytes.fromhex(case["nonce_hex"])
    aad, plaintext = bytes.fromhex(case["aad_hex"]), bytes.fromhex(case["plaintext_hex"])
    # Our encrypt draws a random nonce: build the fixed-nonce blob with the library itself.
    assert (nonce + AESGCM(key_bytes).encrypt(nonce, plaintext, aad)).hex() == case["blob_hex"]
    assert crypto.AeadKey.from_bytes(key_bytes).decrypt(bytes.fromhex(case["blob_hex"]), aad) == (
        plaintext
    )


def test_aead_round_trip_and_fresh_nonces() -> None:
    key = crypto.AeadKey.random()
    first, second = key.encrypt(b"hello", b"ctx"), key.encrypt(b"hello", b"ctx")
    assert first != second
    assert len(first) == crypto.NONCE_SIZE + 5 + crypto.TAG_SIZE
    assert key.decrypt(first, b"ctx") == key.decrypt(second, b"ctx") == b"hello"


@pytest.fixture
def sealed() -> tuple[crypto.AeadKey, bytes, bytes]:
    raw = bytes(range(100, 132))
    return crypto.AeadKey.from_bytes(raw), raw, crypto.AeadKey.from_bytes(raw).encrypt(b"m", b"a")


def _flip(blob: bytes, index: int) -> bytes:
    return blob[:index] + bytes([blob[index] ^ 1]) + blob[index + 1 :]


@pytest.mark.parametrize(
    ("mutate", "aad"),
    [
        (lambda blob: _flip(blob, 0), b"a"),  # nonce
        (lambda blob: _flip(blob, crypto.NONCE_SIZE), b"a"),  # ciphertext
        (lambda blob: _flip(blob, len(blob) - 1), b"a"),  # tag
        (lambda blob: blob[:-1], b"a"),  # truncated tag
        (lambda blob: blob[:20], b"a"),  # shorter than nonce + tag
        (lambda blob: b"", b"a"),
        (lambda blob: blob, b"b"),  # wrong AAD
        (lambda blob: blob, b""),
    ],
    ids=["nonce", "ciphertext", "tag", "truncated", "too-short", "empty", "wrong-aad", "no-aad"],
)
def test_tampering_fails_without_leaking_the_key(
    sealed: tuple[crypto.AeadKey, bytes, bytes], mutate: Any, aad: bytes
) -> None:
    key, raw, blob = sealed
    with pytest.raises(errors.DecryptionFailed) as caught:
        key.decrypt(mutate(blob), aad)
    assert caught.value.operation is errors.CryptoOperation.DECRYPT
    assert caught.value.__cause__ is None
    _assert_no_secret(caught.value, raw)


def test_wrong_key_fails() -> None:
    blob = crypto.AeadKey.random().encrypt(b"m")
    with pytest.raises(errors.DecryptionFailed):
        crypto.AeadKey.random().decrypt(blob)


def test_key_repr_and_pickle_hide_the_key() -> None:
    raw = bytes(range(32))
    key = crypto.AeadKey.from_bytes(raw)
    assert raw.hex() not in repr(key)
    assert repr(raw) not in repr(key)
    assert "redacted" in repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(errors.ValidationError) as caught:
        crypto.AeadKey.from_bytes(raw[:16])
    _assert_no_secret(caught.value, raw[:16])


def test_passphrase_kdf_is_deterministic_with_the_same_salt() -> None:
    key, salt = crypto.AeadKey.from_passphrase("tr0ub4dor&3")
    assert len(salt) == 16
    again, same_salt = crypto.AeadKey.from_passphrase("tr0ub4dor&3", salt)
    assert same_salt == salt
    assert again.to_bytes() == key.to_bytes()
    assert again.decrypt(key.encrypt(b"data")) == b"data"
    other, _ = crypto.AeadKey.from_passphrase("tr0ub4dor&3", bytes(16))
    assert other.to_bytes() != key.to_bytes()
    assert "tr0ub4dor" not in repr(key)


def test_passphrase_kdf_is_argon2id_with_pinned_parameters() -> None:
    from argon2.low_level import Type, hash_secret_raw

    key, salt = crypto.AeadKey.from_passphrase(b"pw", b"0123456789abcdef")
    expected = hash_secret_raw(
        b"pw", salt, time_cost=3, memory_cost=65536, parallelism=4, hash_len=32, type=Type.ID
    )
    assert key.to_bytes() == expected
    with pytest.raises(errors.ValidationError):
        crypto.AeadKey.from_passphrase("pw", b"short")


# -- Ed25519 -----------------------------------------------------------------------------------


@_cases("ed25519")
def test_ed25519_vectors(case: dict[str, Any]) -> None:
    signing = crypto.SigningKey.from_raw(bytes.fromhex(case["secret_hex"]))
    message = bytes.fromhex(case["message_hex"])
    assert signing.verify_key.to_raw().hex() == case["public_hex"]
    assert signing.sign(message).hex() == case["signature_hex"]
    verify = crypto.VerifyKey.from_raw(bytes.fromhex(case["public_hex"]))
    verify.verify(message, bytes.fromhex(case["signature_hex"]))
    with pytest.raises(errors.VerificationFailed):
        verify.verify(message + b"!", bytes.fromhex(case["signature_hex"]))


def test_ed25519_pem_round_trip_and_repr() -> None:
    signing = crypto.SigningKey.generate()
    assert crypto.SigningKey.from_pem(signing.to_pem()).to_raw() == signing.to_raw()
    encrypted = signing.to_pem(password=b"pem-pass")
    assert b"ENCRYPTED" in encrypted
    assert crypto.SigningKey.from_pem(encrypted, password=b"pem-pass").to_raw() == signing.to_raw()
    assert crypto.VerifyKey.from_pem(signing.verify_key.to_pem()) == signing.verify_key
    assert signing.to_raw().hex() not in repr(signing)
    signature = signing.sign(b"data")
    with pytest.raises(errors.VerificationFailed) as caught:
        crypto.SigningKey.generate().verify_key.verify(b"data", signature)
    assert caught.value.operation is errors.CryptoOperation.VERIFY
    with pytest.raises(errors.ValidationError):
        crypto.SigningKey.from_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
    with pytest.raises(errors.ValidationError):
        crypto.VerifyKey.from_raw(b"short")


# -- JWT ---------------------------------------------------------------------------------------

_A1_KEY = _b64url_decode(VECTORS["jwt"][0]["key_b64url"])
_SECRET = b"k" * 32


def test_rfc7515_a1_signature_verifies_then_expiry_fails() -> None:
    case = VECTORS["jwt"][0]
    header, payload, signature = case["token"].split(".")
    assert _b64url_decode(header).decode() == case["header_json"]
    assert _b64url_decode(payload).decode() == case["payload_json"]
    assert _b64url(crypto.hmac_sha256(_A1_KEY, f"{header}.{payload}".encode())) == signature
    # pyjwt checks the signature before the claims: TokenExpired means the signature held.
    with pytest.raises(errors.TokenExpired):
        crypto.JwtVerifier([crypto.JwtKey.hmac(_A1_KEY)]).verify(case["token"])


@pytest.mark.parametrize("case", VECTORS["jwt"][1:], ids=[c["name"] for c in VECTORS["jwt"][1:]])
def test_our_jwt_vectors(case: dict[str, Any]) -> None:
    if case["alg"] == "HS256":
        key = crypto.JwtKey.hmac(_b64url_decode(case["key_b64url"]), kid=case["kid"])
    else:
        signing = crypto.SigningKey.from_raw(bytes.fromhex(case["secret_hex"]))
        key = crypto.JwtKey.ed25519(private_pem=signing.to_pem(), kid=case["kid"])
    claims = {k: v for k, v in case["claims"].items() if k not in ("iat", "exp")}
    token = crypto.sign_jwt(claims, key, expires_in=600, now=case["claims"]["iat"])
    assert token == case["token"]
    header, payload, _ = token.split(".")
    assert _b64url_decode(header).decode() == case["header_json"]
    assert _b64url_decode(payload).decode() == case["payload_json"]
    with pytest.raises(errors.TokenExpired):  # 2023: signature fine, expired
        crypto.JwtVerifier([key], audience="llm-infra").verify(token)


def _jwt_keys(rsa_private: rsa.RSAPrivateKey) -> list[crypto.JwtKey]:
    ec_private = ec.generate_private_key(ec.SECP256R1())
    ed_private = crypto.SigningKey.generate()
    return [
        crypto.JwtKey.hmac(_SECRET, "HS256", kid="hs256"),
        crypto.JwtKey.hmac(b"h" * 64, "HS512", kid="hs512"),
        crypto.JwtKey.rsa(private_pem=_pem_private(rsa_private), alg="RS256", kid="rs256"),
        crypto.JwtKey.rsa(private_pem=_pem_private(rsa_private), alg="PS256", kid="ps256"),
        crypto.JwtKey.ec(private_pem=_pem_private(ec_private), kid="es256"),
        crypto.JwtKey.ed25519(private_pem=ed_private.to_pem(), kid="eddsa"),
    ]


def test_round_trip_every_key_type_with_kid_selection(rsa_private: rsa.RSAPrivateKey) -> None:
    keys = _jwt_keys(rsa_private)
    verifier = crypto.JwtVerifier(keys, issuer="iss", audience="aud")
    for key in keys:
        token = crypto.sign_jwt({"sub": "u", "iss": "iss", "aud": "aud"}, key, expires_in=60)
        assert jwt.get_unverified_header(token)["kid"] == key.kid
        claims = verifier.verify(token)
        assert claims["sub"] == "u"
        assert claims["exp"] - claims["iat"] == 60


def test_verify_only_key_from_public_pem(rsa_private: rsa.RSAPrivateKey) -> None:
    signer = crypto.JwtKey.rsa(private_pem=_pem_private(rsa_private))
    verifier_key = crypto.JwtKey.rsa(public_pem=_pem_public(rsa_private))
    assert not verifier_key.can_sign
    token = crypto.sign_jwt({"sub": "u"}, signer, expires_in=60)
    assert crypto.JwtVerifier([verifier_key]).verify(token)["sub"] == "u"
    with pytest.raises(errors.CryptoError):
        crypto.sign_jwt({"sub": "u"}, verifier_key)


def _forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = (
        f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
    )
    return f"{signing_input}.{_b64url(signature)}"


def test_alg_none_is_rejected() -> None:
    verifier = crypto.JwtVerifier([crypto.JwtKey.hmac(_SECRET)])
    token = _forge({"alg": "none", "typ": "JWT"}, {"sub": "admin", "exp": time.time() + 60})
    with pytest.raises(errors.InvalidToken) as caught:
        verifier.verify(token)
    _assert_no_secret(caught.value, token, token.split(".")[1])


def test_hs256_signed_with_the_rsa_public_pem_is_rejected(
    rsa_private: rsa.RSAPrivateKey,
) -> None:
    public_pem = _pem_public(rsa_private)
    verifier = crypto.JwtVerifier([crypto.JwtKey.rsa(public_pem=public_pem, kid="k")])
    header = {"alg": "HS256", "typ": "JWT", "kid": "k"}
    payload = {"sub": "admin", "exp": int(time.time()) + 60}
    unsigned = _forge(header, payload).rsplit(".", 1)[0]
    mac = hmac.new(public_pem, unsigned.encode(), hashlib.sha256).digest()
    token = f"{unsigned}.{_b64url(mac)}"
    with pytest.raises(errors.InvalidToken) as caught:
        verifier.verify(token)
    assert "algorithm" in caught.value.message
    _assert_no_secret(caught.value, token)


def test_expired_token_and_leeway() -> None:
    key = crypto.JwtKey.hmac(_SECRET)
    past = time.time() - 3600
    token = crypto.sign_jwt({"sub": "u"}, key, expires_in=60, now=past)
    with pytest.raises(errors.TokenExpired) as caught:
        crypto.JwtVerifier([key]).verify(token)
    assert caught.value.kind is errors.AuthErrorKind.TOKEN_EXPIRED
    _assert_no_secret(caught.value, token, _SECRET)
    recent = crypto.sign_jwt({"sub": "u"}, key, expires_in=1, now=time.time() - 10)
    assert crypto.JwtVerifier([key], leeway=30).verify(recent)["sub"] == "u"


@pytest.mark.parametrize(
    ("claims", "verifier_options", "fragment"),
    [
        ({"aud": "other"}, {"audience": "mine"}, "aud"),
        ({}, {"audience": "mine"}, "'aud'"),
        ({"aud": "mine"}, {}, "aud"),  # an audience nobody asked to accept
        ({"iss": "evil"}, {"issuer": "good"}, "iss"),
        ({"nbf": int(time.time()) + 3600}, {}, "nbf"),
    ],
    ids=["wrong-aud", "missing-aud", "unexpected-aud", "wrong-iss", "not-before"],
)
def test_claim_failures_are_invalid_token(
    claims: dict[str, Any], verifier_options: dict[str, Any], fragment: str
) -> None:
    key = crypto.JwtKey.hmac(_SECRET)
    token = crypto.sign_jwt({"sub": "u", **claims}, key, expires_in=60)
    with pytest.raises(errors.InvalidToken) as caught:
        crypto.JwtVerifier([key], **verifier_options).verify(token)
    assert fragment in caught.value.message
    _assert_no_secret(caught.value, token)


def test_missing_exp_is_required_by_default() -> None:
    key = crypto.JwtKey.hmac(_SECRET)
    token = crypto.sign_jwt({"sub": "u"}, key)
    with pytest.raises(errors.InvalidToken, match="'exp'"):
        crypto.JwtVerifier([key]).verify(token)
    assert crypto.JwtVerifier([key], require=()).verify(token)["sub"] == "u"


def test_bad_signature_unknown_kid_and_garbage() -> None:
    key = crypto.JwtKey.hmac(_SECRET, kid="a")
    other = crypto.JwtKey.hmac(b"o" * 32, kid="b")
    verifier = crypto.JwtVerifier([key, other])
    token = crypto.sign_jwt({"sub": "u"}, key, expires_in=60)
    header, payload, _signature = token.split(".")
    forged = f"{header}.{payload}.{_b64url(bytes(32))}"
    with pytest.raises(errors.InvalidToken, match="signature"):
        verifier.verify(forged)
    stranger = crypto.sign_jwt({"sub": "u"}, crypto.JwtKey.hmac(_SECRET, kid="c"), expires_in=60)
    with pytest.raises(errors.InvalidToken, match="kid"):
        verifier.verify(stranger)
    no_kid = crypto.sign_jwt({"sub": "u"}, crypto.JwtKey.hmac(_SECRET), expires_in=60)
    with pytest.raises(errors.InvalidToken, match="kid"):
        verifier.verify(no_kid)
    for garbage in ["", "a.b", "not-a-token", f"{header}.{payload}", "....."]:
        with pytest.raises(errors.InvalidToken) as caught:
            verifier.verify(garbage)
        _assert_no_secret(caught.value, *(part for part in garbage.split(".") if len(part) > 3))


def test_key_construction_rules(rsa_private: rsa.RSAPrivateKey) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        crypto.JwtKey.hmac(b"short-secret")
    _assert_no_secret(caught.value, b"short-secret", "short-secret")
    with pytest.raises(errors.ValidationError):
        crypto.JwtKey.hmac(b"x" * 32, "HS512")
    with pytest.raises(errors.ValidationError):
        crypto.JwtKey.rsa()
    with pytest.raises(errors.ValidationError):
        crypto.JwtKey.ec(public_pem=_pem_public(rsa_private))
    with pytest.raises(errors.ValidationError):
        crypto.JwtKey.ec(private_pem=_pem_private(ec.generate_private_key(ec.SECP384R1())))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(errors.ValidationError):
        crypto.JwtKey.rsa(private_pem=_pem_private(rsa_private), public_pem=_pem_public(other))
    with pytest.raises(errors.ValidationError):
        crypto.JwtVerifier([crypto.JwtKey.hmac(_SECRET), crypto.JwtKey.hmac(_SECRET)])
    key = crypto.JwtKey.hmac(_SECRET, kid="k")
    assert _SECRET.decode() not in repr(key)
    assert "HS256" in repr(key)
    with pytest.raises(errors.ValidationError):
        key.public_jwk()
    jwk = crypto.JwtKey.rsa(private_pem=_pem_private(rsa_private), kid="r").public_jwk()
    assert jwk["kty"] == "RSA"
    assert jwk["alg"] == "RS256"
    assert jwk["kid"] == "r"
    assert "d" not in jwk


def test_jwks_verifier_refuses_symmetric_algorithms() -> None:
    for algorithms in [("HS256",), ("none",), ()]:
        with pytest.raises(errors.ValidationError):
            crypto.JwksVerifier(
                "http://127.0.0.1:1/jwks", issuer=None, audience=None, algorithms_allowed=algorithms
            )
