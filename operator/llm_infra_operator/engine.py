"""The reconcile loop around the per-kind reconcilers: one path for every trigger.

kopf calls `Engine.reconcile` on create, update (spec, labels, annotations:
the force-reconcile annotation too) and resume; the resync loop calls it when
a resource is due (drift checks, ConfigSource refresh intervals); a change to
a ConfigMap or Secret that a resource references makes that resource due at
once. All three go through one `llm_infra.reconcile.Reconciler` (the protocol
the control plane's feeds and standalone mode share), which runs the same steps
under one lock per resource:

  read the object fresh -> parse it with the SDK model -> reconciler.reconcile
  (decide, apply) -> one Event per condition transition -> status with
  observedGeneration -> metrics -> a span of all of it -> when the failure is
  transient, stamina retries it in the background with capped backoff.

Events go before the status: whoever sees a condition change (a user, a test)
finds its event already there. kopf sees every reconcile succeed, so its own
retry bookkeeping stays out of the way; a deletion's finalizer runs until it
succeeds (`Reconciler.settle`), reporting DeletionBlocked meanwhile.

The resync loop is ours rather than kopf timers because kopf adds a finalizer
to every object a timer watches; finalizers stay where deletion must reach
outside Kubernetes (docs/architecture.md, "The operator and kopf").
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import pydantic
from opentelemetry import trace

from llm_infra import errors, jsondoc, kube, reconcile
from llm_infra.api._resource import Resource, ResourceStatus
from llm_infra_operator import metrics
from llm_infra_operator.conditions import READY, Event, StatusConditions
from llm_infra_operator.context import Context

R = TypeVar("R", bound=Resource)
Key = tuple[str, str, str]  # kind, namespace, name
Ref = tuple[str, str]  # kind (ConfigMap | Secret), name, in the resource's namespace

_log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one reconcile found and wants recorded."""

    status: ResourceStatus
    retry: bool = False
    """A transient failure: run again soon, with backoff."""
    events: list[Event] = field(default_factory=list)
    """Events besides the condition transitions (e.g. Published, RolledOut)."""
    references: frozenset[Ref] = frozenset()
    """Objects whose changes should reconcile this resource again."""
    resync_after: float | None = None
    """Seconds until the next periodic reconcile; the operator's resync interval when None."""


class Reconciler(ABC, Generic[R]):
    """The decide-and-apply of one kind; the engine does the Kubernetes bookkeeping."""

    model: ClassVar[type[Resource]]
    status_model: ClassVar[type[ResourceStatus]]

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @abstractmethod
    async def reconcile(
        self, obj: R, body: Mapping[str, Any], conditions: StatusConditions
    ) -> Outcome:
        """Make the world match `obj.spec`; set conditions (and Ready) on `conditions`."""

    @classmethod
    def needs_finalizer(cls, spec: Mapping[str, Any]) -> bool:
        """Whether deleting an object with this spec must reach outside Kubernetes."""
        return False

    async def finalize(self, obj: R, body: Mapping[str, Any]) -> str:
        """Undo outside Kubernetes what the deletion policy says; return what was done.

        Raise to keep the finalizer (and the object) until it succeeds.
        """
        return "nothing to clean up"


class Engine:
    """Runs reconciles for all kinds; one instance per operator process."""

    def __init__(
        self,
        ctx: Context,
        reconcilers: Mapping[str, Reconciler[Any]],
        *,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.ctx = ctx
        self.reconcilers = dict(reconcilers)
        self.tracer = tracer or trace.get_tracer(__name__)
        settings = ctx.settings
        self.protocol: reconcile.Reconciler[Mapping[str, Any]] = reconcile.Reconciler(
            "operator",
            backoff=reconcile.Backoff(initial=settings.retry_initial, maximum=settings.retry_max),
        )
        for kind in self.reconcilers:
            self.protocol.register(kind, apply=self._reconcile_fresh)
        self._bodies: dict[Key, Mapping[str, Any]] = {}
        self._due: dict[Key, float] = {}
        self._refs: dict[Key, frozenset[Ref]] = {}
        self._ready: dict[Key, bool] = {}
        self._outcomes: dict[Key, Outcome] = {}
        self._running: set[Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what kopf tells us -----------------------------------------------------------------

    def observed(self, kind: str, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """Track the latest body of every watched resource (kopf event handler)."""
        key = _key(kind, body)
        if deleted:
            for store in (self._bodies, self._due, self._refs, self._ready, self._outcomes):
                store.pop(key, None)
            self.protocol.forget(key)
        else:
            self._bodies[key] = body
            self._due.setdefault(key, time.monotonic() + self.ctx.settings.resync_interval)
        metrics.KNOWN.labels(kind).set(sum(1 for k in self._bodies if k[0] == kind))
        metrics.READY.labels(kind).set(
            sum(1 for k, ok in self._ready.items() if ok and k[0] == kind)
        )

    def referenced_changed(self, namespace: str, ref_kind: str, name: str) -> None:
        """A ConfigMap or Secret changed: make the resources that read it due now."""
        now = time.monotonic()
        for key, refs in self._refs.items():
            if key[1] == namespace and (ref_kind, name) in refs:
                self._due[key] = now

    # -- one reconcile ----------------------------------------------------------------------

    async def reconcile(self, kind: str, body: Mapping[str, Any]) -> Outcome:
        """Reconcile one object now; a transient failure is retried in the background."""
        key = _key(kind, body)
        await self.protocol.apply(key, body)
        outcome = self._outcomes.pop(key, None)
        return outcome or Outcome(self.reconcilers[kind].status_model())

    async def _reconcile_fresh(self, key: Key, body: Mapping[str, Any]) -> None:
        """The protocol's handler (under the key's lock): raise Retry when it wants another go."""
        kind = key[0]
        # Read again under the lock: a reconcile that ran meanwhile changed the status,
        # and deciding from the older one would post its events twice.
        fresh = await self.ctx.kube.get(kube.Kind.of(self.reconcilers[kind].model), *key[1:])
        if fresh is None:  # deleted meanwhile: nothing to reconcile or report on
            self.observed(kind, body, deleted=True)
            return
        self._bodies[key] = fresh
        outcome = await self._reconcile(kind, fresh)
        self._outcomes[key] = outcome
        self._refs[key] = outcome.references
        interval = outcome.resync_after or self.ctx.settings.resync_interval
        self._due[key] = time.monotonic() + interval
        if outcome.retry:
            raise reconcile.Retry(_ready_message(outcome.status))

    async def _reconcile(self, kind: str, body: Mapping[str, Any]) -> Outcome:
        meta = body.get("metadata", {})
        with self.tracer.start_as_current_span(
            f"reconcile {kind}",
            attributes={
                "k8s.namespace.name": meta.get("namespace", ""),
                "llm_infra.resource.kind": kind,
                "llm_infra.resource.name": meta.get("name", ""),
                "llm_infra.resource.generation": meta.get("generation") or 0,
            },
        ) as span:
            outcome, result = await self._decide_and_apply(kind, body)
            span.set_attribute("llm_infra.reconcile.result", result)
            if result in ("error", "invalid") or outcome.retry:
                span.set_status(trace.StatusCode.ERROR, _ready_message(outcome.status))
            return outcome

    async def _decide_and_apply(self, kind: str, body: Mapping[str, Any]) -> tuple[Outcome, str]:
        reconciler = self.reconcilers[kind]
        meta = body.get("metadata", {})
        generation = meta.get("generation")
        previous = _previous_status(reconciler.status_model, body)
        conditions = StatusConditions(previous.conditions, generation)
        started = time.perf_counter()
        try:
            obj = reconciler.model.model_validate(body)
        except pydantic.ValidationError as exc:
            # The CRD schema and CEL refuse most of this; what is left (e.g. a CRD older than
            # the operator) is reported, not retried: only a spec change can fix it.
            problems = errors.validation_text(exc)  # never the input: it may hold secrets
            conditions.set("SpecValid", False, "InvalidSpec", f"{problems}: fix the manifest")
            conditions.ready("InvalidSpec")
            outcome = Outcome(previous.model_copy())
            result = "invalid"
        else:
            try:
                outcome = await reconciler.reconcile(obj, body, conditions)
                result = "retry" if outcome.retry else "ok"
            except errors.InfraError as exc:
                _log.warning("%s %s/%s: %s", kind, meta.get("namespace"), meta.get("name"), exc)
                conditions.set(READY, False, _reason(exc), str(exc))
                outcome = Outcome(previous.model_copy(), retry=exc.is_retryable())
                result = "retry" if outcome.retry else "error"
            except Exception as exc:  # noqa: BLE001 - a bug of ours: report it, stay up, retry
                _log.exception("%s %s/%s failed", kind, meta.get("namespace"), meta.get("name"))
                conditions.set(
                    READY, False, "InternalError", f"operator error: {type(exc).__name__}"
                )
                outcome = Outcome(previous.model_copy(), retry=True)
                result = "retry"
        metrics.DURATION.labels(kind).observe(time.perf_counter() - started)
        metrics.RECONCILES.labels(kind, result).inc()
        outcome.status.observed_generation = generation
        outcome.status.conditions = conditions.conditions
        ready = next((c for c in outcome.status.conditions if c.type == READY), None)
        self._ready[_key(kind, body)] = ready is not None and ready.status == "True"
        if ready is not None and ready.status != "True":
            metrics.ERRORS.labels(kind, ready.reason).inc()
        await self._record(reconciler.model, body, previous, outcome, conditions)
        return outcome, result

    async def _record(
        self,
        model: type[Resource],
        body: Mapping[str, Any],
        previous: ResourceStatus,
        outcome: Outcome,
        conditions: StatusConditions,
    ) -> None:
        # Events first: a condition that shows its change has its event posted already.
        for event in [*conditions.transitions(), *outcome.events]:
            await self.ctx.kube.post_event(body, event.type, event.reason, event.message)
        new = outcome.status.to_wire()
        old = previous.to_wire()
        if new != old:
            meta = body["metadata"]
            # Deleted meanwhile (404): nothing is left to report on.
            await self.ctx.kube.patch(
                kube.Kind.of(model),
                meta["namespace"],
                meta["name"],
                {"status": jsondoc.merge_patch_diff(old, new)},
                status=True,
                missing_ok=True,
            )

    async def finalize(self, kind: str, body: Mapping[str, Any]) -> str:
        """Run the deletion policy until it succeeds (the finalizer stays meanwhile)."""
        key = _key(kind, body)
        done: list[str] = []

        async def attempt(key: Key, stale: Mapping[str, Any]) -> None:
            # The spec may change while the object waits (deleteUndelivered): read it fresh.
            model = self.reconcilers[kind].model
            current = await self.ctx.kube.get(kube.Kind.of(model), key[1], key[2]) or stale
            done.append(await self._finalize_once(kind, current))

        await self.protocol.settle(key, body, attempt)
        return done[-1]

    async def _finalize_once(self, kind: str, body: Mapping[str, Any]) -> str:
        reconciler = self.reconcilers[kind]
        obj = reconciler.model.model_validate(body)
        try:
            done = await reconciler.finalize(obj, body)
        except errors.InfraError as exc:
            previous = _previous_status(reconciler.status_model, body)
            conditions = StatusConditions(previous.conditions, body["metadata"].get("generation"))
            conditions.set(READY, False, "DeletionBlocked", str(exc))
            outcome = Outcome(previous.model_copy())
            # Deleting bumps the generation of a custom resource: this is its status now.
            outcome.status.observed_generation = body["metadata"].get("generation")
            outcome.status.conditions = conditions.conditions
            await self._record(reconciler.model, body, previous, outcome, conditions)
            # Retried whatever the error: undelivered records or a spec that forbids it now
            # may change; the object waits with its finalizer.
            raise reconcile.Retry(f"deletion blocked: {exc.message}") from None
        await self.ctx.kube.post_event(body, "Normal", "Deleted", done)
        return done

    # -- the resync loop --------------------------------------------------------------------

    async def run(self, *, tick: float = 0.5) -> None:
        """Reconcile due resources until cancelled (started at operator startup)."""
        workers = asyncio.Semaphore(self.ctx.settings.workers)
        while True:
            now = time.monotonic()
            for key, due in list(self._due.items()):
                if due > now or key in self._running or key not in self._bodies:
                    continue
                if self.protocol.retrying(key):
                    continue  # its retry is the reconcile it is due for
                self._running.add(key)
                task = asyncio.create_task(self._resync(key, workers))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(tick)

    async def _resync(self, key: Key, workers: asyncio.Semaphore) -> None:
        try:
            async with workers:
                body = self._bodies.get(key)  # read again under the key's lock
                if body is None or body.get("metadata", {}).get("deletionTimestamp"):
                    return
                await self.reconcile(key[0], body)
        except Exception:  # noqa: BLE001 - keep the loop alive whatever one resource does
            _log.exception("resync of %s %s/%s failed", *key)
            self._due[key] = time.monotonic() + self.ctx.settings.retry_max
        finally:
            self._running.discard(key)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.protocol.aclose()


def _key(kind: str, body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return kind, meta["namespace"], meta["name"]


def _previous_status(status_model: type[ResourceStatus], body: Mapping[str, Any]) -> ResourceStatus:
    try:
        return status_model.model_validate(body.get("status") or {})
    except pydantic.ValidationError:  # a status an older operator wrote: start afresh
        return status_model()


def _reason(exc: errors.InfraError) -> str:
    """A CamelCase condition reason from the error class (VectorUnavailable, HttpTimeout...)."""
    return type(exc).__name__


def _ready_message(status: ResourceStatus) -> str:
    ready = next((c for c in status.conditions if c.type == READY), None)
    return f"{ready.reason}: {ready.message}" if ready else "not ready"


__all__ = ["Engine", "Outcome", "Reconciler"]
