"""The operator's Kubernetes calls beyond kopf: reads, owned children, status and events.

kopf triggers reconciles and keeps its progress in annotations; everything the
reconcilers write goes through this one client, so a reconcile triggered by
kopf, by the resync loop or by a referenced ConfigMap writes the same way.
Owned children are written with server-side apply under one field manager, so
the operator owns exactly the fields it sets and a user's extra labels survive.

Plain REST over httpx with the credentials kopf logs in with (service account
in a pod, else $KUBECONFIG): a dozen calls do not justify a generated client
of some 800 modules and ~100 MB of resident memory per operator.
"""

from __future__ import annotations

import base64
import datetime
import os
import ssl
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import httpx
import kopf

from llm_infra import errors
from llm_infra.api._resource import Resource

FIELD_MANAGER = "llm-infra-operator"
COMPONENT = "llm-infra-operator"
_APPLY = "application/apply-patch+yaml"  # JSON is YAML: the body is sent as JSON
_MERGE = "application/merge-patch+json"
_CORE = {"ConfigMap": "configmaps", "Secret": "secrets"}
_APPS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """A controller owner reference to a custom resource body: children go when it goes."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _ssl_context(info: kopf.ConnectionInfo, keys: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=os.fsdecode(info.ca_path) if info.ca_path else None,
        cadata=_decoded(info.ca_data).decode() if info.ca_data else None,
    )
    if info.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cert, key = info.certificate_path, info.private_key_path
    if info.certificate_data:  # inline kubeconfig data: ssl loads chains from files only
        cert = keys / "client.crt"
        cert.write_bytes(_decoded(info.certificate_data))
    if info.private_key_data:
        key = keys / "client.key"
        key.write_bytes(_decoded(info.private_key_data))
    if cert:
        context.load_cert_chain(os.fsdecode(cert), os.fsdecode(key) if key else None)
    return context


def _decoded(data: str | bytes) -> bytes:
    """kubeconfig *-data fields are base64."""
    return base64.b64decode(data)


class Kube:
    """One API client for the process; `connect()` logs in as kopf does."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @classmethod
    async def connect(cls) -> Self:
        settings = kopf.OperatorSettings()
        info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
            settings=settings
        )
        if info is None:
            raise errors.ConfigError(
                "no Kubernetes credentials: run in a pod with a service account, or set KUBECONFIG",
                key="KUBECONFIG",
            )
        headers = {"User-Agent": COMPONENT}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        # The private key is written only when the kubeconfig inlines it; the directory is 0700
        # and removed as soon as the SSL context holds the key.
        with tempfile.TemporaryDirectory(prefix="llm-infra-kube-") as keys:
            verify = _ssl_context(info, Path(keys))
        return cls(httpx.AsyncClient(base_url=info.server, headers=headers, verify=verify))

    async def close(self) -> None:
        await self._http.aclose()

    # -- the HTTP exchange ---------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        params: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """One request; the JSON answer, or None on 404 when `missing_ok`."""
        headers = {"Content-Type": content_type} if content_type else None
        with errors.translate(errors.from_httpx):
            response = await self._http.request(
                method, path, json=body, headers=headers, params=params
            )
            if response.status_code == 404 and missing_ok:
                return None
            response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    # -- reads ---------------------------------------------------------------------------------

    async def resource(
        self, kind: type[Resource], namespace: str, name: str
    ) -> dict[str, Any] | None:
        """One of our custom resources as the API server has it now; None when gone."""
        return await self._call("GET", _custom_path(kind, namespace, name), missing_ok=True)

    async def read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A ConfigMap or Secret whole (metadata and data, as served); None when absent.

        A Secret's `data` stays base64-encoded, as on the wire: compare it, never log it.
        """
        return await self._call("GET", _core_path(kind, namespace, name), missing_ok=True)

    async def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        found = await self.read("ConfigMap", namespace, name)
        return None if found is None else dict(found.get("data") or {})

    async def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's values, decoded; None when it does not exist. Never log the result."""
        found = await self.read("Secret", namespace, name)
        if found is None:
            return None
        return {
            key: base64.b64decode(value).decode("utf-8", errors="replace")
            for key, value in (found.get("data") or {}).items()
        }

    async def service_account_token(
        self, namespace: str, name: str, audiences: Sequence[str] = (), seconds: int = 600
    ) -> str:
        """A short-lived token of a service account (TokenRequest), e.g. for OpenBao login."""
        spec: dict[str, Any] = {"expirationSeconds": seconds}
        if audiences:
            spec["audiences"] = list(audiences)
        issued = await self._call(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        assert issued is not None
        return str(issued["status"]["token"])

    async def workloads(
        self, namespace: str, kinds: Sequence[str], match_labels: Mapping[str, str]
    ) -> list[tuple[str, str]]:
        """(kind, name) of the Deployments/StatefulSets/DaemonSets matching the labels."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
        found: list[tuple[str, str]] = []
        for kind in kinds:
            listed = await self._call(
                "GET",
                f"/apis/apps/v1/namespaces/{namespace}/{_APPS[kind]}",
                params={"labelSelector": selector},
            )
            assert listed is not None
            found.extend((kind, item["metadata"]["name"]) for item in listed.get("items", []))
        return found

    # -- writes --------------------------------------------------------------------------------

    async def apply(self, obj: Mapping[str, Any]) -> None:
        """Server-side apply of a ConfigMap or Secret (the fields we set are ours)."""
        meta = obj["metadata"]
        await self._call(
            "PATCH",
            _core_path(obj["kind"], meta["namespace"], meta["name"]),
            body=dict(obj),
            content_type=_APPLY,
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
        )

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        gone = await self._call("DELETE", _core_path(kind, namespace, name), missing_ok=True)
        return gone is not None

    async def annotate_pod_template(
        self, namespace: str, kind: str, name: str, annotations: Mapping[str, str]
    ) -> None:
        """Patch a workload's pod-template annotations: Kubernetes rolls its pods out."""
        await self._call(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/{_APPS[kind]}/{name}",
            body={"spec": {"template": {"metadata": {"annotations": dict(annotations)}}}},
            content_type=_MERGE,
        )

    async def patch_status(
        self, kind: type[Resource], namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        # Deleted meanwhile (404): nothing is left to report on.
        await self._call(
            "PATCH",
            f"{_custom_path(kind, namespace, name)}/status",
            body={"status": dict(status)},
            content_type=_MERGE,
            missing_ok=True,
        )

    async def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event on the object, as `kubectl describe` shows them."""
        meta = involved["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        # A namespace going away (404) leaves the event without a reader.
        await self._call(
            "POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=event, missing_ok=True
        )


def _custom_path(kind: type[Resource], namespace: str, name: str) -> str:
    crd = kind.crd
    return f"/apis/{crd.group}/{crd.version}/namespaces/{namespace}/{crd.plural}/{name}"


def _core_path(kind: str, namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/{_CORE[kind]}/{name}"


__all__ = ["COMPONENT", "FIELD_MANAGER", "Kube", "owner_reference"]
