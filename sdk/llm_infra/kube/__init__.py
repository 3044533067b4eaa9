"""llm_infra.kube: the one Kubernetes API client of llm-infra (operator, control plane, SDK).

    from llm_infra import kube

    async with await kube.Kube.connect(component="my-app") as client:
        config_map = await client.get(kube.CONFIGMAPS, "default", "settings")
        await client.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {...}, ...})

On lightkube (chosen by measurement: docs/architecture.md, "The Kubernetes
client"). `_credentials` finds the API server and logs in (kubeconfig merged as
kubectl merges it, exec credential plugins, the pod's service account);
`_client` is `Kube` (get, paged list, watch with bookmarks, server-side apply
under one field manager, merge patches, Events, TokenReview and TokenRequest,
one re-login after a 401, errors that name the RBAC rule to add); `_informer`
lists and watches a kind for a handler, relisting on 410. Nothing else in
llm-infra builds a Kubernetes REST call (an import-linter contract keeps
lightkube here).
"""

from llm_infra.kube._client import (
    CONFIGMAPS,
    DAEMONSETS,
    DEPLOYMENTS,
    EVENTS,
    NAMESPACES,
    SECRETS,
    STATEFULSETS,
    WORKLOADS,
    Kind,
    Kube,
    Listed,
    Object,
    Selector,
    WatchEvent,
    decode_secret,
    expired,
    key_of,
    status_error,
)
from llm_infra.kube._credentials import (
    DEFAULT_KUBECONFIG,
    SERVICE_ACCOUNT_DIR,
    Credentials,
    ExecPlugin,
    from_kubeconfig,
    in_cluster,
    load_credentials,
    merge_kubeconfigs,
)
from llm_infra.kube._informer import Handler, Informer

__all__ = [
    "CONFIGMAPS",
    "DAEMONSETS",
    "DEFAULT_KUBECONFIG",
    "DEPLOYMENTS",
    "EVENTS",
    "NAMESPACES",
    "SECRETS",
    "SERVICE_ACCOUNT_DIR",
    "STATEFULSETS",
    "WORKLOADS",
    "Credentials",
    "ExecPlugin",
    "Handler",
    "Informer",
    "Kind",
    "Kube",
    "Listed",
    "Object",
    "Selector",
    "WatchEvent",
    "decode_secret",
    "expired",
    "from_kubeconfig",
    "in_cluster",
    "key_of",
    "load_credentials",
    "merge_kubeconfigs",
    "status_error",
]
