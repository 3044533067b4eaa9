"""The reconcile loop around the per-kind reconcilers: one path for every trigger.

kopf calls `Engine.reconcile` on create, update (spec, labels, annotations:
the force-reconcile annotation too) and resume; the resync loop calls it when
a resource is due (drift checks, ConfigSource refresh intervals); a change to
a ConfigMap or Secret that a resource references makes that resource due at
once. All three run the same steps under one lock per resource:

  parse the body with the SDK model -> reconciler.reconcile (decide, apply)
  -> status with observedGeneration -> one Event per condition transition
  -> metrics -> when the failure is transient, kopf retries with backoff.

The resync loop is ours rather than kopf timers because kopf adds a finalizer
to every object a timer watches; finalizers stay where deletion must reach
outside Kubernetes (ARCHITECTURE.md, TOOLCHAIN-NOTES.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import pydantic

from llm_infra import errors
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


class RetryLater(Exception):  # noqa: N818 - a signal to kopf's caller, not an error of ours
    """Raised to kopf's handler wrapper: run this reconcile again after `delay` seconds."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


class Engine:
    """Runs reconciles for all kinds; one instance per operator process."""

    def __init__(self, ctx: Context, reconcilers: Mapping[str, Reconciler[Any]]) -> None:
        self.ctx = ctx
        self.reconcilers = dict(reconcilers)
        self._bodies: dict[Key, Mapping[str, Any]] = {}
        self._due: dict[Key, float] = {}
        self._refs: dict[Key, frozenset[Ref]] = {}
        self._ready: dict[Key, bool] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._running: set[Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what kopf tells us -----------------------------------------------------------------

    def observed(self, kind: str, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """Track the latest body of every watched resource (kopf event handler)."""
        key = _key(kind, body)
        if deleted:
            for store in (self._bodies, self._due, self._refs, self._ready, self._locks):
                store.pop(key, None)
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

    async def reconcile(self, kind: str, body: Mapping[str, Any], *, retry: int = 0) -> Outcome:
        """Reconcile one object; raise RetryLater when a transient failure wants a retry."""
        key = _key(kind, body)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            # Read again under the lock: a reconcile that ran meanwhile changed the status,
            # and deciding from the older one would post its events twice.
            fresh = await self.ctx.kube.resource(self.reconcilers[kind].model, key[1], key[2])
            if fresh is None:  # deleted meanwhile: nothing to reconcile or report on
                self.observed(kind, body, deleted=True)
                return Outcome(self.reconcilers[kind].status_model())
            self._bodies[key] = fresh
            outcome = await self._reconcile(kind, fresh)
        self._refs[key] = outcome.references
        interval = outcome.resync_after or self.ctx.settings.resync_interval
        self._due[key] = time.monotonic() + interval
        if outcome.retry:
            delay = min(self.ctx.settings.retry_max, self.ctx.settings.retry_initial * 2**retry)
            raise RetryLater(_ready_message(outcome.status), delay)
        return outcome

    async def _reconcile(self, kind: str, body: Mapping[str, Any]) -> Outcome:
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
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in exc.errors(include_input=False)  # the input may hold secrets
            )
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
        return outcome

    async def _record(
        self,
        model: type[Resource],
        body: Mapping[str, Any],
        previous: ResourceStatus,
        outcome: Outcome,
        conditions: StatusConditions,
    ) -> None:
        new = outcome.status.to_wire()
        old = previous.to_wire()
        if new != old:
            patch: dict[str, Any] = {k: None for k in old if k not in new}  # merge patch: drop
            patch.update(new)
            meta = body["metadata"]
            await self.ctx.kube.patch_status(model, meta["namespace"], meta["name"], patch)
        for event in [*conditions.transitions(), *outcome.events]:
            await self.ctx.kube.post_event(body, event.type, event.reason, event.message)

    async def finalize(self, kind: str, body: Mapping[str, Any], *, retry: int = 0) -> str:
        """Run the deletion policy; raise RetryLater (keeping the finalizer) until it succeeds."""
        reconciler = self.reconcilers[kind]
        obj = reconciler.model.model_validate(body)
        try:
            done = await reconciler.finalize(obj, body)
        except errors.InfraError as exc:
            delay = min(self.ctx.settings.retry_max, self.ctx.settings.retry_initial * 2**retry)
            previous = _previous_status(reconciler.status_model, body)
            conditions = StatusConditions(previous.conditions, body["metadata"].get("generation"))
            conditions.set(READY, False, "DeletionBlocked", str(exc))
            outcome = Outcome(previous.model_copy())
            # Deleting bumps the generation of a custom resource: this is its status now.
            outcome.status.observed_generation = body["metadata"].get("generation")
            outcome.status.conditions = conditions.conditions
            await self._record(reconciler.model, body, previous, outcome, conditions)
            raise RetryLater(f"deletion blocked: {exc}", delay) from None
        await self.ctx.kube.post_event(body, "Normal", "Deleted", done)
        return done

    # -- the resync loop --------------------------------------------------------------------

    async def run(self, *, tick: float = 0.5) -> None:
        """Reconcile due resources until cancelled (started at operator startup)."""
        workers = asyncio.Semaphore(self.ctx.settings.workers)
        while True:
            now = time.monotonic()
            for key, due in list(self._due.items()):
                if due <= now and key not in self._running and key in self._bodies:
                    self._running.add(key)
                    task = asyncio.create_task(self._resync(key, workers))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(tick)

    async def _resync(self, key: Key, workers: asyncio.Semaphore) -> None:
        try:
            async with workers:
                body = self._bodies.get(key)  # reconcile() reads it again under the lock
                if body is None or body.get("metadata", {}).get("deletionTimestamp"):
                    return
                with contextlib.suppress(RetryLater):  # next due time is already set
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


__all__ = ["Engine", "Outcome", "Reconciler", "RetryLater"]
