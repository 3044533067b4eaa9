"""Authn/authz of the real control plane app: API keys, JWTs from a JWKS server, access rules.

The app runs with its lifespan against the real NATS; the identity provider's JWKS
is served by a local HTTP server thread (`served`), and tokens are signed with
`cryptography` keys, so the JWKS fetch, the pinned algorithm and every claim check
run for real.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, FastAPI

from llm_infra import crypto, errors
from llm_infra.api.v1alpha1.vectorcollection import VectorCollectionSpec
from llm_infra.client import ControlPlaneClient
from llm_infra_controlplane.access import admin_key, policy
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings
from llm_infra_controlplane.web import auth as web_auth
from llm_infra_controlplane.web.deps import PrincipalDep
from tests.servers.documents import DocumentServer

ISSUER = "https://idp.test"
AUDIENCE = "llm-infra"
OPERATOR = "llm-infra-operator"
CONFIGS = "/v1/namespaces/team-a/configs"
COLLECTION = "/v1/namespaces/team-a/collections/docs"
SPEC = VectorCollectionSpec.model_validate({"vectors": {"size": 4}})


def _rsa_pem() -> bytes:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Idp:
    """The identity provider: its signing key, published in the JWKS the control plane reads."""

    key: crypto.JwtKey

    def token(self, claims: dict[str, Any], *, expires_in: float = 300) -> str:
        base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice"}
        return crypto.sign_jwt(base | claims, self.key, expires_in=expires_in)


@dataclass
class ControlPlane:
    app: FastAPI
    http: httpx.AsyncClient
    admin_key: str
    operator_key: str
    settings: Settings


@pytest.fixture(scope="module")
def idp_key() -> crypto.JwtKey:
    return crypto.JwtKey.rsa(_rsa_pem(), alg="RS256", kid="k1")


@pytest.fixture
def idp(served: DocumentServer, idp_key: crypto.JwtKey) -> Idp:
    served.documents["/jwks.json"] = json.dumps({"keys": [idp_key.public_jwk()]}).encode()
    return Idp(idp_key)


@pytest.fixture
async def cp(
    tmp_path: Path,
    nats_url: str,
    served: DocumentServer,
    idp: Idp,
    capsys: pytest.CaptureFixture[str],
) -> AsyncIterator[ControlPlane]:
    operator_key, operator_record = await admin_key.issue_api_key(OPERATOR)
    settings = Settings(
        data_dir=tmp_path,
        nats_url=nats_url,
        auth_mode="api-key+jwt",
        jwt_jwks_url=f"{served.url}/jwks.json",
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        api_keys=(operator_record,),
        access_rules=(
            policy.AccessRule(groups=("readers",), namespaces=("team-*",), actions=("read",)),
            policy.AccessRule(
                subjects=(f"apikey:{OPERATOR}",), kinds=("collections",), actions=("admin",)
            ),
        ),
    )
    app = create_app(settings)
    whoami = APIRouter(prefix="/v1/namespaces/{namespace}/whoami")

    @whoami.get("")
    async def who(principal: PrincipalDep) -> dict[str, str]:
        return {"subject": principal.subject, "method": principal.method}

    app.include_router(whoami, dependencies=[web_auth.require("configs")])
    async with app.router.lifespan_context(app):
        printed = _printed_admin_key(capsys.readouterr().out)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
            yield ControlPlane(app, http, printed, operator_key.get_secret_value(), settings)


def _printed_admin_key(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("admin key: llmi_")]
    assert len(lines) == 1, out
    return lines[0].removeprefix("admin key: ")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_problem(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    detail: str = response.json()["detail"]
    return detail


# -- what stays open, what does not ---------------------------------------------------------------


async def test_health_metrics_and_docs_stay_open(cp: ControlPlane) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
        response = await cp.http.get(path)
        assert response.status_code == 200, (path, response.text)


async def test_every_v1_route_answers_401_without_credentials(cp: ControlPlane) -> None:
    document = (await cp.http.get("/openapi.json")).json()
    routes = [
        (method, path)
        for path, operations in document["paths"].items()
        if path.startswith("/v1/")
        for method in operations
    ]
    assert len(routes) >= 15  # collections, vectors, configs, audit
    for method, path in routes:
        url = path.replace("{namespace}", "team-a").replace("{name}", "docs").replace("{id}", "1")
        response = await cp.http.request(method.upper(), url, json={})
        _assert_problem(response, 401, "auth.missing_credentials")
        assert document["paths"][path][method]["security"] == [{"HTTPBearer": []}]


# -- API keys --------------------------------------------------------------------------------------


async def test_the_printed_admin_key_administers_collections(cp: ControlPlane) -> None:
    async with ControlPlaneClient(
        "http://cp", token=cp.admin_key, transport=httpx.ASGITransport(app=cp.app)
    ) as client:
        info = await client.ensure_collection("team-a", "docs", SPEC, "team-a-docs")
        assert info.created
        assert await client.drop_collection("team-a", "docs", "team-a-docs") is True


async def test_the_operator_key_from_settings_has_admin_on_collections_only(
    cp: ControlPlane,
) -> None:
    transport = httpx.ASGITransport(app=cp.app)
    async with ControlPlaneClient("http://cp", token=cp.operator_key, transport=transport) as op:
        assert (await op.ensure_collection("team-b", "docs", SPEC, "team-b-docs")).created
        assert await op.collection_info("team-b", "docs", "team-b-docs") is not None
    detail = _assert_problem(
        await cp.http.get(CONFIGS, headers=_bearer(cp.operator_key)),
        403,
        "auth.insufficient_permissions",
    )
    assert f"'apikey:{OPERATOR}' may not read configs in namespace 'team-a'" in detail


async def test_a_wrong_api_key_is_refused_and_the_client_raises_the_same_error(
    cp: ControlPlane,
) -> None:
    wrong = cp.admin_key[:-6] + ("A" * 6 if not cp.admin_key.endswith("A" * 6) else "B" * 6)
    transport = httpx.ASGITransport(app=cp.app)
    async with ControlPlaneClient("http://cp", token=wrong, transport=transport) as client:
        with pytest.raises(errors.InvalidCredentials) as refused:
            await client.collection_info("team-a", "docs")
    assert cp.admin_key.split("_", 2)[2][:-6] not in str(refused.value)


async def test_a_restart_keeps_the_admin_key_and_never_prints_it_again(
    cp: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = admin_key.admin_key_path(cp.settings.data_dir).read_text()
    assert cp.admin_key.split("_", 2)[2] not in stored

    again = create_app(cp.settings.model_copy(update={"data_dir": cp.settings.data_dir}))
    async with again.router.lifespan_context(again):
        out = capsys.readouterr().out
        assert cp.admin_key not in out
        assert "admin key: (stored" in out
        transport = httpx.ASGITransport(app=again)
        async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
            assert (await http.get(CONFIGS, headers=_bearer(cp.admin_key))).status_code == 200


# -- JWTs ------------------------------------------------------------------------------------------


async def test_a_jwt_of_a_reader_reads_but_may_not_write(cp: ControlPlane, idp: Idp) -> None:
    reader = _bearer(idp.token({"groups": ["readers"]}))
    response = await cp.http.get("/v1/namespaces/team-a/whoami", headers=reader)
    assert response.json() == {"subject": f"jwt:{ISSUER}#alice", "method": "jwt"}
    assert (await cp.http.get(CONFIGS, headers=reader)).status_code == 200

    detail = _assert_problem(
        await cp.http.put(COLLECTION, headers=reader, json={}),
        403,
        "auth.insufficient_permissions",
    )
    assert f"'jwt:{ISSUER}#alice' may not admin collections in namespace 'team-a'" in detail
    events = "/v1/namespaces/team-a/auditsinks/main/events"
    detail = _assert_problem(
        await cp.http.post(events, headers=reader, json={"events": []}),
        403,
        "auth.insufficient_permissions",
    )
    assert "may not write auditsinks" in detail
    _assert_problem(
        await cp.http.get("/v1/namespaces/prod/configs", headers=reader),
        403,
        "auth.insufficient_permissions",
    )


async def test_a_jwt_without_a_matching_group_is_forbidden(cp: ControlPlane, idp: Idp) -> None:
    detail = _assert_problem(
        await cp.http.get(CONFIGS, headers=_bearer(idp.token({"groups": ["writers"]}))),
        403,
        "auth.insufficient_permissions",
    )
    assert "read configs in namespace 'team-a'" in detail


async def test_an_expired_jwt_is_refused(cp: ControlPlane, idp: Idp) -> None:
    old = idp.token({"groups": ["readers"], "iat": int(time.time()) - 3600}, expires_in=60)
    response = await cp.http.get(CONFIGS, headers=_bearer(old))
    _assert_problem(response, 401, "auth.token_expired")


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "https://evil.test"}, "issuer"),
        ({"aud": "someone-else"}, "audience"),
    ],
)
async def test_a_jwt_for_another_issuer_or_audience_is_refused(
    cp: ControlPlane, idp: Idp, claims: dict[str, Any], reason: str
) -> None:
    response = await cp.http.get(CONFIGS, headers=_bearer(idp.token(claims)))
    assert reason in _assert_problem(response, 401, "auth.invalid_token")


async def test_a_jwt_signed_by_another_key_with_the_same_kid_is_refused(cp: ControlPlane) -> None:
    forger = Idp(crypto.JwtKey.rsa(_rsa_pem(), alg="RS256", kid="k1"))
    response = await cp.http.get(CONFIGS, headers=_bearer(forger.token({"groups": ["readers"]})))
    assert "signature" in _assert_problem(response, 401, "auth.invalid_token")


async def test_a_jwt_with_an_unknown_kid_is_refused(cp: ControlPlane) -> None:
    stranger = Idp(crypto.JwtKey.rsa(_rsa_pem(), alg="RS256", kid="k9"))
    response = await cp.http.get(CONFIGS, headers=_bearer(stranger.token({})))
    assert "kid" in _assert_problem(response, 401, "auth.invalid_token")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(header: dict[str, Any], secret: bytes | None) -> str:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "groups": ["readers"]}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if secret is None:
        return f"{signing_input}."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


async def test_a_jwt_choosing_its_own_algorithm_is_refused(
    cp: ControlPlane, idp_key: crypto.JwtKey
) -> None:
    public_pem = idp_key.verifying_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # The classic confusion: HS256 "signed" with the RSA public key, and alg none.
    for token in (
        _forged({"alg": "HS256", "typ": "JWT", "kid": "k1"}, public_pem),
        _forged({"alg": "none", "typ": "JWT", "kid": "k1"}, None),
    ):
        response = await cp.http.get(CONFIGS, headers=_bearer(token))
        _assert_problem(response, 401, "auth.invalid_token")


async def test_an_unreachable_jwks_answers_a_retryable_502(
    cp: ControlPlane, served: DocumentServer, idp: Idp
) -> None:
    del served.documents["/jwks.json"]  # a fresh app: no key set cached yet
    response = await cp.http.get(CONFIGS, headers=_bearer(idp.token({"groups": ["readers"]})))
    # Not the caller's fault, so no 401: the dependency failed, try again shortly.
    assert "JWKS" in _assert_problem(response, 502, "external.error")
    assert response.headers["retry-after"] == "1"
