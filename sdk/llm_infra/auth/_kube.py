"""ServiceAccountAuthenticator: Kubernetes tokens checked by the API server's TokenReview.

The API server is the authority on its tokens (bound, projected, legacy, OIDC):
we ask it (authentication.k8s.io/v1 TokenReview, through kubernetes_asyncio)
rather than verify signatures ourselves, so revocation of a deleted Pod or
ServiceAccount is honoured. The caller's RBAC must allow ``create
tokenreviews`` (ClusterRole system:auth-delegator grants it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from llm_infra import errors
from llm_infra.auth import _identity

_SA_PREFIX = "system:serviceaccount:"


def identity_from_user_info(user: Any, *, audiences: Sequence[str] = ()) -> _identity.Identity:
    """Map a TokenReview's status.user (V1UserInfo) to an Identity.

    ``system:serviceaccount:<ns>:<name>`` is a ServiceAccount in namespace
    <ns> (also the tenant); any other username is a user.
    """
    username: str = user.username or ""
    if not username:
        raise errors.InvalidToken("the API server authenticated a token without a username")
    claims: dict[str, Any] = {"uid": user.uid} if user.uid else {}
    if audiences:
        claims["aud"] = list(audiences)
    if user.extra:
        claims["extra"] = {key: list(values) for key, values in user.extra.items()}
    namespace: str | None = None
    kind: _identity.IdentityKind = "user"
    if username.startswith(_SA_PREFIX):
        namespace, _, name = username.removeprefix(_SA_PREFIX).partition(":")
        claims["serviceaccount"] = name
        kind = "serviceaccount"
    return _identity.Identity(
        subject=username,
        kind=kind,
        method="serviceaccount_token",
        groups=tuple(user.groups or ()),
        tenant=namespace,
        namespace=namespace,
        claims=claims,
    )


class ServiceAccountAuthenticator:
    """Authenticates bearer tokens by TokenReview against a Kubernetes API server.

    Give an `api_client` (a kubernetes_asyncio ApiClient; the caller closes
    it) or a `kubeconfig` path (the client is made on first use and closed by
    `aclose`; neither: the in-cluster config). `audiences` are the ones the
    token must carry (empty: the API server's own). Use it as an async context
    manager, or call `aclose`.
    """

    def __init__(
        self,
        api_client: Any = None,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        audiences: Sequence[str] = (),
    ) -> None:
        self._api_client = api_client
        self._owns_client = api_client is None
        self.kubeconfig = kubeconfig
        self.audiences = tuple(audiences)

    async def __aenter__(self) -> ServiceAccountAuthenticator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client and self._api_client is not None:
            client, self._api_client = self._api_client, None
            await client.close()

    async def _client(self) -> Any:
        if self._api_client is None:
            from kubernetes_asyncio import config  # the operator extra: imported on first use

            with errors.translate():
                if self.kubeconfig is not None:
                    self._api_client = await config.new_client_from_config(
                        config_file=os.fspath(self.kubeconfig)
                    )
                else:
                    config.load_incluster_config()  # type: ignore[no-untyped-call]
                    from kubernetes_asyncio import client

                    self._api_client = client.ApiClient()
        return self._api_client

    def handles(self, credentials: _identity.Credentials) -> bool:
        return credentials.scheme == "bearer"

    async def authenticate(self, credentials: _identity.Credentials) -> _identity.Identity:
        from kubernetes_asyncio import client

        api = client.AuthenticationV1Api(await self._client())
        review = client.V1TokenReview(
            spec=client.V1TokenReviewSpec(
                token=credentials.secret.get_secret_value(),
                audiences=list(self.audiences) or None,
            )
        )
        with errors.translate():  # ApiException by status, aiohttp as transport
            result = await api.create_token_review(review)
        status: Any = result.status  # V1TokenReviewStatus: generated, unannotated
        if status is None or not status.authenticated:
            # status.error is the API server's reason; redaction in errors scrubs any token shape.
            reason = (status.error if status is not None else None) or "not authenticated"
            raise errors.InvalidToken(f"the Kubernetes API server refused the token: {reason}")
        return identity_from_user_info(status.user, audiences=status.audiences or ())
