"""The control plane's Kubernetes feeds, pure parts: rebuilding what was written, and RBAC.

The documents are rendered with the SDK functions the operator renders them
with (`config.split_sensitive`, `config.render`, `router.compile_route`), so a
change on the writing side that the reading side does not follow fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_infra import config, errors, kube, router
from llm_infra.api.v1alpha1 import Route
from llm_infra.api.v1alpha1.auditsink import AuditSinkSpec
from llm_infra.api.v1alpha1.configsource import Target
from llm_infra_controlplane.audit.service import AuditService
from llm_infra_controlplane.configs.store import ConfigStore
from llm_infra_controlplane.feeds import documents, rbac
from llm_infra_controlplane.feeds.feeds import Feeds
from llm_infra_controlplane.vectors.registry import CollectionRegistry

REPO = Path(__file__).resolve().parents[3]

DOCUMENT: dict[str, Any] = {
    "db": {"host": "db.internal", "port": 5432, "password": "s3cret", "options": None},
    "features": ["a", "b"],
    "name": "app",
}
SENSITIVE = ["/db/password", "/db/options"]


def _outputs(target_format: str) -> tuple[dict[str, str], dict[str, str], str]:
    """(ConfigMap data, Secret data, content hash) as the operator writes them for DOCUMENT."""
    target = Target.model_validate({"format": target_format})
    plain, sensitive = config.split_sensitive(DOCUMENT, SENSITIVE)
    return (
        config.render(plain, target),
        config.render(sensitive, target),
        config.content_hash(DOCUMENT),
    )


# -- ConfigSource outputs ----------------------------------------------------------------------


@pytest.mark.parametrize("target_format", ["json", "yaml"])
def test_document_formats_merge_the_sensitive_part_back(target_format: str) -> None:
    plain, secret, content_hash = _outputs(target_format)
    assert "s3cret" not in next(iter(plain.values()))
    rebuilt = documents.rebuild_document(plain, secret, content_hash)
    assert rebuilt == DOCUMENT  # the null sensitive value comes back too
    assert config.content_hash(rebuilt) == content_hash


@pytest.mark.parametrize("target_format", ["json", "yaml"])
def test_document_without_its_sensitive_part_is_not_served(target_format: str) -> None:
    plain, _, content_hash = _outputs(target_format)
    with pytest.raises(errors.ConfigError, match="Secret with its sensitive part") as caught:
        documents.rebuild_document(plain, None, content_hash)
    assert caught.value.key == documents.HASH_ANNOTATION
    assert "s3cret" not in str(caught.value)


def test_document_with_a_stale_part_or_edited_text_is_not_served() -> None:
    plain, secret, content_hash = _outputs("json")
    stale = {k: v.replace("s3cret", "older") for k, v in secret.items()}
    with pytest.raises(errors.ConfigError):
        documents.rebuild_document(plain, stale, content_hash)
    edited = {k: v.replace("db.internal", "elsewhere") for k, v in plain.items()}
    with pytest.raises(errors.ConfigError):
        documents.rebuild_document(edited, secret, content_hash)


def test_document_without_sensitive_keys_needs_no_secret() -> None:
    target = Target.model_validate({"format": "yaml", "key": "app.yaml"})
    document = {"a": {"b": 1}}
    plain = config.render(document, target)
    rebuilt = documents.rebuild_document(plain, None, config.content_hash(document))
    assert rebuilt == document


def test_env_serves_the_flat_mapping_with_its_secret() -> None:
    plain, secret, content_hash = _outputs("env")
    assert "DB_PASSWORD" in secret
    rebuilt = documents.rebuild_document(plain, secret, content_hash, secret_pending=True)
    assert rebuilt == {**plain, **secret}
    assert rebuilt["DB_PASSWORD"] == "s3cret"
    assert rebuilt["FEATURES"] == '["a", "b"]'
    assert rebuilt["DB_PORT"] == "5432"


def test_env_waits_for_a_pending_secret() -> None:
    plain, _, content_hash = _outputs("env")
    with pytest.raises(errors.ConfigError, match="not written for this version"):
        documents.rebuild_document(plain, None, content_hash, secret_pending=True)
    # No Secret announced or present: nothing is sensitive.
    assert documents.rebuild_document(plain, None, content_hash) == plain


# -- route tables and AuditSink references -----------------------------------------------------


def _table() -> router.RouteTable:
    manifest = yaml.safe_load((REPO / "examples" / "route-chat.yaml").read_text())
    route = Route.model_validate(manifest)
    return router.compile_route("default", "chat", route.spec, generation=3)


def test_route_table_is_checked_against_its_hash() -> None:
    table = _table()
    data = {router.ROUTE_TABLE_KEY: table.to_json()}
    annotations = {documents.TABLE_HASH_ANNOTATION: table.version}
    assert documents.check_route_table(data, annotations) == table
    with pytest.raises(errors.ConfigError, match="differs"):
        documents.check_route_table(data, {documents.TABLE_HASH_ANNOTATION: "0" * 64})
    edited = table.to_json().replace('"generation":3', '"generation":4')
    with pytest.raises(errors.ConfigError, match="differs"):
        documents.check_route_table({router.ROUTE_TABLE_KEY: edited}, annotations)
    with pytest.raises(errors.ConfigError, match=r"route\.json"):
        documents.check_route_table({}, annotations)


def test_sink_secret_names_lists_every_reference() -> None:
    spec = AuditSinkSpec.model_validate(
        {
            "sinks": [
                {"name": "f", "file": {"path": "/var/audit/a.jsonl"}},
                {
                    "name": "w",
                    "webhook": {
                        "url": "https://hooks.example/a",
                        "secretRef": {"name": "hmac", "key": "k"},
                        "caSecretRef": {"name": "ca", "key": "ca.crt"},
                    },
                },
                {
                    "name": "o",
                    "objectStore": {"url": "s3://b", "credentialsSecretRef": {"name": "s3"}},
                },
            ],
            "tamperEvidence": {"signingKeySecretRef": {"name": "signing", "key": "key.pem"}},
        }
    )
    assert documents.sink_secret_names(spec) == ["ca", "hmac", "s3", "signing"]


# -- RBAC: generated, read-only, covering every feed --------------------------------------------


def test_the_rbac_file_on_disk_is_freshly_generated() -> None:
    on_disk = (REPO / "charts/llm-infra/files/controlplane-rbac.yaml").read_text()
    assert on_disk == rbac.render(), "controlplane-rbac.yaml is stale: run `make generate`"


def test_both_roles_only_read() -> None:
    roles = list(yaml.safe_load_all(rbac.render()))
    assert [r["metadata"]["name"] for r in roles] == [rbac.CLUSTER_ROLE, rbac.NAMESPACE_ROLE]
    for role in roles:
        assert role["kind"] == "ClusterRole"
        assert role["rules"] == rbac.rules()
        verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
        assert verbs == {"get", "list", "watch"}  # no writes at all
    # Secrets: get by name only; never listed or watched, so never enumerated.
    by_resource = {rule["resources"][0]: rule["verbs"] for rule in rbac.rules()}
    assert by_resource["secrets"] == ["get"]
    getters = [rule["resources"] for rule in rbac.rules() if "get" in rule["verbs"]]
    assert getters == [["secrets"]]


async def test_every_informer_of_the_feeds_is_granted_list_and_watch(tmp_path: Path) -> None:
    client = kube.Kube(kube.Credentials(server="https://127.0.0.1:1"), component="test")
    feeds = Feeds(
        client,
        configs=ConfigStore(),
        audit=AuditService(None, owns_streams=False),
        collections=CollectionRegistry(tmp_path),
        sink_root=tmp_path / "audit-sinks",
    )
    await client.aclose()
    granted = {(kind.group, kind.plural): set(verbs) for kind, verbs in rbac.GRANTS}
    for informer in feeds.informers:
        kind = informer.kind
        assert {"list", "watch"} <= granted.get((kind.group, kind.plural), set()), informer.name
    # Nothing granted that no feed uses (least privilege), apart from get on Secrets.
    watched = {(i.kind.group, i.kind.plural) for i in feeds.informers}
    assert set(granted) - watched == {("", "secrets")}
