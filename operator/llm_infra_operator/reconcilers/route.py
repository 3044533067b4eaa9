"""Route -> its compiled route table, in a ConfigMap the control plane's gateway serves.

Validation and compilation are the SDK's (`llm_infra.router`); this module adds
what is Kubernetes: checking that the credential Secrets exist (a Secret and its
key, never the value), writing one table ConfigMap per Route with a controller
ownerReference (garbage collection removes it with the Route, so no finalizer),
and status. Conditions: Accepted, ResolvedRefs, Published, then Ready.

Policy, decided here:
- An invalid spec (Accepted=False/InvalidRoute) publishes nothing: the table
  already in the ConfigMap stays in service until the spec is fixed.
- A target whose credentials are missing is marked unavailable (weight 0, out
  of every fallback order) and the table is still published with the other
  targets, so traffic keeps flowing; Ready stays False (ResolvedRefs=False/
  SecretNotFound) until every reference resolves. The missing Secrets are
  returned as references, so creating one re-runs the Route at once.
The table ConfigMap is written only when it differs from the desired one
(hash annotation, data, label, owner), so periodic resyncs write nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import kopf

from llm_infra import kube, router
from llm_infra.api.conditions import get_condition
from llm_infra.api.v1alpha1 import Route
from llm_infra.api.v1alpha1.route import RouteSpec, RouteStatus, TargetStatus
from llm_infra_operator.conditions import Event, StatusConditions
from llm_infra_operator.engine import Outcome, Reconciler

TABLE_HASH_ANNOTATION = router.ROUTE_TABLE_HASH_ANNOTATION

ACCEPTED = "Accepted"
RESOLVED_REFS = "ResolvedRefs"
PUBLISHED = "Published"

SecretKeys = Mapping[str, Collection[str] | None]
"""Secret name -> the names of its keys, or None when the Secret does not exist."""


@dataclass(frozen=True, slots=True)
class MissingCredential:
    """A target whose credentialsSecretRef does not resolve."""

    field: str  # spec.targets[i].credentialsSecretRef
    target: str
    secret: str
    key: str
    secret_exists: bool

    def describe(self) -> str:
        missing = (
            f"Secret {self.secret} has no key {self.key}"
            if self.secret_exists
            else f"Secret {self.secret} not found"
        )
        return f"{self.field}: {missing} (target {self.target})"


# -- decide (pure) -----------------------------------------------------------------------------


def decide_missing_credentials(spec: RouteSpec, secrets: SecretKeys) -> list[MissingCredential]:
    """The targets whose credentials Secret or key is missing, in spec order."""
    index = {t.name: i for i, t in enumerate(spec.targets)}
    missing = []
    for target, ref in router.credential_refs(spec):
        keys = secrets.get(ref.name)
        if keys is None or ref.key not in keys:
            missing.append(
                MissingCredential(
                    f"spec.targets[{index[target]}].credentialsSecretRef",
                    target,
                    ref.name,
                    ref.key,
                    secret_exists=keys is not None,
                )
            )
    return missing


def decide_target_status(
    spec: RouteSpec, weights: Mapping[str, int], unavailable: Collection[str]
) -> list[TargetStatus]:
    """Per target: its effective weight, and healthy = its credentials resolve.

    Probing the providers is the gateway's job; until it reports, a target with
    its credentials in place counts as healthy, a weight-0 fallback target too.
    """
    return [
        TargetStatus(
            name=t.name, effective_weight=weights.get(t.name, 0), healthy=t.name not in unavailable
        )
        for t in spec.targets
    ]


def decide_table_version(previous: RouteStatus, table_hash: str) -> int:
    """The status' tableVersion: bumped when the table's hash differs from the one last recorded."""
    if previous.table_hash == table_hash:
        return previous.table_version
    return previous.table_version + 1


def decide_table_configmap(body: Mapping[str, Any], table: router.RouteTable) -> dict[str, Any]:
    """The Route's table ConfigMap: labelled for the control plane, owned by the Route."""
    meta = body["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": router.route_table_configmap_name(meta["name"]),
            "namespace": meta["namespace"],
            # "true", not the Route's name: label values stop at 63 characters, names do not.
            "labels": {router.ROUTE_TABLE_LABEL: "true"},
            "annotations": {TABLE_HASH_ANNOTATION: table.version},
            "ownerReferences": [kopf.build_owner_reference(cast(kopf.Body, body))],
        },
        "data": {router.ROUTE_TABLE_KEY: table.to_json()},
    }


def decide_table_stale(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether the ConfigMap found (API JSON, None when absent) must be rewritten as `desired`.

    The hash annotation says which table it holds; data, label and owner are
    compared too, so a hand edit or a removed label is repaired.
    """
    if current is None:
        return True
    meta, want = current.get("metadata") or {}, desired["metadata"]
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    owners = {(o.get("uid"), o.get("controller")) for o in meta.get("ownerReferences") or []}
    return (
        annotations.get(TABLE_HASH_ANNOTATION) != want["annotations"][TABLE_HASH_ANNOTATION]
        or (current.get("data") or {}) != desired["data"]
        or any(labels.get(k) != v for k, v in want["labels"].items())
        or (want["ownerReferences"][0]["uid"], True) not in owners
    )


def accepted_message(problems: Sequence[router.RouteProblem], previous: RouteStatus) -> str:
    """Accepted's message: the errors with their fields, else the warnings, else a plain yes."""
    invalid = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    if invalid:
        listed = "; ".join(f"{p.field}: {p.message}" for p in invalid)
        kept = (
            f"table version {previous.table_version} stays in service"
            if previous.table_hash
            else "no table is published"
        )
        return f"the route is invalid: {listed}. Fix the spec; until then {kept}"
    if warnings:
        listed = "; ".join(f"{p.field}: {p.message}" for p in warnings)
        return f"route accepted with {len(warnings)} warning(s): {listed}"
    return "route accepted"


def resolved_refs_message(missing: Sequence[MissingCredential], available: int) -> str:
    """ResolvedRefs=False's message: what is missing, what it means for traffic, what to do."""
    listed = "; ".join(m.describe() for m in missing)
    names = ", ".join(m.target for m in missing)
    served = (
        f"the table is published with the other {available} target(s), so traffic keeps flowing"
        if available
        else "no target is left to serve requests"
    )
    return (
        f"{listed}. Target(s) {names} are marked unavailable (weight 0) and {served}: create the"
        " Secret with that key, or fix the reference"
    )


def decide_warning_event(
    problems: Sequence[router.RouteProblem], previous_message: str | None, message: str
) -> Event | None:
    """A RouteWarning event when the warnings are new, not on every resync."""
    warnings = [p for p in problems if p.severity == "warning"]
    if not warnings or previous_message == message:
        return None
    return Event("Warning", "RouteWarning", message)


# -- apply --------------------------------------------------------------------------------------


class RouteReconciler(Reconciler[Route]):
    model = Route
    status_model = RouteStatus

    async def reconcile(
        self, obj: Route, body: Mapping[str, Any], conditions: StatusConditions
    ) -> Outcome:
        namespace, name = obj.metadata.namespace or "", obj.metadata.name or ""
        spec, previous = obj.spec, obj.status or RouteStatus()
        configmap = router.route_table_configmap_name(name)
        # Not the table ConfigMap itself: our own write would re-run the Route at once, with
        # a body whose status may predate that write. A deleted table is put back on resync.
        references = frozenset({("Secret", ref.name) for _, ref in router.credential_refs(spec)})
        problems = router.validate_route(spec)
        missing = decide_missing_credentials(spec, await self._secret_keys(namespace, spec))
        unavailable = {m.target for m in missing}
        weights = router.effective_weights(spec, unavailable=unavailable)

        message = accepted_message(problems, previous)
        old_accepted = get_condition(previous.conditions, ACCEPTED)
        warning = decide_warning_event(
            problems, old_accepted.message if old_accepted else None, message
        )
        events = [warning] if warning else []
        valid = not any(p.severity == "error" for p in problems)
        conditions.set(ACCEPTED, valid, "Accepted" if valid else "InvalidRoute", message)
        self._set_resolved_refs(
            conditions, missing, available=sum(1 for w in weights.values() if w)
        )
        if not valid:
            conditions.set(
                PUBLISHED,
                False,
                "InvalidRoute",
                f"ConfigMap {configmap} keeps table version {previous.table_version}, which the"
                " gateway serves until the spec is fixed (see Accepted)"
                if previous.table_hash
                else "nothing is published until the spec is fixed (see Accepted)",
            )
            conditions.ready("RouteReady")
            return Outcome(previous.model_copy(), events=events, references=references)

        generation = obj.metadata.generation or 0
        table = router.compile_route(
            namespace, name, spec, generation=generation, unavailable=unavailable
        )
        desired = decide_table_configmap(body, table)
        wrote = False
        if decide_table_stale(await self._configmap(namespace, configmap), desired):
            await self.ctx.kube.apply(desired)
            wrote = True
        version = decide_table_version(previous, table.version)
        column = router.weights_column(weights)
        status = previous.model_copy(
            update={
                "targets": decide_target_status(spec, weights, unavailable),
                "weights": column,
                "table_version": version,
                "table_hash": table.version,
                "table_config_map": configmap,
            }
        )
        if wrote:
            events.append(
                Event(
                    "Normal",
                    "TablePublished",
                    f"table version {version} (sha256 {table.version[:12]}) in ConfigMap"
                    f" {configmap}: {column}",
                )
            )
        conditions.set(
            PUBLISHED,
            True,
            "TablePublished",
            f"ConfigMap {configmap} holds table version {version} of generation {generation}",
        )
        conditions.ready("RouteReady", f"serving {column}")
        return Outcome(status, events=events, references=references)

    @staticmethod
    def _set_resolved_refs(
        conditions: StatusConditions, missing: Sequence[MissingCredential], *, available: int
    ) -> None:
        if missing:
            message = resolved_refs_message(missing, available)
            conditions.set(RESOLVED_REFS, False, "SecretNotFound", message)
        else:
            conditions.set(
                RESOLVED_REFS, True, "ResolvedRefs", "every credentialsSecretRef resolves"
            )

    async def _secret_keys(
        self, namespace: str, spec: RouteSpec
    ) -> dict[str, frozenset[str] | None]:
        found: dict[str, frozenset[str] | None] = {}
        for _, ref in router.credential_refs(spec):
            if ref.name not in found:
                secret = await self.ctx.kube.secret_data(namespace, ref.name)
                # Only the key names leave this line; the values are dropped here.
                found[ref.name] = frozenset(secret) if secret is not None else None
        return found

    async def _configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The table ConfigMap as served (what `decide_table_stale` compares); None when absent."""
        return await self.ctx.kube.get(kube.CONFIGMAPS, namespace, name)
