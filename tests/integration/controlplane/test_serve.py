"""`llm-infra serve`, the chart's entry point, configured as a Deployment configures it.

No flags: LLM_INFRA_* variables and a mounted settings file (YAML) only. It serves
the API to a provisioned API key and to JWTs of an identity provider whose JWKS is
on loopback, feeds from the API server with the generated RBAC, starts no
nats-server and prints no admin key; and it refuses to start, naming each
missing setting, when one it needs is not there.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from llm_infra import crypto
from llm_infra_controlplane.access import admin_key
from tests.integration.operator.conftest import operator_kubeconfig  # noqa: F401  installs CRDs
from tests.servers._process import ServerProcess, free_port
from tests.servers.controlplane import grant_controlplane_namespace
from tests.servers.documents import DocumentServer
from tests.servers.kube import KubeServer

pytestmark = [pytest.mark.kube, pytest.mark.usefixtures("operator_kubeconfig")]

COMMAND = Path(sys.executable).parent / "llm-infra"
ISSUER = "https://idp.test"


def _jwt_key() -> crypto.JwtKey:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return crypto.JwtKey.rsa(pem, alg="RS256", kid="serve")


def _clean_env(**env: str) -> dict[str, str]:
    """This process's environment without any LLM_INFRA_* setting, plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_INFRA_", "OTEL_"))}
    return base | env


def test_serve_is_configured_by_environment_and_settings_file_only(
    tmp_path: Path, kube: KubeServer, namespace: str, nats_url: str, served: DocumentServer
) -> None:
    key = _jwt_key()
    served.documents["/jwks.json"] = json.dumps({"keys": [key.public_jwk()]}).encode()
    secret_key, record = asyncio.run(admin_key.issue_api_key("ci-deployer"))
    # The mounted file holds what a ConfigMap/Secret would: key records, rules, JWT settings.
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(
        yaml.safe_dump(
            {
                "auth_mode": "api-key+jwt",
                "api_keys": [record.model_dump(mode="json")],
                "jwt_jwks_url": f"{served.url}/jwks.json",
                "jwt_issuer": ISSUER,
                "access_rules": [
                    {"subjects": ["apikey:ci-deployer"], "actions": ["read"], "kinds": ["configs"]},
                    {"groups": ["readers"], "actions": ["read"], "namespaces": [namespace]},
                ],
            }
        )
    )
    port = free_port()
    env = _clean_env(
        LLM_INFRA_SETTINGS_FILE=str(settings_file),
        LLM_INFRA_PORT=str(port),
        LLM_INFRA_DATA_DIR=str(tmp_path / "data"),
        LLM_INFRA_NATS_URL=nats_url,
        LLM_INFRA_KUBE_FEEDS="true",
        LLM_INFRA_KUBECONFIG=str(grant_controlplane_namespace(kube, namespace)),
        LLM_INFRA_WATCH_NAMESPACE=namespace,
    )
    process = ServerProcess("llm-infra serve", [COMMAND, "serve"], log_path=tmp_path / "serve.log",
                            env=env)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    configs = f"{base}/v1/namespaces/{namespace}/configs"
    try:
        process.launch(
            lambda: httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200,
            what="/readyz",
            timeout=60,
        )
        anonymous = httpx.get(configs)
        by_key = httpx.get(configs, headers=_bearer(secret_key.get_secret_value()))
        jwt = key_token(key, {"sub": "bob", "groups": ["readers"]})
        by_jwt = httpx.get(configs, headers=_bearer(jwt))
        stranger = key_token(key, {"sub": "eve", "groups": ["others"]})
        refused = httpx.get(configs, headers=_bearer(stranger))
        forged = key_token(_jwt_key(), {"sub": "bob", "groups": ["readers"]})
        not_ours = httpx.get(configs, headers=_bearer(forged))
    finally:
        exit_code = process.stop()
    assert anonymous.status_code == 401
    assert by_key.status_code == 200, by_key.text
    assert by_jwt.status_code == 200, by_jwt.text
    assert refused.status_code == 403
    assert not_ours.status_code == 401
    assert exit_code == 0
    log = process.log_path.read_text()
    assert "admin key" not in log  # serve never makes one
    assert "nats-server" not in log
    assert not (tmp_path / "data" / "admin-key.json").exists()
    assert secret_key.get_secret_value() not in log


def key_token(key: crypto.JwtKey, claims: dict[str, Any]) -> str:
    return crypto.sign_jwt({"iss": ISSUER, "aud": "llm-infra"} | claims, key, expires_in=300)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, ["nats_url is not set", "api_keys is empty with auth_mode api-key"]),
        (
            {"LLM_INFRA_NATS_URL": "nats://nats:4222", "LLM_INFRA_AUTH_MODE": "jwt"},
            ["jwt_jwks_url is not set", "jwt_issuer is not set"],
        ),
        ({"LLM_INFRA_PORT": "eighty"}, ["port (from env LLM_INFRA_PORT)"]),
    ],
)
def test_serve_refuses_to_start_naming_what_is_missing(
    tmp_path: Path, env: dict[str, str], named: list[str]
) -> None:
    done = subprocess.run(
        [COMMAND, "serve"],
        env=_clean_env(LLM_INFRA_DATA_DIR=str(tmp_path), **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    for text in named:
        assert text in done.stderr
    assert "Traceback" not in done.stderr
