"""The API server as the `llm_infra.config.ObjectReader` of one namespace.

`llm_infra.config.resolve_config_source` reads a ConfigSource's ConfigMap,
Secret and service-account inputs through an `ObjectReader`; standalone mode
passes files, the operator passes `KubeObjectReader` over `ctx.kube`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from llm_infra import config, errors, kube


class KubeObjectReader:
    """ConfigMaps, Secrets and service-account tokens of `namespace`, read through `kube`.

    `service_account_default` is the account whose token a vault layer presents
    when its `auth.kubernetes.serviceAccountName` is unset.
    """

    def __init__(
        self, client: kube.Kube, namespace: str, service_account_default: str | None = None
    ) -> None:
        self.kube = client
        self.namespace = namespace
        self.service_account_default = service_account_default

    def __repr__(self) -> str:
        return f"KubeObjectReader(namespace={self.namespace!r})"

    async def config_map(self, name: str) -> Mapping[str, str] | None:
        found = await self.kube.get(kube.CONFIGMAPS, self.namespace, name)
        return None if found is None else dict(found.get("data") or {})

    async def secret(self, name: str) -> Mapping[str, str] | None:
        return await self.kube.secret_data(self.namespace, name)

    async def service_account_token(self, name: str | None, audiences: Sequence[str]) -> str:
        account = name or self.service_account_default
        if account is None:
            # The operator's own identity: its pod's projected token (audience: the API server).
            own = config.DEFAULT_SERVICE_ACCOUNT_TOKEN
            if not audiences and own.is_file():
                return own.read_text(encoding="utf-8").strip()
            raise errors.ConfigError(
                "vault.auth.kubernetes.serviceAccountName is unset and the operator has no"
                " service-account token of its own to present (or audiences were asked for):"
                f" set serviceAccountName to a service account in namespace {self.namespace}"
                " that the OpenBao/Vault role accepts",
                key="serviceAccountName",
            )
        return await self.kube.token_request(self.namespace, account, audiences)


__all__ = ["KubeObjectReader"]
