"""ServiceAccountAuthenticator: Kubernetes tokens checked by the API server's TokenReview.

The API server is the authority on its tokens (bound, projected, legacy, OIDC):
we ask it (authentication.k8s.io/v1 TokenReview, through `llm_infra.kube`)
rather than verify signatures ourselves, so revocation of a deleted Pod or
ServiceAccount is honoured. The caller's RBAC must allow ``create
tokenreviews`` (ClusterRole system:auth-delegator grants it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llm_infra import errors
from llm_infra.auth import _identity

if TYPE_CHECKING:
    from llm_infra.kube import Kube

_SA_PREFIX = "system:serviceaccount:"
COMPONENT = "llm-infra-auth"


def identity_from_user_info(
    user: Mapping[str, Any], *, audiences: Sequence[str] = ()
) -> _identity.Identity:
    """Map a TokenReview's status.user (UserInfo: username, uid, groups, extra) to an Identity.

    ``system:serviceaccount:<ns>:<name>`` is a ServiceAccount in namespace
    <ns> (also the tenant); any other username is a user.
    """
    username: str = user.get("username") or ""
    if not username:
        raise errors.InvalidToken("the API server authenticated a token without a username")
    claims: dict[str, Any] = {"uid": user["uid"]} if user.get("uid") else {}
    if audiences:
        claims["aud"] = list(audiences)
    if extra := user.get("extra"):
        claims["extra"] = {key: list(values) for key, values in extra.items()}
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
        groups=tuple(user.get("groups") or ()),
        tenant=namespace,
        namespace=namespace,
        claims=claims,
    )


class ServiceAccountAuthenticator:
    """Authenticates bearer tokens by TokenReview against a Kubernetes API server.

    Give a `client` (an `llm_infra.kube.Kube`; the caller closes it) or a
    `kubeconfig` path (neither: $KUBECONFIG, the pod's service account,
    ~/.kube/config); a client made here is made on first use and closed by
    `aclose`. `audiences` are the ones the token must carry (empty: the API
    server's own). Use it as an async context manager, or call `aclose`.
    """

    def __init__(
        self,
        client: Kube | None = None,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        audiences: Sequence[str] = (),
    ) -> None:
        self._client = client
        self._owns_client = client is None
        self.kubeconfig = kubeconfig
        self.audiences = tuple(audiences)

    async def __aenter__(self) -> ServiceAccountAuthenticator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def _kube(self) -> Kube:
        if self._client is None:
            from llm_infra import kube  # here: only TokenReview callers need the client

            self._client = await kube.Kube.connect(self.kubeconfig, component=COMPONENT)
        return self._client

    def handles(self, credentials: _identity.Credentials) -> bool:
        return credentials.scheme == "bearer"

    async def authenticate(self, credentials: _identity.Credentials) -> _identity.Identity:
        client = await self._kube()
        status = await client.token_review(
            credentials.secret.get_secret_value(), audiences=self.audiences
        )
        if not status.get("authenticated"):
            # status.error is the API server's reason; redaction in errors scrubs any token shape.
            reason = status.get("error") or "not authenticated"
            raise errors.InvalidToken(f"the Kubernetes API server refused the token ({reason})")
        return identity_from_user_info(
            status.get("user") or {}, audiences=status.get("audiences") or ()
        )
