"""ServiceAccountAuthenticator on the real kube-apiserver: TokenReview of kubectl-minted tokens."""

from __future__ import annotations

import pytest

from llm_infra import auth, errors
from llm_infra import kube as k8s
from tests.servers.kube import KubeServer

pytestmark = pytest.mark.kube

AUDIENCE = "llm-infra"


async def kube_client(server: KubeServer) -> k8s.Kube:
    return await k8s.Kube.connect(server.kubeconfig, component="auth-test")


def _mint_token(kube: KubeServer, namespace: str, *extra: str) -> str:
    kube.kubectl("create", "serviceaccount", "app", "-n", namespace)
    return kube.kubectl("create", "token", "app", "-n", namespace, *extra).stdout.strip()


async def test_service_account_token_maps_to_identity(kube: KubeServer, namespace: str) -> None:
    token = _mint_token(kube, namespace)
    async with auth.ServiceAccountAuthenticator(kubeconfig=kube.kubeconfig) as authenticator:
        identity = await authenticator.authenticate(auth.Credentials.bearer(token))
    assert identity.subject == f"system:serviceaccount:{namespace}:app"
    assert identity.kind == "serviceaccount"
    assert identity.method == "serviceaccount_token"
    assert identity.namespace == namespace
    assert identity.tenant == namespace
    assert identity.claims["serviceaccount"] == "app"
    assert "system:serviceaccounts" in identity.groups
    assert f"system:serviceaccounts:{namespace}" in identity.groups
    assert token not in identity.model_dump_json()


async def test_audiences_are_checked(kube: KubeServer, namespace: str) -> None:
    token = _mint_token(kube, namespace, "--audience", AUDIENCE)
    client = await kube_client(kube)
    try:
        ours = auth.ServiceAccountAuthenticator(client, audiences=[AUDIENCE])
        identity = await ours.authenticate(auth.Credentials.bearer(token))
        assert identity.namespace == namespace
        assert identity.claims["aud"] == [AUDIENCE]
        theirs = auth.ServiceAccountAuthenticator(client, audiences=["someone-else"])
        with pytest.raises(errors.InvalidToken) as info:
            await theirs.authenticate(auth.Credentials.bearer(token))
        assert token not in str(info.value)
    finally:
        await client.aclose()


async def test_garbage_token_is_invalid(kube: KubeServer) -> None:
    garbage = "not-a-real-token-0123456789"
    async with auth.ServiceAccountAuthenticator(kubeconfig=kube.kubeconfig) as authenticator:
        with pytest.raises(errors.InvalidToken) as info:
            await authenticator.authenticate(auth.Credentials.bearer(garbage))
    assert garbage not in str(info.value)
    assert garbage not in repr(info.value)
