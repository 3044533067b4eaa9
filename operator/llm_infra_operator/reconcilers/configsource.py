"""ConfigSource -> a ConfigMap (plain keys) and a Secret (sensitiveKeys), change events, rollouts.

`llm_infra.config.resolve_config_source` does the deciding (read the layers
through `objects.KubeObjectReader`, merge, validate, split, render); this
module adds what is Kubernetes: the owned outputs, status, the NATS change
event and pod-template rollouts. The control plane serves the outputs.

Conditions: LayersResolved, Validated, Published, Notified, RolledOut (with
onChange rollout), Ready. Nothing is written unless the merge validates: an
invalid one leaves the last good outputs, `lastGoodHash` and `version`
alone and says why in Validated. Outputs are written only when they differ
from what is there, so resyncs do not churn. Every new version (the first
included) is announced with `config.ConfigChanged` on
`llm-infra.config.<namespace>.<name>` (core NATS: subscribers want the latest
version, not a replay); when NATS is unreachable the outputs stand,
Notified=False records the pending event, and a retry publishes it without
writing the outputs again. Rollouts annotate the selected workloads' pod
templates with the published hash on every reconcile (an unchanged value is a
no-op for the API server), so a failed or newly matching workload catches up.
Referenced ConfigMaps and Secrets re-trigger a reconcile through
`Outcome.references`; vault and http layers are read again every
`refresh.interval`. Outputs carry a controller ownerReference when
`target.deletionPolicy` is Delete, so garbage collection removes them: no
finalizer.
"""

from __future__ import annotations

import base64
import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

import httpx
import kopf

from llm_infra import config, errors, kube
from llm_infra.api.conditions import Condition, get_condition
from llm_infra.api.v1alpha1 import ConfigSource
from llm_infra.api.v1alpha1._common import duration_seconds
from llm_infra.api.v1alpha1.configsource import ConfigSourceSpec, ConfigSourceStatus
from llm_infra_operator import objects
from llm_infra_operator.conditions import Event, StatusConditions
from llm_infra_operator.engine import Outcome, Reconciler, Ref

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "llm-infra"
SOURCE_LABEL = config.SOURCE_LABEL
HASH_ANNOTATION = config.HASH_ANNOTATION
ROLLOUT_ANNOTATION = "infra.llmdevops.io/config-hash"
"""Pod-template annotation whose change makes Kubernetes roll the workload out."""

NOTIFIED = "Notified"
_OUTPUT_KINDS = {"ConfigMap": kube.CONFIGMAPS, "Secret": kube.SECRETS}
_HTTP_CACHE = "configsource.http_cache"
_HTTP_CLIENT = "configsource.http_client"

_log = logging.getLogger(__name__)

Manifest = dict[str, Any]


# -- decide ------------------------------------------------------------------------------------


def references(spec: ConfigSourceSpec) -> frozenset[Ref]:
    """The ConfigMaps and Secrets whose changes must re-resolve `spec`."""
    refs: set[Ref] = set()
    for layer in spec.layers:
        if layer.config_map_ref is not None:
            refs.add(("ConfigMap", layer.config_map_ref.name))
        if layer.secret_ref is not None:
            refs.add(("Secret", layer.secret_ref.name))
        if layer.vault is not None:
            if layer.vault.auth.token_secret_ref is not None:
                refs.add(("Secret", layer.vault.auth.token_secret_ref.name))
            if layer.vault.ca_secret_ref is not None:
                refs.add(("Secret", layer.vault.ca_secret_ref.name))
        if layer.http is not None and layer.http.headers_secret_ref is not None:
            refs.add(("Secret", layer.http.headers_secret_ref.name))
    if spec.schema_ is not None and spec.schema_.config_map_ref is not None:
        refs.add(("ConfigMap", spec.schema_.config_map_ref.name))
    return frozenset(refs)


def output_names(name: str, spec: ConfigSourceSpec) -> tuple[str, str]:
    """(ConfigMap, Secret) names the outputs go to."""
    return spec.target.config_map_name or name, spec.target.secret_name or name


def decide_outputs(
    namespace: str,
    name: str,
    spec: ConfigSourceSpec,
    resolution: config.Resolution,
    body: Mapping[str, Any],
) -> list[Manifest]:
    """The ConfigMap, and the Secret when there are sensitive values, of a valid resolution."""
    if not resolution.valid or resolution.content_hash is None:
        raise ValueError("only a valid resolution is published")
    config_map_name, secret_name = output_names(name, spec)
    metadata: dict[str, Any] = {
        "namespace": namespace,
        "labels": {**spec.target.labels, MANAGED_BY_LABEL: MANAGED_BY, SOURCE_LABEL: name},
        "annotations": {**spec.target.annotations, HASH_ANNOTATION: resolution.content_hash},
    }
    if spec.target.deletion_policy == "Delete":
        metadata["ownerReferences"] = [kopf.build_owner_reference(cast(kopf.Body, body))]
    outputs: list[Manifest] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": config_map_name, **metadata},
            "data": dict(resolution.plain_data),
        }
    ]
    if resolution.secret_data:
        # The ConfigMap is written first: it tells readers (the control plane) to wait for
        # the Secret rather than serve the document without its sensitive part.
        announced = {**metadata["annotations"], config.SECRET_ANNOTATION: secret_name}
        outputs[0]["metadata"]["annotations"] = announced
        encoded = {
            key: base64.b64encode(value.encode()).decode()
            for key, value in resolution.secret_data.items()
        }
        outputs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret_name, **metadata},
                "type": "Opaque",
                "data": encoded,
            }
        )
    return outputs


def owned_by(name: str, existing: Mapping[str, Any]) -> bool:
    """Whether the ConfigSource `name` wrote this ConfigMap or Secret (it carries our labels)."""
    labels = existing.get("metadata", {}).get("labels") or {}
    return bool(labels.get(SOURCE_LABEL) == name and labels.get(MANAGED_BY_LABEL) == MANAGED_BY)


def needs_write(desired: Manifest, existing: Mapping[str, Any] | None, owner_uid: str) -> bool:
    """Whether `existing` lacks anything of `desired`: data, labels, annotations, our owner.

    The content-hash annotation alone would miss a hand-edited output; comparing
    what we set (not the whole object) lets others' labels be.
    """
    if existing is None:
        return True
    want, have = desired["metadata"], existing.get("metadata", {})
    if (existing.get("data") or {}) != desired["data"]:
        return True
    for field in ("labels", "annotations"):
        current = have.get(field) or {}
        if any(current.get(key) != value for key, value in want[field].items()):
            return True
    # Only our own reference counts (others may add theirs); applying without it drops it.
    owned = any(ref.get("uid") == owner_uid for ref in have.get("ownerReferences") or [])
    return owned != bool(want.get("ownerReferences"))


def decide_stale(
    name: str, spec: ConfigSourceSpec, previous: ConfigSourceStatus, outputs: Sequence[Manifest]
) -> list[tuple[str, str]]:
    """(kind, name) of outputs we may have written before and must not keep now.

    The target Secret when no sensitive value remains, and outputs left behind
    by a renamed target. Deleted only when they carry our labels (`owned_by`).
    """
    wanted = {(m["kind"], m["metadata"]["name"]) for m in outputs}
    secret_name = output_names(name, spec)[1]
    candidates = [
        ("Secret", secret_name),
        ("Secret", previous.secret_name),
        ("ConfigMap", previous.config_map_name),
    ]
    stale: list[tuple[str, str]] = []
    for kind, candidate in candidates:
        if candidate and (kind, candidate) not in wanted and (kind, candidate) not in stale:
            stale.append((kind, candidate))
    return stale


def decide_version(previous: ConfigSourceStatus, new_hash: str) -> tuple[int, bool]:
    """(version, changed): the version moves only when the published content does."""
    if previous.version is not None and previous.last_good_hash == new_hash:
        return previous.version, False
    return (previous.version or 0) + 1, True


def decide_invalid(resolution: config.Resolution) -> tuple[str, str, str]:
    """(condition, reason, message) of why an invalid resolution was not published."""
    failed = [layer.error for layer in resolution.layers if layer.error is not None]
    if failed:
        return "LayersResolved", "LayerFailed", "; ".join(error.message for error in failed)
    # validate_document's problems start with the JSON pointer of the failing value; the others
    # (schema ConfigMap missing or invalid, env keys colliding) say what they concern.
    schema_only = all(problem.startswith("/") for problem in resolution.problems)
    reason = "SchemaViolation" if schema_only else "ValidationFailed"
    detail = "; ".join(resolution.problems)
    return "Validated", reason, f"the merged configuration was not published: {detail}"


def refresh_seconds(spec: ConfigSourceSpec) -> float:
    """Seconds until vault and http layers are read again (the others are watched as well)."""
    return duration_seconds(spec.refresh.interval)


def describe_outputs(config_map: str, secret: str | None) -> str:
    return f"ConfigMap {config_map}" + (f" and Secret {secret}" if secret else "")


# -- apply -------------------------------------------------------------------------------------


class ConfigSourceReconciler(Reconciler[ConfigSource]):
    model = ConfigSource
    status_model = ConfigSourceStatus

    async def reconcile(
        self, obj: ConfigSource, body: Mapping[str, Any], conditions: StatusConditions
    ) -> Outcome:
        namespace, name = obj.metadata.namespace or "", obj.metadata.name or ""
        spec = obj.spec
        previous = obj.status or ConfigSourceStatus()
        refs = references(spec)
        resolution = await self._resolve(namespace, spec)
        status = previous.model_copy(
            update={
                "layers": [layer.status() for layer in resolution.layers],
                "last_refresh_time": datetime.datetime.now(datetime.UTC),
            }
        )
        if not resolution.valid:
            return self._invalid(spec, resolution, previous, status, conditions, refs)
        assert resolution.content_hash is not None  # a valid resolution has one
        conditions.set("LayersResolved", True, "Resolved", _layers_message(resolution))
        conditions.set("Validated", True, "Valid", _validated_message(spec))
        status.content_hash = resolution.content_hash
        status.provenance = resolution.provenance

        outputs = decide_outputs(namespace, name, spec, resolution, body)
        try:
            await self._write(namespace, name, spec, previous, outputs, body)
        except errors.InfraError as exc:
            reason = "OutputConflict" if isinstance(exc, errors.Conflict) else "PublishFailed"
            conditions.set("Published", False, reason, exc.message)
            conditions.ready("ConfigPublished")
            return self._outcome(spec, status, refs, retry=exc.is_retryable())
        config_map_name, secret_name = output_names(name, spec)
        published_secret = secret_name if resolution.secret_data else None
        version, changed = decide_version(previous, resolution.content_hash)
        status.version = version
        status.last_good_hash = resolution.content_hash
        status.config_map_name = config_map_name
        status.secret_name = published_secret
        where = describe_outputs(config_map_name, published_secret)
        short = resolution.content_hash[:12]
        conditions.set("Published", True, "OutputsCurrent", f"{where} hold version {version}")
        events = []
        if changed:
            events.append(Event("Normal", "Published", f"version {version} ({short}) to {where}"))

        retry = False
        notified = get_condition(previous.conditions, NOTIFIED)
        if changed or notified is None or notified.status != "True":
            previous_hash = previous.last_good_hash if changed else None
            retry |= await self._notify(
                namespace, name, version, resolution.content_hash, previous_hash, conditions
            )
        else:
            _keep(conditions, notified)
        if spec.on_change.action == "rollout":
            rolled, failed = await self._rollout(namespace, spec, resolution.content_hash)
            if failed is not None:
                conditions.set("RolledOut", False, "RolloutFailed", failed.message)
                retry |= failed.is_retryable()
            else:
                conditions.set(
                    "RolledOut", True, "WorkloadsCurrent", f"{len(rolled)} workloads have {short}"
                )
                if changed and rolled:
                    listed = ", ".join(f"{kind}/{workload}" for kind, workload in rolled)
                    events.append(Event("Normal", "RolledOut", f"version {version}: {listed}"))
        conditions.ready("ConfigPublished", f"version {version} ({short}) in {where}")
        return self._outcome(spec, status, refs, retry=retry, events=events)

    def _invalid(
        self,
        spec: ConfigSourceSpec,
        resolution: config.Resolution,
        previous: ConfigSourceStatus,
        status: ConfigSourceStatus,
        conditions: StatusConditions,
        refs: frozenset[Ref],
    ) -> Outcome:
        """Report why; the outputs, lastGoodHash and version stay those of the last good merge."""
        culprit, reason, message = decide_invalid(resolution)
        if culprit == "LayersResolved":
            conditions.set("LayersResolved", False, reason, message)
            conditions.set("Validated", None, "LayersUnresolved", "waits for every layer to read")
        else:
            conditions.set("LayersResolved", True, "Resolved", _layers_message(resolution))
            conditions.set("Validated", False, reason, message)
            # The whole document was read: its hash and provenance describe what was read.
            status.content_hash = config.content_hash(resolution.document)
            status.provenance = resolution.provenance
        if previous.last_good_hash is not None:
            kept = describe_outputs(previous.config_map_name or "", previous.secret_name)
            conditions.set(
                "Published",
                True,
                "LastGoodKept",
                f"{kept} keep version {previous.version} ({previous.last_good_hash[:12]})",
            )
        else:
            conditions.set("Published", False, "NothingPublished", "no valid configuration yet")
        conditions.ready("ConfigPublished")
        return self._outcome(spec, status, refs, retry=resolution.retryable)

    def _outcome(
        self,
        spec: ConfigSourceSpec,
        status: ConfigSourceStatus,
        refs: frozenset[Ref],
        *,
        retry: bool,
        events: list[Event] | None = None,
    ) -> Outcome:
        resync = refresh_seconds(spec)
        if retry:
            # kopf retries its own triggers; a resync or watch trigger is retried only when due.
            resync = min(resync, self.ctx.settings.retry_max)
        return Outcome(
            status, retry=retry, events=events or [], references=refs, resync_after=resync
        )

    async def _resolve(self, namespace: str, spec: ConfigSourceSpec) -> config.Resolution:
        reader = objects.KubeObjectReader(self.ctx.kube, namespace)
        client = None
        if any(layer.http is not None for layer in spec.layers):
            client = self.ctx.shared.get(_HTTP_CLIENT)
            if client is None:
                client = self.ctx.shared[_HTTP_CLIENT] = httpx.AsyncClient()
        cache = self.ctx.shared.setdefault(_HTTP_CACHE, config.HttpLayerCache())
        return await config.resolve_config_source(
            spec,
            reader,
            http_cache=cache,
            http_client=client,
            http_policy=self.ctx.settings.http_layer_policy(),
        )

    async def _write(
        self,
        namespace: str,
        name: str,
        spec: ConfigSourceSpec,
        previous: ConfigSourceStatus,
        outputs: Sequence[Manifest],
        body: Mapping[str, Any],
    ) -> None:
        """Apply the outputs that differ from what is there; delete our stale ones."""
        client = self.ctx.kube
        owner_uid = str(body["metadata"]["uid"])
        for output in outputs:
            kind, output_name = output["kind"], output["metadata"]["name"]
            existing = await client.get(_OUTPUT_KINDS[kind], namespace, output_name)
            if existing is not None and not owned_by(name, existing):
                field = "configMapName" if kind == "ConfigMap" else "secretName"
                raise errors.Conflict(
                    f"{kind} {output_name} exists and does not belong to this ConfigSource"
                    f" (label {SOURCE_LABEL}): set spec.target.{field} to another name, or"
                    " delete that object",
                    service="kubernetes",
                )
            if needs_write(output, existing, owner_uid):
                await client.apply(output)
        for kind, stale in decide_stale(name, spec, previous, outputs):
            existing = await client.get(_OUTPUT_KINDS[kind], namespace, stale)
            if existing is not None and owned_by(name, existing):
                await client.delete(_OUTPUT_KINDS[kind], namespace, stale)

    async def _notify(
        self,
        namespace: str,
        name: str,
        version: int,
        content_hash: str,
        previous_hash: str | None,
        conditions: StatusConditions,
    ) -> bool:
        """Publish ConfigChanged and set Notified; True when a failure wants a retry."""
        try:
            event = config.ConfigChanged(
                namespace=namespace,
                name=name,
                version=version,
                content_hash=content_hash,
                previous_hash=previous_hash,
            )
            connection = await self.ctx.nats()
            with errors.translate(errors.from_nats):
                await connection.publish(event.subject, event.to_json())
                # publish only buffers: the flush proves the server has it.
                await connection.flush(timeout=5)
        except errors.InfraError as exc:
            _log.warning("ConfigSource %s/%s: change event not sent: %s", namespace, name, exc)
            conditions.set(
                NOTIFIED,
                False,
                "NotifyFailed",
                f"version {version} is published but its change event is not: {exc.message};"
                " check that NATS is reachable at the operator's nats_url; it is sent again",
            )
            return exc.is_retryable()
        conditions.set(NOTIFIED, True, "EventSent", f"version {version} sent on {event.subject}")
        return False

    async def _rollout(
        self, namespace: str, spec: ConfigSourceSpec, content_hash: str
    ) -> tuple[list[tuple[str, str]], errors.InfraError | None]:
        """Annotate the selected workloads' pod templates; (those done, the failure if any)."""
        selector = spec.on_change.selector
        labels = selector.match_labels if selector is not None else {}
        done: list[tuple[str, str]] = []
        try:
            for kind in spec.on_change.workload_kinds:
                listed = await self.ctx.kube.list(
                    kube.WORKLOADS[kind], namespace=namespace, labels=labels
                )
                for workload in listed.items:
                    workload_name = workload["metadata"]["name"]
                    # A changed pod-template annotation is what makes Kubernetes roll it out.
                    template = {"metadata": {"annotations": {ROLLOUT_ANNOTATION: content_hash}}}
                    await self.ctx.kube.patch(
                        kube.WORKLOADS[kind],
                        namespace,
                        workload_name,
                        {"spec": {"template": template}},
                    )
                    done.append((kind, workload_name))
        except errors.InfraError as exc:
            return done, exc
        return done, None


def _keep(conditions: StatusConditions, condition: Condition) -> None:
    """Set a condition again as it was, so Ready still looks at it."""
    status = {"True": True, "False": False}.get(condition.status)
    conditions.set(condition.type, status, condition.reason, condition.message)


def _layers_message(resolution: config.Resolution) -> str:
    read = sum(layer.resolved for layer in resolution.layers)
    skipped = len(resolution.layers) - read
    return f"{read} layers read" + (f", {skipped} optional missing" if skipped else "")


def _validated_message(spec: ConfigSourceSpec) -> str:
    return "the merged configuration satisfies the schema" if spec.schema_ else "no schema set"


__all__ = [
    "HASH_ANNOTATION",
    "ROLLOUT_ANNOTATION",
    "SOURCE_LABEL",
    "ConfigSourceReconciler",
    "decide_invalid",
    "decide_outputs",
    "decide_stale",
    "decide_version",
    "needs_write",
    "owned_by",
    "references",
]
