"""Ed25519 signatures (RFC 8032) on cryptography: `SigningKey` signs, `VerifyKey` verifies."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from llm_infra import errors


def _pem_bytes(pem: str | bytes) -> bytes:
    return pem.encode() if isinstance(pem, str) else pem


def _invalid_key(what: str) -> errors.ValidationError:
    return errors.ValidationError(f"not a valid Ed25519 {what}", field="key", expected=what)


class VerifyKey:
    """An Ed25519 public key."""

    __slots__ = ("_key",)

    def __init__(self, key: ed25519.Ed25519PublicKey) -> None:
        self._key = key

    @classmethod
    def from_raw(cls, raw: bytes) -> VerifyKey:
        try:
            return cls(ed25519.Ed25519PublicKey.from_public_bytes(raw))
        except ValueError:
            raise _invalid_key("raw public key (32 bytes)") from None

    @classmethod
    def from_pem(cls, pem: str | bytes) -> VerifyKey:
        try:
            key = serialization.load_pem_public_key(_pem_bytes(pem))
        except ValueError:
            raise _invalid_key("PEM public key") from None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise _invalid_key("PEM public key")
        return cls(key)

    def to_raw(self) -> bytes:
        return self._key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def to_pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def public_key(self) -> ed25519.Ed25519PublicKey:
        """The cryptography key object, for libraries that take one (pyjwt)."""
        return self._key

    def verify(self, data: bytes, signature: bytes) -> None:
        """Return if `signature` is valid for `data`; raise `errors.VerificationFailed` if not."""
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            raise errors.VerificationFailed(
                "Ed25519 signature does not match the data",
                operation=errors.CryptoOperation.VERIFY,
                cause="cryptography.exceptions.InvalidSignature",
            ) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and self.to_raw() == other.to_raw()

    def __hash__(self) -> int:
        return hash(self.to_raw())

    def __repr__(self) -> str:
        return f"VerifyKey({self.to_raw().hex()})"  # public: safe to show


class SigningKey:
    """An Ed25519 private key. Its repr shows only the public half."""

    __slots__ = ("_key",)

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_raw(cls, raw: bytes) -> SigningKey:
        """From the 32-byte RFC 8032 secret (seed)."""
        try:
            return cls(ed25519.Ed25519PrivateKey.from_private_bytes(raw))
        except ValueError:
            raise _invalid_key("raw private key (32 bytes)") from None

    @classmethod
    def from_pem(cls, pem: str | bytes, password: bytes | None = None) -> SigningKey:
        """From a PKCS#8 PEM, encrypted when `password` is given."""
        try:
            key = serialization.load_pem_private_key(_pem_bytes(pem), password=password)
        except (ValueError, TypeError):
            raise _invalid_key("PEM private key") from None
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise _invalid_key("PEM private key")
        return cls(key)

    def to_raw(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def to_pem(self, password: bytes | None = None) -> bytes:
        """PKCS#8 PEM, encrypted with the best available scheme when `password` is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    @property
    def private_key(self) -> ed25519.Ed25519PrivateKey:
        """The cryptography key object, for libraries that take one (pyjwt)."""
        return self._key

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(self._key.public_key())

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `data` (deterministic)."""
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"SigningKey(public={self.verify_key.to_raw().hex()})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("SigningKey cannot be pickled")
