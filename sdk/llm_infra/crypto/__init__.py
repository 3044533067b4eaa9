"""Cryptography for llm-infra: digests, passwords, AES-GCM, Ed25519, envelopes, JWTs.

Policy around well-kept libraries, never primitives of our own:

- `sha256`/`blake2b`/`blake3` (+ ``_hex``), `digest`, `verify_digest` and
  `hmac_sha256`/`verify_hmac_sha256` (hashlib, hmac, blake3; constant-time checks);
- `hash_password` (argon2id), `verify_password` (argon2 and imported bcrypt),
  `needs_rehash` (argon2-cffi, bcrypt);
- `AeadKey`: AES-256-GCM, ``nonce || ciphertext || tag``, keys random, raw or
  from a passphrase via argon2id (cryptography, argon2-cffi);
- `SigningKey`/`VerifyKey`: Ed25519 (cryptography);
- `envelope_encrypt`/`envelope_decrypt`/`envelope_rewrap` with a `TransitKek`
  (OpenBao/Vault transit via hvac) and the `Envelope` JSON form;
- `JwtKey`, `sign_jwt`, `JwtVerifier` and `JwksVerifier` (pyjwt), algorithm
  pinned per key.

Failures are `errors.DecryptionFailed`, `errors.VerificationFailed`,
`errors.CryptoError`, `errors.TokenExpired`/`errors.InvalidToken` (JWT) and
`errors.ValidationError` (bad key material or parameters); no message or repr
carries key bytes, passphrases or tokens. Known-answer vectors for the WASM
client live in ``sdk/testvectors/crypto.json``. Modules: `_hash`, `_password`,
`_aead`, `_sign`, `_envelope`, `_jwt`.
"""

from llm_infra.crypto._aead import KDF_PARAMETERS, KEY_SIZE, NONCE_SIZE, TAG_SIZE, AeadKey
from llm_infra.crypto._envelope import (
    Envelope,
    TransitKek,
    envelope_decrypt,
    envelope_encrypt,
    envelope_rewrap,
    parse_key_version,
)
from llm_infra.crypto._hash import (
    DigestAlgorithm,
    blake2b,
    blake2b_hex,
    blake3,
    blake3_hex,
    digest,
    hmac_sha256,
    sha256,
    sha256_hex,
    verify_digest,
    verify_hmac_sha256,
)
from llm_infra.crypto._jwt import JwksVerifier, JwtKey, JwtVerifier, sign_jwt
from llm_infra.crypto._password import hash_password, needs_rehash, verify_password
from llm_infra.crypto._sign import SigningKey, VerifyKey

__all__ = [
    "KDF_PARAMETERS",
    "KEY_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "AeadKey",
    "DigestAlgorithm",
    "Envelope",
    "JwksVerifier",
    "JwtKey",
    "JwtVerifier",
    "SigningKey",
    "TransitKek",
    "VerifyKey",
    "blake2b",
    "blake2b_hex",
    "blake3",
    "blake3_hex",
    "digest",
    "envelope_decrypt",
    "envelope_encrypt",
    "envelope_rewrap",
    "hash_password",
    "hmac_sha256",
    "needs_rehash",
    "parse_key_version",
    "sha256",
    "sha256_hex",
    "sign_jwt",
    "verify_digest",
    "verify_hmac_sha256",
    "verify_password",
]
