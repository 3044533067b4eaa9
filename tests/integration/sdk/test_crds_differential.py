"""The API server and the models judge manifests alike: a differential, property-based test.

Hypothesis draws manifests of each kind, valid and near-valid (tests/differential.py
says how); each is created on the real API server with dryRun=All (one HTTP call,
nothing stored) and parsed by the models as the operator parses an object. Any
difference fails: one accepts what the other refuses, or the API server's refusal
does not name a field the models name. Seeded (`derandomize`), so CI runs the same
cases each time: `CASES` in all, a quarter per kind. Locally,
LLM_INFRA_DIFFERENTIAL_CASES=20000 runs more, and LLM_INFRA_DIFFERENTIAL_SEED=<n>
draws other cases than CI's. What a run found is kept as fixed cases, files named
differential-*: refused manifests in tests/data/invalid/, accepted ones in
tests/data/valid/ (tests/integration/sdk/test_crds.py and tests/unit/sdk/test_api_models.py
read both).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import yaml

from llm_infra.api import v1alpha1
from llm_infra.api._resource import Resource
from tests import differential
from tests.corpus import REPO
from tests.servers.kube import KubeServer

CASES = int(os.environ.get("LLM_INFRA_DIFFERENTIAL_CASES", "1000"))
SEED = os.environ.get("LLM_INFRA_DIFFERENTIAL_SEED")


class ApiServer:
    """The test API server as the differential judge: dry-run creates in one namespace."""

    def __init__(self, http: httpx.Client, namespace: str) -> None:
        self.http = http
        self.namespace = namespace

    def verdict(self, kind: type[Resource], manifest: dict[str, Any]) -> differential.Verdict:
        return differential.server_verdict(self.http, self.namespace, kind, manifest)


@pytest.fixture(scope="module")
def api_server(kube: KubeServer) -> Iterator[ApiServer]:
    kube.install_crds(REPO / "crds", *(f"crd/{kind.crd.crd_name}" for kind in v1alpha1.KINDS))
    namespace = "differential"
    kube.kubectl("create", "namespace", namespace)
    user = yaml.safe_load(kube.kubeconfig.read_text())["users"][0]["user"]
    context = ssl.create_default_context(cafile=kube.ca_file)
    context.load_cert_chain(user["client-certificate"], user["client-key"])
    with httpx.Client(base_url=kube.url, verify=context, timeout=30.0) as http:
        yield ApiServer(http, namespace)


def _settings() -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=-(-CASES // len(v1alpha1.KINDS)),
        derandomize=SEED is None,
        database=None,  # the same cases on every machine; a failure is kept in tests/data/
        deadline=None,  # an API server call takes what it takes
        # Drawing a whole manifest is slow by hypothesis' measure, and large by design.
        suppress_health_check=[
            hypothesis.HealthCheck.too_slow,
            hypothesis.HealthCheck.data_too_large,
        ],
        print_blob=False,
    )


def _judge(api_server: ApiServer, case: differential.Case) -> None:
    server = api_server.verdict(case.kind, case.manifest)
    models = differential.models_verdict(case.kind, case.manifest)
    hypothesis.event(
        f"{case.mutation.split(' at ')[0]}: {'accepted' if models.accepted else 'refused'}"
    )
    report = differential.disagreement(case, server, models)
    assert report is None, report


@pytest.mark.timeout(max(300, CASES // 5))
@pytest.mark.parametrize("kind", v1alpha1.KINDS, ids=lambda k: k.crd.kind)
def test_api_server_and_models_agree(api_server: ApiServer, kind: type[Resource]) -> None:
    @_settings()
    @hypothesis.given(differential.cases(kind))
    def agree(case: differential.Case) -> None:
        _judge(api_server, case)

    if SEED is not None:
        agree = hypothesis.seed(int(SEED))(agree)
    agree()
