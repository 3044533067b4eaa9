"""The API server as the `llm_infra.config.ObjectReader` of one namespace.

`llm_infra.config.resolve_config_source` reads a ConfigSource's ConfigMap,
Secret and service-account inputs through an `ObjectReader`; standalone mode
passes files, the operator passes `KubeObjectReader` over `ctx.kube`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from llm_infra import errors, kube

DEFAULT_SERVICE_ACCOUNT = "default"
"""The account a vault layer logs in as when its serviceAccountName is unset."""


class KubeObjectReader:
    """ConfigMaps, Secrets and service-account tokens of `namespace`, read through `kube`.

    Tokens are always of an account of `namespace` (TokenRequest): a vault layer's
    address is the ConfigSource's to choose, so the operator's own token, which the
    API server honours with the operator's rights in every namespace, is never one.
    """

    def __init__(self, client: kube.Kube, namespace: str) -> None:
        self.kube = client
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"KubeObjectReader(namespace={self.namespace!r})"

    async def config_map(self, name: str) -> Mapping[str, str] | None:
        found = await self.kube.get(kube.CONFIGMAPS, self.namespace, name)
        return None if found is None else dict(found.get("data") or {})

    async def secret(self, name: str) -> Mapping[str, str] | None:
        return await self.kube.secret_data(self.namespace, name)

    async def service_account_token(self, name: str | None, audiences: Sequence[str]) -> str:
        account = name or DEFAULT_SERVICE_ACCOUNT
        try:
            return await self.kube.token_request(self.namespace, account, audiences)
        except errors.NotFound:
            raise errors.ConfigError(
                f"service account {self.namespace}/{account} (vault.auth.kubernetes"
                f".serviceAccountName{', unset' if name is None else ''}) does not exist:"
                " create it, or name one the OpenBao/Vault role accepts",
                key="serviceAccountName",
            ) from None


__all__ = ["KubeObjectReader"]
