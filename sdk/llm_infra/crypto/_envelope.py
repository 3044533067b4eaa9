"""Envelope encryption: a local AES-256-GCM data key per message, wrapped by OpenBao transit.

The data never leaves the process; only the 32-byte data key goes to transit
(`TransitKek.wrap`), which answers ``vault:vN:...``. Rotating the transit key
leaves old envelopes readable (transit keeps old versions for decryption) and
`envelope_rewrap` moves one to the newest version without seeing the data.
hvac errors map through `errors.from_hvac`; a wrapped key transit refuses to
decrypt (tampered, or another key's) is `errors.DecryptionFailed`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from typing import Any

from llm_infra import errors
from llm_infra.crypto._aead import KEY_SIZE, AeadKey

ENVELOPE_FORMAT_VERSION = 1
ALGORITHM = "A256GCM"
_WRAPPED = re.compile(r"vault:v(?P<version>[1-9][0-9]*):[A-Za-z0-9+/=]+")


def parse_key_version(wrapped_key: str) -> int:
    """The transit key version in a ``vault:vN:...`` ciphertext."""
    match = _WRAPPED.fullmatch(wrapped_key)
    if match is None:
        raise errors.DecryptionFailed(
            "wrapped key is not a transit ciphertext (vault:vN:...)",
            operation=errors.CryptoOperation.DECRYPT,
        )
    return int(match["version"])


class TransitKek:
    """A transit key of OpenBao/Vault used as the key-encryption key.

    `client` is a ready `hvac.Client` (its token may use transit at `mount`);
    this class only calls ``client.secrets.transit``.
    """

    def __init__(self, client: Any, key_name: str, mount: str = "transit") -> None:
        self._transit = client.secrets.transit
        self.key_name = key_name
        self.mount = mount

    def __repr__(self) -> str:
        return f"TransitKek(key_name={self.key_name!r}, mount={self.mount!r})"

    def ensure_key(self) -> None:
        """Create the transit key (aes256-gcm96) unless it exists; creating is idempotent."""
        with errors.translate(errors.from_hvac):
            self._transit.create_key(
                name=self.key_name, key_type="aes256-gcm96", mount_point=self.mount
            )

    def rotate(self) -> None:
        """Add a new key version; new wraps use it, old versions still unwrap."""
        with errors.translate(errors.from_hvac):
            self._transit.rotate_key(name=self.key_name, mount_point=self.mount)

    def wrap(self, data_key: bytes) -> tuple[str, int]:
        """``(ciphertext, key_version)`` of `data_key` under the newest key version."""
        with errors.translate(errors.from_hvac):
            response = self._transit.encrypt_data(
                name=self.key_name,
                plaintext=base64.b64encode(data_key).decode("ascii"),
                mount_point=self.mount,
            )
        wrapped = str(response["data"]["ciphertext"])
        return wrapped, parse_key_version(wrapped)

    def unwrap(self, wrapped_key: str) -> bytes:
        """The data key inside `wrapped_key`; `errors.DecryptionFailed` if transit refuses it."""
        parse_key_version(wrapped_key)
        response = self._call_decrypting("decrypt_data", wrapped_key)
        try:
            data_key = base64.b64decode(response["data"]["plaintext"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            data_key = b""
        if len(data_key) != KEY_SIZE:
            raise errors.DecryptionFailed(
                "transit did not answer a 32-byte data key",
                operation=errors.CryptoOperation.DECRYPT,
            )
        return data_key

    def rewrap(self, wrapped_key: str) -> tuple[str, int]:
        """`wrapped_key` re-encrypted under the newest key version, inside transit."""
        parse_key_version(wrapped_key)
        response = self._call_decrypting("rewrap_data", wrapped_key)
        wrapped = str(response["data"]["ciphertext"])
        return wrapped, parse_key_version(wrapped)

    def _call_decrypting(self, method: str, wrapped_key: str) -> Any:
        import hvac.exceptions

        with errors.translate(errors.from_hvac):
            try:
                return getattr(self._transit, method)(
                    name=self.key_name, ciphertext=wrapped_key, mount_point=self.mount
                )
            except hvac.exceptions.InvalidRequest:
                # 400 on decrypt: the ciphertext does not authenticate under this key
                # (tampered, or wrapped by another key). Bad input, not an outage.
                raise errors.DecryptionFailed(
                    "transit could not unwrap the data key (tampered, or another key's)",
                    operation=errors.CryptoOperation.DECRYPT,
                    cause="hvac.exceptions.InvalidRequest",
                ) from None


@dataclasses.dataclass(frozen=True, slots=True)
class Envelope:
    """An encrypted message: the AEAD blob (nonce || ciphertext || tag) and its wrapped data key."""

    ciphertext: bytes
    wrapped_key: str
    key_version: int
    key_name: str
    mount: str = "transit"
    algorithm: str = ALGORITHM

    def __repr__(self) -> str:
        return (
            f"Envelope(key_name={self.key_name!r}, key_version={self.key_version}, "
            f"ciphertext=<{len(self.ciphertext)} bytes>)"
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": ENVELOPE_FORMAT_VERSION,
                "alg": self.algorithm,
                "kek": {"mount": self.mount, "name": self.key_name, "version": self.key_version},
                "wrapped_key": self.wrapped_key,
                "ciphertext": base64.b64encode(self.ciphertext).decode("ascii"),
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Envelope:
        """Parse `to_json` output; a malformed document raises `errors.SerializationError`."""
        try:
            document = json.loads(text)
            if document["v"] != ENVELOPE_FORMAT_VERSION or document["alg"] != ALGORITHM:
                raise ValueError("unsupported envelope version or algorithm")
            kek = document["kek"]
            envelope = cls(
                ciphertext=base64.b64decode(document["ciphertext"], validate=True),
                wrapped_key=str(document["wrapped_key"]),
                key_version=int(kek["version"]),
                key_name=str(kek["name"]),
                mount=str(kek["mount"]),
                algorithm=ALGORITHM,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise errors.SerializationError(
                f"not an llm-infra envelope: {type(exc).__name__}",
                data_format=errors.SerializationFormat.JSON,
            ) from None
        return envelope


def envelope_encrypt(plaintext: bytes, kek: TransitKek, aad: bytes = b"") -> Envelope:
    """Encrypt `plaintext` under a fresh data key and wrap that key with `kek`."""
    data_key = AeadKey.random()
    ciphertext = data_key.encrypt(plaintext, aad)
    wrapped_key, key_version = kek.wrap(data_key.to_bytes())
    return Envelope(
        ciphertext=ciphertext,
        wrapped_key=wrapped_key,
        key_version=key_version,
        key_name=kek.key_name,
        mount=kek.mount,
    )


def envelope_decrypt(envelope: Envelope, kek: TransitKek, aad: bytes = b"") -> bytes:
    """The plaintext of `envelope`; `errors.DecryptionFailed` on any tampering or wrong AAD."""
    data_key = AeadKey.from_bytes(kek.unwrap(envelope.wrapped_key))
    return data_key.decrypt(envelope.ciphertext, aad)


def envelope_rewrap(envelope: Envelope, kek: TransitKek) -> Envelope:
    """The same envelope with its data key re-wrapped under the newest KEK version."""
    wrapped_key, key_version = kek.rewrap(envelope.wrapped_key)
    return dataclasses.replace(envelope, wrapped_key=wrapped_key, key_version=key_version)
