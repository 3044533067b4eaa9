"""schemathesis as a tenant: generated requests and linked call sequences with a real API key.

The tenant is admin-a of the suite's `llm-infra up` (tests/security/conftest.py),
with admin on namespace ``team-a`` only; namespaces ``team-a`` and ``team-b``
both hold one object of each kind from the server's resources folder
(collection ``docs``, config ``app``, audit sink ``trail``). The server is a
process of its own: hypothesis watches the global `random` module while it
draws, and a server thread in this process (stamina's jitter) would change it
under the draw. Two runs:

- **stateless**: every operation's generated cases, each answer as the document
  declares it (tests/integration/controlplane/test_openapi_fuzz.py does the same
  with authentication off), and no request naming another namespace succeeds;
- **stateful**: schemathesis' state machine walks the document's OpenAPI links
  (web/links.py): upsert into a missing collection, create it, upsert, read a
  point back, delete it, read it again, drop the collection, read it again,
  append audit events and verify them. Besides conformance it checks that a
  deleted object answers 404 (`use_after_free`), that a created one is there
  (`ensure_resource_availability`), that each operation refuses a request with
  no or bad credentials (`ignored_auth`), and it replays every step as the same
  tenant into ``team-b``, where the seeded objects of the same names exist: each
  replay must answer exactly 403, whatever its method, body or object (or what the
  original got, when the guard refused it before looking at any namespace).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
import yaml
from schemathesis import checks
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput

from llm_infra_controlplane.main import create_app
from llm_infra_controlplane.settings import Settings
from tests.integration.controlplane.test_openapi_fuzz import CHECKS, SEEDED
from tests.security.conftest import LIMITS, serving

TENANT = "admin-a"
NAMESPACE = "team-a"
"""The tenant's namespace: admin-a has admin there (conftest.RULES), nothing elsewhere."""
OTHER = "team-b"
EXAMPLES = 8
SCENARIOS = 60
"""Linked call sequences in the stateful run, each up to STEPS calls."""
STEPS = 8
RUNS = 10
REFUSED_BEFORE_AUTHORIZATION = {401, 413, 429, 431}
"""What web.guard and the server's protocol answer from the headers, before any namespace."""
"""Most state machine runs to reach SCENARIOS sequences (see the loop for why several)."""
DIMENSION = 2
"""The size of every collection the stateful run creates."""
# Checks that follow the sequence: a deleted object is gone, a created one is there, and
# no operation serves a request without valid credentials.
STATEFUL_CHECKS = [
    *CHECKS,
    checks.use_after_free,
    checks.ensure_resource_availability,
    checks.ignored_auth,
]


@schemathesis.check
def no_other_namespace(ctx: Any, response: Any, case: schemathesis.Case[Any]) -> None:
    namespace = case.path_parameters.get("namespace") if case.path_parameters else None
    if namespace not in (None, NAMESPACE) and response.status_code < 300:
        raise AssertionError(
            f"{case.operation.label} in namespace {namespace!r} answered"
            f" {response.status_code} to a tenant of {NAMESPACE!r} only"
        )


def _resources(folder: Path) -> Path:
    """The seeded objects, the same in the tenant's namespace and in OTHER."""
    api = "infra.llmdevops.io/v1alpha1"
    documents = []
    for namespace in (NAMESPACE, OTHER):
        meta = {"namespace": namespace}
        documents += [
            {"apiVersion": api, "kind": "VectorCollection",
             "metadata": {"name": SEEDED["collections"], **meta},
             "spec": {"vectors": {"size": 4, "distance": "Cosine"}}},
            {"apiVersion": api, "kind": "ConfigSource",
             "metadata": {"name": SEEDED["configs"], **meta},
             "spec": {"layers": [{"name": "base", "inline": {"model": "gpt-4o-mini"}}]}},
            {"apiVersion": api, "kind": "AuditSink",
             "metadata": {"name": SEEDED["auditsinks"], **meta},
             "spec": {"stream": {"storage": "memory"},
                      "sinks": [{"name": "file", "file": {"path": "/a.jsonl"}}]}},
        ]  # fmt: skip
    folder.mkdir()
    (folder / "seeded.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, the tenant's key): `llm-infra up` with the seeded resources."""
    workdir = tmp_path_factory.mktemp("cp-fuzz-tenant")
    with serving(workdir, LIMITS, resources=_resources(workdir / "resources")) as server:
        configs = f"/v1/namespaces/{NAMESPACE}/configs/{SEEDED['configs']}"
        with httpx.Client(base_url=server.url, headers=server.headers(TENANT)) as http:
            # Applied at start: the seeded config is served once the folder is.
            assert http.get(configs).status_code == 200
        yield server.url, server.keys[TENANT]


schema = schemathesis.openapi.from_dict(
    create_app(Settings(standalone_admin_key=False)).openapi(),
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
            # The stateful run walks the document's own links, none that schemathesis infers.
            "phases": {
                "coverage": {"enabled": False},
                "stateful": {"inference": {"algorithms": []}},
            },
        }
    ),
).exclude(path_regex=r"/watch$")  # streams until the client goes away


@schema.parametrize()
def test_a_tenant_gets_conforming_answers_and_no_other_namespace(
    case: schemathesis.Case[Any], tenant: tuple[str, str]
) -> None:
    base_url, key = tenant
    headers = {"Authorization": f"Bearer {key}"}
    case.call_and_validate(base_url, headers=headers, checks=[*CHECKS, no_other_namespace])
    if case.path_parameters and "namespace" in case.path_parameters:
        # Once more inside the tenant's namespace: the calls it may make must conform too.
        case.path_parameters = {**case.path_parameters, "namespace": NAMESPACE}
        case.call_and_validate(base_url, headers=headers, checks=[*CHECKS, no_other_namespace])


def _kind(case: schemathesis.Case[Any]) -> str:
    return case.path.split("/")[4]  # /v1/namespaces/{namespace}/<kind>/...


def _fit_to_collection(case: schemathesis.Case[Any]) -> None:
    """Make a generated collection spec or upsert one the engine takes, so sequences go on.

    The document cannot say what makes a spec valid across fields (exactly one of
    vectors or namedVectors, ...) nor that vectors must have the collection's
    size, so almost no generated spec or upsert would be accepted: a spec is
    replaced by a small valid one (its collectionName stays as generated) and
    each generated vector is cut or padded to DIMENSION. The stateless run
    sends the bodies as generated.
    """
    body: Any = case.body
    if case.method == "PUT" and isinstance(body, dict):
        case.body = {**body, "spec": {"vectors": {"size": DIMENSION, "distance": "Dot"}}}
    elif case.path.endswith("/points") and isinstance(body, dict):
        points = body.get("points")
        for point in points if isinstance(points, list) else ():
            vector = point.get("vector") if isinstance(point, dict) else None
            if isinstance(vector, list):
                point["vector"] = (vector + [0.5] * DIMENSION)[:DIMENSION]


def test_linked_sequences_as_a_tenant_conform_and_never_reach_another_namespace(
    tenant: tuple[str, str],
) -> None:
    base_url, key = tenant
    headers = {"Authorization": f"Bearer {key}"}
    answered: collections.Counter[tuple[str, int, bool]] = collections.Counter()
    replays: list[tuple[str, int]] = []
    # The first failure as it happened: hypothesis replays a failing sequence to report it,
    # and against a server that kept its state that replay draws other data and says "flaky".
    failures: list[BaseException] = []

    class Tenant(schema.as_state_machine()):  # type: ignore[misc]  # built from the document
        def step(self, input: StepInput) -> StepOutput:
            case = input.case
            if input.transition is None:
                # A sequence starts in the tenant's namespace; audit sinks come from AuditSink
                # resources, not from this API, so an audit sequence starts at the seeded one.
                case.path_parameters["namespace"] = NAMESPACE
                if _kind(case) == "auditsinks":
                    case.path_parameters["name"] = SEEDED["auditsinks"]
            _fit_to_collection(case)
            output = super().step(input)
            linked = input.transition is not None
            answered[case.operation.label, output.response.status_code, linked] += 1
            return output

        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"base_url": base_url, "headers": headers}

        def validate_response(
            self,
            response: Any,
            case: schemathesis.Case[Any],
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            try:
                case.validate_response(
                    response,
                    checks=[*STATEFUL_CHECKS, no_other_namespace],
                    headers=headers,
                    transport_kwargs=kwargs,
                    recorder=self.recorder,
                )
                # The same request, same credentials, into the other tenant's namespace:
                # refused for its namespace (403), unless the guard refused it before any
                # namespace is looked at (no credentials, too large, too many failures):
                # then the same status both times.
                replay = case.derive(keep_auth=True)
                replay.path_parameters["namespace"] = OTHER
                status = replay.call(base_url=base_url, headers=headers).status_code
                before = response.status_code in REFUSED_BEFORE_AUTHORIZATION
                expected = response.status_code if before else 403
                replays.append((case.operation.label, status))
                assert status == expected, f"{case.operation.label} into {OTHER!r}: {status}"
            except BaseException as failure:
                failures.append(failure)
                raise

    scenarios = 0

    class Counted(Tenant):
        def teardown(self) -> None:
            nonlocal scenarios
            scenarios += 1
            super().teardown()

    settings = hypothesis.settings(
        max_examples=SCENARIOS,
        stateful_step_count=STEPS,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        # The server keeps its state between sequences, so a replayed sequence (shrinking)
        # would meet other answers: the first failing sequence is reported as it ran.
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    for _ in range(RUNS):
        try:
            Counted.run(settings=settings)
        except hypothesis.errors.FlakyStrategyDefinition:
            # Hypothesis met a sequence prefix it had drawn before and the server (whose
            # state moved on) offered other links this time. Not a failure of the API: a
            # new run goes on, as schemathesis' own runner does.
            if failures:
                raise failures[0] from None
        except BaseException:
            if failures:
                raise failures[0] from None
            raise
        if scenarios >= SCENARIOS:
            break
    assert scenarios >= SCENARIOS, f"{scenarios} sequences in {RUNS} runs"
    # The run walked the links it is meant to walk (not only refusals), and each call it made
    # was replayed into the other namespace.
    linked_ok = {label for label, status, linked in answered if linked and status < 300}
    assert {
        "GET /v1/namespaces/{namespace}/configs/{name}",
        "GET /v1/namespaces/{namespace}/auditsinks/{name}/status",
    } <= linked_ok, sorted(linked_ok)
    assert any("/collections/" in label for label in linked_ok), sorted(linked_ok)
    assert len(replays) == sum(answered.values())
