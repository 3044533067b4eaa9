"""How `ControlPlaneClient` sends: retryable answers retried within the policy, others raised."""

from __future__ import annotations

import httpx
import orjson
import pytest

from llm_infra import errors, http
from llm_infra.client import NO_RETRY, ControlPlaneClient

QUICK = http.RetryPolicy(attempts=4, wait_initial=0.0, wait_max=1.0, jitter=0.0, total_timeout=5.0)


def _problem(error: errors.InfraError) -> httpx.Response:
    body = error.to_problem().model_dump(mode="json", exclude_none=True)
    headers = {"Content-Type": "application/problem+json"}
    if (wait := error.retry_after()) is not None:
        headers["Retry-After"] = str(int(wait))
    return httpx.Response(error.status, content=orjson.dumps(body), headers=headers)


def _verified() -> httpx.Response:
    return httpx.Response(200, json={"ok": True, "records": 3, "checkpoints": 0})


class _Script:
    """Answers requests in turn from a list; records what was asked."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _client(script: _Script, retry: http.RetryPolicy = QUICK) -> ControlPlaneClient:
    return ControlPlaneClient("http://cp", retry=retry, transport=httpx.MockTransport(script))


async def test_a_503_while_nats_reconnects_is_retried_after_its_retry_after() -> None:
    unavailable = errors.MessageQueueError("NATS is unreachable (reconnecting)", retry_after=0)
    script = _Script(_problem(unavailable), _problem(unavailable), _verified())
    async with _client(script) as cp:
        verification = await cp.verify_audit("team-a", "audit")
    assert verification.ok
    assert len(script.requests) == 3


async def test_a_refused_connection_is_retried() -> None:
    refused = httpx.ConnectError("connection refused")
    script = _Script(refused, _verified())
    async with _client(script) as cp:
        assert (await cp.verify_audit("team-a", "audit")).ok
    assert len(script.requests) == 2


async def test_the_last_retryable_error_is_raised_when_the_attempts_run_out() -> None:
    unavailable = errors.MessageQueueError("NATS is unreachable", retry_after=0)
    script = _Script(*[_problem(unavailable)] * QUICK.attempts)
    async with _client(script) as cp:
        with pytest.raises(errors.MessageQueueError, match="NATS is unreachable"):
            await cp.verify_audit("team-a", "audit")
    assert len(script.requests) == QUICK.attempts


async def test_a_retry_after_beyond_the_policy_is_raised_at_once_with_its_delay() -> None:
    unavailable = errors.MessageQueueError("NATS is unreachable", retry_after=30)
    script = _Script(_problem(unavailable), _verified())
    async with _client(script) as cp:
        with pytest.raises(errors.MessageQueueError) as raised:
            await cp.verify_audit("team-a", "audit")
    assert raised.value.retry_after() == 30
    assert len(script.requests) == 1


async def test_errors_that_are_no_outage_are_raised_without_a_retry() -> None:
    missing = errors.CollectionNotFound("no collection team-a/docs")
    script = _Script(_problem(missing), _verified())
    async with _client(script) as cp:
        with pytest.raises(errors.CollectionNotFound):
            await cp.collection_stats("team-a", "docs")
    assert len(script.requests) == 1


async def test_no_retry_makes_one_attempt() -> None:
    unavailable = errors.MessageQueueError("NATS is unreachable", retry_after=0)
    script = _Script(_problem(unavailable), _verified())
    async with _client(script, NO_RETRY) as cp:
        with pytest.raises(errors.MessageQueueError):
            await cp.verify_audit("team-a", "audit")
    assert len(script.requests) == 1


async def test_a_not_modified_config_is_none_not_an_error() -> None:
    script = _Script(httpx.Response(304, headers={"ETag": '"abc"'}))
    async with _client(script) as cp:
        assert await cp.get_config("team-a", "app", etag="abc") is None
    assert script.requests[0].headers["If-None-Match"] == '"abc"'


async def test_an_error_page_that_is_no_problem_document_is_raised_by_its_status() -> None:
    script = _Script(httpx.Response(403, text="<html>denied by the proxy</html>"))
    async with _client(script) as cp:
        with pytest.raises(errors.HttpStatusError) as raised:
            await cp.verify_audit("team-a", "audit")
    assert raised.value.status_code == 403
    assert len(script.requests) == 1
