"""The tenant matrix: every /v1 route, every kind of caller, the exact status each gets.

Roles, on namespace team-a: none (no credentials), reader, writer and admin API
keys, an admin of team-b only (the wrong namespace), a JWT whose group reads
team-a (JWT-only), and a JWT whose ``sub`` is the API key owner admin-a but who
has no rule (finding 11: subjects are namespaced by how the caller signed in).
A caller without the right gets exactly 401 or 403; a caller with it gets
exactly what the reference admin gets for the same request (a 404, a 422, a
200: whatever the route answers once access is granted). The app runs
in-process with its lifespan, on the real NATS and a local JWKS.
"""

from __future__ import annotations

import asyncio
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
from fastapi import FastAPI

from llm_infra import auth, crypto
from llm_infra_controlplane.access import admin_key, policy
from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings
from tests.servers.documents import DocumentServer

ISSUER = "https://idp.test"
NAMESPACE = "team-a"
Action = str


@dataclass(frozen=True)
class Role:
    name: str
    actions: frozenset[str]
    """What the role may do in team-a: the rights its rules grant there."""


ROLES = (
    Role("none", frozenset()),
    Role("reader", frozenset({"read"})),
    Role("writer", frozenset({"read", "write"})),
    Role("admin", frozenset({"read", "write", "admin"})),
    Role("wrong-namespace", frozenset()),
    Role("jwt-reader", frozenset({"read"})),
    Role("jwt-impostor", frozenset()),
)


@dataclass
class Harness:
    app: FastAPI
    http: httpx.AsyncClient
    headers: dict[str, dict[str, str]]


def _rsa_key() -> crypto.JwtKey:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return crypto.JwtKey.rsa(pem, alg="RS256", kid="k1")


def _token(key: crypto.JwtKey, claims: dict[str, Any], expires_in: float = 600) -> str:
    base = {"iss": ISSUER, "aud": "llm-infra"}
    return crypto.sign_jwt(base | claims, key, expires_in=expires_in)


@pytest.fixture(scope="module")
def idp_key() -> crypto.JwtKey:
    return _rsa_key()


@pytest.fixture
async def harness(
    tmp_path: Path, nats_url: str, served: DocumentServer, idp_key: crypto.JwtKey
) -> AsyncIterator[Harness]:
    served.documents["/jwks.json"] = json.dumps({"keys": [idp_key.public_jwk()]}).encode()
    keys: dict[str, str] = {}
    records: list[auth.ApiKeyRecord] = []
    for owner in ("reader-a", "writer-a", "admin-a", "admin-b"):
        key, record = await admin_key.issue_api_key(owner)
        keys[owner] = key.get_secret_value()
        records.append(record)
    rules = [
        policy.AccessRule(subjects=("apikey:reader-a",), namespaces=("team-a",), actions=("read",)),
        policy.AccessRule(
            subjects=("apikey:writer-a",), namespaces=("team-a",), actions=("write",)
        ),
        policy.AccessRule(subjects=("apikey:admin-a",), namespaces=("team-a",), actions=("admin",)),
        policy.AccessRule(subjects=("apikey:admin-b",), namespaces=("team-b",), actions=("admin",)),
        policy.AccessRule(groups=("team-a-readers",), namespaces=("team-a",), actions=("read",)),
    ]
    settings = Settings(
        data_dir=tmp_path,
        nats_url=nats_url,
        auth_mode="api-key+jwt",
        standalone_admin_key=False,
        jwt_jwks_url=f"{served.url}/jwks.json",
        jwt_issuer=ISSUER,
        api_keys=tuple(records),
        access_rules=tuple(rules),
    )
    app = create_app(settings)
    bearer = {
        "reader": keys["reader-a"],
        "writer": keys["writer-a"],
        "admin": keys["admin-a"],
        "wrong-namespace": keys["admin-b"],
        "jwt-reader": _token(idp_key, {"sub": "carol", "groups": ["team-a-readers"]}),
        "jwt-impostor": _token(idp_key, {"sub": "admin-a"}),
    }
    headers = {role: {"Authorization": f"Bearer {token}"} for role, token in bearer.items()}
    headers["none"] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
            yield Harness(app, http, headers)


def _v1_routes() -> list[tuple[str, str, str, str]]:
    """(method, path template, kind, action needed) of every /v1 operation the app documents."""
    document = create_app(Settings(standalone_admin_key=False)).openapi()
    found = []
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/namespaces/"):
            continue
        kind = path.split("/")[4]
        for method, operation in operations.items():
            method = method.upper()
            if method in ("GET", "HEAD") or operation.get(policy.ACTION_EXTRA) == "read":
                action = "read"
            elif kind == "collections" and path.endswith("/collections/{name}"):
                action = "admin"  # the collection admin API
            else:
                action = "write"
            found.append((method, path, kind, action))
    return found


ROUTES = _v1_routes()


def _url(template: str, namespace: str) -> str:
    return template.format(namespace=namespace, name="docs", id="1")


async def _send(harness: Harness, method: str, url: str, role: str) -> httpx.Response:
    body: dict[str, Any] | None = None if method in ("GET", "HEAD", "DELETE") else {}
    return await harness.http.request(method, url, json=body, headers=harness.headers[role])


def test_the_matrix_covers_every_kind_and_action() -> None:
    assert {kind for _, _, kind, _ in ROUTES} >= {"collections", "configs", "auditsinks"}
    assert {action for *_, action in ROUTES} == {"read", "write", "admin"}


@pytest.mark.parametrize(("method", "template", "kind", "action"), ROUTES)
async def test_every_role_gets_the_exact_status(
    harness: Harness, method: str, template: str, kind: str, action: str
) -> None:
    url = _url(template, NAMESPACE)
    reference = await _send(harness, method, url, "admin")
    assert reference.status_code not in (401, 403), reference.text
    for role in ROLES:
        response = await _send(harness, method, url, role.name)
        if role.name == "none":
            expected = 401
        elif action in role.actions:
            expected = reference.status_code
        else:
            expected = 403
        assert response.status_code == expected, (role.name, method, url, response.text)
        if expected == 403:
            assert response.json()["code"] == "auth.insufficient_permissions"


async def test_the_wrong_namespace_admin_has_its_own_namespace(harness: Harness) -> None:
    # The same key that gets 403 on team-a is an admin on team-b: the 403s above are about
    # the namespace, not a broken key.
    spec = {"collectionName": "docs", "spec": {"vectors": {"size": 4}}}
    response = await harness.http.put(
        "/v1/namespaces/team-b/collections/docs",
        json=spec,
        headers=harness.headers["wrong-namespace"],
    )
    assert response.status_code == 200, response.text


async def test_a_watch_ends_when_its_jwt_expires(harness: Harness, idp_key: crypto.JwtKey) -> None:
    """Finding 14: an SSE watch kept delivering after the JWT that opened it expired."""
    document = {"model": "m"}
    harness.app.state.configs.publish(NAMESPACE, "app", document, "h1")
    token = _token(idp_key, {"sub": "carol", "groups": ["team-a-readers"]}, expires_in=2)
    headers = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    url = f"/v1/namespaces/{NAMESPACE}/configs/app/watch"
    async with asyncio.timeout(30):  # a bound on the test, not the assertion
        async with harness.http.stream("GET", url, headers=headers) as stream:
            assert stream.status_code == 200
            lines = [line async for line in stream.aiter_lines()]
    ended = time.monotonic() - started
    assert any(line.startswith("event: config") for line in lines)
    assert ended < 25  # it ended on its own: before the fix it streamed until the bound


async def test_an_unknown_key_id_costs_no_hash_check(
    harness: Harness, key_checks: list[str]
) -> None:
    """Finding 10: every well-formed but unknown key paid a full argon2id check."""
    for attempt in range(5):
        headers = {"Authorization": f"Bearer llmi_{'f' * 16}_{attempt:043d}"}
        response = await harness.http.get(f"/v1/namespaces/{NAMESPACE}/configs", headers=headers)
        assert response.status_code == 401
    assert key_checks == []
