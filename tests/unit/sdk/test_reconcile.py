"""llm_infra.reconcile: dispatch by kind, failure bookkeeping, retries with backoff.

stamina runs in testing mode (no waits, a bounded number of attempts), so every
retry this module schedules ends within the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stamina

from llm_infra import errors, reconcile

KEY = ("Thing", "team-a", "one")


@pytest.fixture(autouse=True)
def _no_waits() -> Iterator[None]:
    stamina.set_testing(True, attempts=4)
    yield
    stamina.set_testing(False)


class Script:
    """A handler answering each call with the next step: None (works) or an exception."""

    def __init__(self, *steps: BaseException | None) -> None:
        self.steps = list(steps)
        self.calls: list[tuple[reconcile.Key, str]] = []

    async def __call__(self, key: reconcile.Key, obj: str) -> None:
        self.calls.append((key, obj))
        step = self.steps.pop(0) if self.steps else None
        if step is not None:
            raise step


def _reconciler(
    apply: Script, remove: Script | None = None
) -> tuple[reconcile.Reconciler[str], list[tuple[str, bool]]]:
    reports: list[tuple[str, bool]] = []
    rec: reconcile.Reconciler[str] = reconcile.Reconciler(
        "test", report=lambda key, message, failed: reports.append((message, failed))
    )
    rec.register("Thing", apply=apply, remove=remove)
    return rec, reports


async def test_dispatch_by_kind_and_an_unknown_kind_is_a_bug() -> None:
    apply = Script()
    rec, _ = _reconciler(apply)
    assert await rec.apply(KEY, "v1") is True
    assert apply.calls == [(KEY, "v1")]
    with pytest.raises(errors.UnexpectedError, match="no handler for kind Other"):
        await rec.apply(("Other", "ns", "x"), "v1")


async def test_a_retryable_failure_is_retried_until_it_works_and_reported_once() -> None:
    down = errors.VectorUnavailable("qdrant is down")
    apply = Script(down, down, None)
    rec, reports = _reconciler(apply)
    assert await rec.apply(KEY, "v1") is False
    assert rec.retrying(KEY)
    await rec.idle()
    assert len(apply.calls) == 3
    assert rec.failures == {}
    # Said once though it failed twice; then the recovery.
    assert reports == [("qdrant is down", True), ("recovered after 2 failed attempts", False)]


async def test_what_waiting_cannot_fix_is_recorded_not_retried() -> None:
    apply = Script(errors.ConfigError("bad key", key="x"))
    rec, reports = _reconciler(apply)
    assert await rec.apply(KEY, "v1") is False
    assert not rec.retrying(KEY)
    assert rec.failures[KEY].message == "bad key"
    assert rec.failures[KEY].retrying is False
    assert reports == [("bad key", True)]


async def test_a_newer_declaration_replaces_a_pending_retry() -> None:
    stamina.set_testing(False)  # a real wait: the retry is still pending when v2 comes
    down = errors.VectorUnavailable("down")
    apply = Script(down)
    rec, _ = _reconciler(apply)
    rec.backoff = reconcile.Backoff(initial=60.0)
    await rec.apply(KEY, "v1")
    assert rec.retrying(KEY)
    assert await rec.apply(KEY, "v2") is True
    assert not rec.retrying(KEY)
    assert [obj for _, obj in apply.calls] == ["v1", "v2"]
    await rec.aclose()


async def test_a_bug_is_retried_and_reported_by_its_type_only() -> None:
    apply = Script(RuntimeError("password=hunter2"))
    rec, reports = _reconciler(apply)
    assert await rec.apply(KEY, "v1") is False
    assert reports == [("internal error: RuntimeError", True)]
    assert "hunter2" not in rec.failures[KEY].message


async def test_settle_retries_inline_and_raises_what_cannot_wait() -> None:
    rec, _ = _reconciler(Script())
    blocked = Script(reconcile.Retry("sinks behind"), None)
    await rec.settle(KEY, "v1", blocked)
    assert len(blocked.calls) == 2
    refused = Script(errors.ConfigError("never", key="x"))
    with pytest.raises(errors.ConfigError):
        await rec.settle(KEY, "v1", refused)


async def test_remove_runs_the_kinds_remover_and_forgets_the_key() -> None:
    remove = Script()
    rec, _ = _reconciler(Script(errors.ConfigError("bad", key="x")), remove)
    await rec.apply(KEY, "v1")
    assert KEY in rec.failures
    assert await rec.remove(KEY, "v1") is True
    assert remove.calls == [(KEY, "v1")]
    rec.forget(KEY)
    assert rec.failures == {}
