"""What the operator tests do as a user would: apply manifests, read objects, wait on conditions."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import yaml

from tests.servers.kube import KubeServer
from tests.support import eventually, wait_for

__all__ = ["apply", "condition", "events", "eventually", "get", "wait_condition", "wait_for"]

DEFAULT_TIMEOUT = 30.0


def apply(kube: KubeServer, namespace: str, *manifests: Mapping[str, Any]) -> None:
    text = yaml.safe_dump_all([dict(m) for m in manifests], sort_keys=False)
    path = kube.workdir / f"apply-{time.monotonic_ns()}.yaml"
    path.write_text(text)
    kube.kubectl("apply", "-n", namespace, "-f", str(path))


def inline_configsource(name: str, **values: Any) -> dict[str, Any]:
    """A ConfigSource of one inline layer: the smallest resource that reconciles to Ready."""
    return {
        "apiVersion": "infra.llmdevops.io/v1alpha1",
        "kind": "ConfigSource",
        "metadata": {"name": name},
        "spec": {"layers": [{"name": "base", "inline": values}]},
    }


def get(kube: KubeServer, namespace: str, resource: str, name: str) -> dict[str, Any] | None:
    """The object as JSON, or None when it does not exist."""
    found = kube.kubectl("get", resource, name, "-n", namespace, "--ignore-not-found", "-o", "json")
    text = found.stdout.strip()
    return json.loads(text) if text else None


def condition(obj: Mapping[str, Any] | None, type_: str = "Ready") -> dict[str, Any] | None:
    if obj is None:
        return None
    conditions = obj.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == type_), None)


def wait_condition(
    kube: KubeServer,
    namespace: str,
    resource: str,
    name: str,
    *,
    type_: str = "Ready",
    status: str = "True",
    reason: str | None = None,
    generation: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Wait until the condition has `status` (and `reason`) for the object's current generation."""

    def probe() -> dict[str, Any] | None:
        obj = get(kube, namespace, resource, name)
        found = condition(obj, type_)
        if obj is None or found is None or found["status"] != status:
            return None
        if reason is not None and found["reason"] != reason:
            return None
        if generation and obj["status"].get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        return obj

    return wait_for(f"{resource}/{name} {type_}={status} {reason or ''}", probe, timeout=timeout)


def events(kube: KubeServer, namespace: str, name: str) -> list[dict[str, Any]]:
    """Events about the object `name`, oldest first."""
    listed = json.loads(
        kube.kubectl(
            "get", "events", "-n", namespace,
            f"--field-selector=involvedObject.name={name}", "-o", "json",
        ).stdout
    )  # fmt: skip
    items: list[dict[str, Any]] = listed["items"]
    return sorted(items, key=lambda e: e.get("firstTimestamp") or "")
