"""llm_infra.crypto against real servers: envelopes on OpenBao transit, JWKS over local HTTP."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import hvac
import pytest

from llm_infra import crypto, errors
from tests.servers.openbao import OpenBao


@pytest.fixture(scope="module")
def transit_client(bao: OpenBao) -> hvac.Client:
    client = hvac.Client(url=bao.url, token=bao.token)
    if "transit/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("transit")
    return client


@pytest.fixture
def kek(transit_client: hvac.Client) -> crypto.TransitKek:
    kek = crypto.TransitKek(transit_client, f"kek-{uuid.uuid4().hex[:8]}")
    kek.ensure_key()
    kek.ensure_key()  # idempotent
    return kek


def test_envelope_round_trip(kek: crypto.TransitKek) -> None:
    envelope = crypto.envelope_encrypt(b"patient record", kek, aad=b"tenant=a")
    assert envelope.key_version == 1
    assert envelope.wrapped_key.startswith("vault:v1:")
    assert b"patient record" not in envelope.ciphertext
    assert "patient" not in repr(envelope)
    parsed = crypto.Envelope.from_json(envelope.to_json())
    assert parsed == envelope
    assert crypto.envelope_decrypt(parsed, kek, aad=b"tenant=a") == b"patient record"
    with pytest.raises(errors.DecryptionFailed):
        crypto.envelope_decrypt(parsed, kek, aad=b"tenant=b")


def test_rotation_keeps_old_envelopes_readable(kek: crypto.TransitKek) -> None:
    old = crypto.envelope_encrypt(b"before", kek)
    kek.rotate()
    new = crypto.envelope_encrypt(b"after", kek)
    assert (old.key_version, new.key_version) == (1, 2)
    assert new.wrapped_key.startswith("vault:v2:")
    assert crypto.envelope_decrypt(old, kek) == b"before"
    assert crypto.envelope_decrypt(new, kek) == b"after"
    rewrapped = crypto.envelope_rewrap(old, kek)
    assert rewrapped.key_version == 2
    assert rewrapped.ciphertext == old.ciphertext
    assert crypto.envelope_decrypt(rewrapped, kek) == b"before"


def test_tampered_or_foreign_wrapped_key_fails(
    kek: crypto.TransitKek, transit_client: hvac.Client
) -> None:
    envelope = crypto.envelope_encrypt(b"secret", kek)
    prefix, body = envelope.wrapped_key.rsplit(":", 1)
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    tampered = crypto.Envelope.from_json(
        envelope.to_json().replace(envelope.wrapped_key, f"{prefix}:{flipped}")
    )
    with pytest.raises(errors.DecryptionFailed) as caught:
        crypto.envelope_decrypt(tampered, kek)
    assert caught.value.cause == "hvac.exceptions.InvalidRequest"
    other = crypto.TransitKek(transit_client, f"other-{uuid.uuid4().hex[:8]}")
    other.ensure_key()
    with pytest.raises(errors.DecryptionFailed):
        crypto.envelope_decrypt(envelope, other)
    with pytest.raises(errors.DecryptionFailed):
        crypto.envelope_decrypt(crypto.Envelope(b"x" * 40, "not-transit", 1, kek.key_name), kek)


def test_missing_key_and_bad_token_map_through_from_hvac(
    bao: OpenBao, transit_client: hvac.Client
) -> None:
    missing = crypto.TransitKek(transit_client, f"missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(errors.InfraError) as caught:
        missing.unwrap("vault:v1:AAAA")
    assert isinstance(caught.value, errors.DecryptionFailed | errors.NotFound)
    intruder = crypto.TransitKek(hvac.Client(url=bao.url, token="not-a-token"), "k")
    with pytest.raises((errors.InsufficientPermissions, errors.InvalidCredentials)) as denied:
        intruder.wrap(bytes(32))
    assert "not-a-token" not in str(denied.value)


def test_envelope_json_rejects_garbage() -> None:
    for text in ["", "{}", '{"v": 2}', "[1]"]:
        with pytest.raises(errors.SerializationError):
            crypto.Envelope.from_json(text)


# -- JWKS --------------------------------------------------------------------------------------


class _JwksServer:
    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.hits = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                body = json.dumps(owner.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def jwks_server() -> Iterator[_JwksServer]:
    server = _JwksServer()
    yield server
    server.close()


def _keys() -> tuple[crypto.JwtKey, crypto.JwtKey]:
    ed = crypto.SigningKey.generate()
    other = crypto.SigningKey.generate()
    return (
        crypto.JwtKey.ed25519(private_pem=ed.to_pem(), kid="ed-1"),
        crypto.JwtKey.ed25519(private_pem=other.to_pem(), kid="ed-2"),
    )


def test_jwks_verifies_and_caches(jwks_server: _JwksServer) -> None:
    key, stranger = _keys()
    jwks_server.document = {"keys": [key.public_jwk()]}
    verifier = crypto.JwksVerifier(jwks_server.url, issuer="https://idp", audience="api")
    token = crypto.sign_jwt({"sub": "u", "iss": "https://idp", "aud": "api"}, key, expires_in=60)
    assert verifier.verify(token)["sub"] == "u"
    assert verifier.verify(token)["sub"] == "u"
    assert jwks_server.hits == 1  # the key set is cached

    expired = crypto.sign_jwt(
        {"sub": "u", "iss": "https://idp", "aud": "api"}, key, expires_in=1, now=1_000_000
    )
    with pytest.raises(errors.TokenExpired):
        verifier.verify(expired)
    wrong_aud = crypto.sign_jwt({"iss": "https://idp", "aud": "x"}, key, expires_in=60)
    with pytest.raises(errors.InvalidToken, match="aud"):
        verifier.verify(wrong_aud)
    # A kid the set does not hold; a key the set holds under another kid.
    for forged in (
        crypto.sign_jwt({"iss": "https://idp", "aud": "api"}, stranger, expires_in=60),
        crypto.sign_jwt(
            {"iss": "https://idp", "aud": "api"},
            crypto.JwtKey.ed25519(private_pem=crypto.SigningKey.generate().to_pem(), kid="ed-1"),
            expires_in=60,
        ),
    ):
        with pytest.raises(errors.InvalidToken) as caught:
            verifier.verify(forged)
        assert forged not in str(caught.value)


def test_jwks_rejects_alg_swaps(jwks_server: _JwksServer) -> None:
    key, _ = _keys()
    jwks_server.document = {"keys": [key.public_jwk()]}
    verifier = crypto.JwksVerifier(
        jwks_server.url, issuer=None, audience=None, algorithms_allowed=("RS256",)
    )
    token = crypto.sign_jwt({"sub": "u"}, key, expires_in=60)
    with pytest.raises(errors.InvalidToken, match="not allowed"):
        verifier.verify(token)


def test_jwks_unreachable_is_a_retryable_dependency_error(jwks_server: _JwksServer) -> None:
    key, _ = _keys()
    url = jwks_server.url
    jwks_server.close()
    verifier = crypto.JwksVerifier(url, issuer=None, audience=None, timeout=2)
    with pytest.raises(errors.ExternalServiceError) as caught:
        verifier.verify(crypto.sign_jwt({"sub": "u"}, key, expires_in=60))
    assert caught.value.is_retryable()
