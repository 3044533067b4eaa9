"""The control plane's Kubernetes feeds, pure parts: credentials, rebuilding what was written.

The documents are rendered with the SDK functions the operator renders them
with (`config.split_sensitive`, `config.render`, `router.compile_route`), so a
change on the writing side that the reading side does not follow fails here.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_infra import config, errors, router
from llm_infra.api.v1alpha1 import AuditSink, Route
from llm_infra.api.v1alpha1.auditsink import AuditSinkSpec
from llm_infra.api.v1alpha1.configsource import Target
from llm_infra_controlplane import cluster, kube, rbac
from llm_infra_controlplane.audit_service import AuditService
from llm_infra_controlplane.collection_registry import CollectionRegistry
from llm_infra_controlplane.config_store import ConfigStore
from llm_infra_controlplane.settings import Settings

REPO = Path(__file__).resolve().parents[2]

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


# -- kubeconfig and service account ------------------------------------------------------------


def _kubeconfig(path: Path, users: list[dict[str, Any]], **extra: Any) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": "https://k8s.example:6443/", **extra}},
        ],
        "users": users,
        "contexts": [
            {"name": u["name"], "context": {"cluster": "c", "user": u["name"]}} for u in users
        ],
        "current-context": users[0]["name"] if users else "none",
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_kubeconfig_files_are_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    path = _kubeconfig(
        tmp_path / "config",
        [{"name": "me", "user": {"client-certificate": "me.crt", "client-key": "keys/me.key"}}],
        **{"certificate-authority": "ca.crt"},
    )
    credentials = kube.from_kubeconfig([path])
    assert credentials.server == "https://k8s.example:6443"
    assert credentials.ca_file == tmp_path / "ca.crt"
    assert credentials.cert_file == tmp_path / "me.crt"
    assert credentials.key_file == tmp_path / "keys" / "me.key"
    assert credentials.token is None


def test_kubeconfig_inline_data_and_token_stay_out_of_the_repr(tmp_path: Path) -> None:
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()
    path = _kubeconfig(
        tmp_path / "config",
        [{"name": "me", "user": {"token": "tok-123", "client-key-data": ca}}],
        **{"certificate-authority-data": ca},
    )
    credentials = kube.from_kubeconfig([path])
    assert credentials.ca_data == b"-----BEGIN CERTIFICATE-----"
    assert credentials.token == "tok-123"
    assert "tok-123" not in repr(credentials)
    assert "BEGIN" not in repr(credentials)


def test_kubeconfig_context_choice_and_merge_order(tmp_path: Path) -> None:
    first = _kubeconfig(tmp_path / "a", [{"name": "one", "user": {"token": "first"}}])
    second = _kubeconfig(
        tmp_path / "b",
        [{"name": "one", "user": {"token": "second"}}, {"name": "two", "user": {"token": "2"}}],
    )
    # The first file to set a value wins, as kubectl merges $KUBECONFIG.
    assert kube.from_kubeconfig([first, second]).token == "first"
    assert kube.from_kubeconfig([first, second], context="two").token == "2"
    environ = {"KUBECONFIG": f"{tmp_path / 'missing'}:{second}:{first}"}
    assert kube.load_credentials(environ=environ).token == "second"
    # The settings' path comes before $KUBECONFIG.
    assert kube.load_credentials(first, environ=environ).token == "first"


def test_kubeconfig_problems_name_the_fix(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path / "config", [{"name": "me", "user": {"exec": {"command": "x"}}}])
    with pytest.raises(errors.ConfigError, match="exec or auth-provider"):
        kube.from_kubeconfig([path])
    with pytest.raises(errors.ConfigError, match="context 'other' not found") as caught:
        kube.from_kubeconfig([path], context="other")
    assert caught.value.key == "current-context"
    with pytest.raises(errors.ConfigError, match="not found: fix the path"):
        kube.from_kubeconfig([tmp_path / "nowhere"])


def test_in_cluster_uses_the_mounted_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "ca.crt").write_text("ca")
    environ = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    credentials = kube.in_cluster(environ, tmp_path)
    assert credentials is not None
    assert credentials.server == "https://[fd00::1]:443"
    assert credentials.ca_file == tmp_path / "ca.crt"
    assert credentials.token_file == tmp_path / "token"
    assert kube.in_cluster({}, tmp_path) is None


def test_token_file_is_read_again_when_it_rotates(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    auth = kube.TokenAuth(None, token)
    assert auth.current() == "first"
    token.write_text("second-and-longer\n")
    assert auth.current() == "second-and-longer"
    token.unlink()  # mid-rotation: the last token read still serves
    assert auth.current() == "second-and-longer"


def test_kind_paths_and_rbac_rules() -> None:
    assert kube.CONFIGMAPS.path(None) == "/api/v1/configmaps"
    assert kube.SECRETS.path("ns", "s") == "/api/v1/namespaces/ns/secrets/s"
    sinks = kube.Kind.of(AuditSink)
    assert sinks.path("ns") == "/apis/infra.llmdevops.io/v1alpha1/namespaces/ns/auditsinks"
    assert sinks.rule("watch") == (
        'apiGroups: ["infra.llmdevops.io"], resources: [auditsinks], verbs: [watch]'
    )


# -- ConfigSource outputs ----------------------------------------------------------------------


@pytest.mark.parametrize("target_format", ["json", "yaml"])
def test_document_formats_merge_the_sensitive_part_back(target_format: str) -> None:
    plain, secret, content_hash = _outputs(target_format)
    assert "s3cret" not in next(iter(plain.values()))
    rebuilt = cluster.rebuild_document(plain, secret, content_hash)
    assert rebuilt == DOCUMENT  # the null sensitive value comes back too
    assert config.content_hash(rebuilt) == content_hash


@pytest.mark.parametrize("target_format", ["json", "yaml"])
def test_document_without_its_sensitive_part_is_not_served(target_format: str) -> None:
    plain, _, content_hash = _outputs(target_format)
    with pytest.raises(errors.ConfigError, match="Secret with its sensitive part") as caught:
        cluster.rebuild_document(plain, None, content_hash)
    assert caught.value.key == cluster.HASH_ANNOTATION
    assert "s3cret" not in str(caught.value)


def test_document_with_a_stale_part_or_edited_text_is_not_served() -> None:
    plain, secret, content_hash = _outputs("json")
    stale = {k: v.replace("s3cret", "older") for k, v in secret.items()}
    with pytest.raises(errors.ConfigError):
        cluster.rebuild_document(plain, stale, content_hash)
    edited = {k: v.replace("db.internal", "elsewhere") for k, v in plain.items()}
    with pytest.raises(errors.ConfigError):
        cluster.rebuild_document(edited, secret, content_hash)


def test_document_without_sensitive_keys_needs_no_secret() -> None:
    target = Target.model_validate({"format": "yaml", "key": "app.yaml"})
    document = {"a": {"b": 1}}
    plain = config.render(document, target)
    rebuilt = cluster.rebuild_document(plain, None, config.content_hash(document))
    assert rebuilt == document


def test_env_serves_the_flat_mapping_with_its_secret() -> None:
    plain, secret, content_hash = _outputs("env")
    assert "DB_PASSWORD" in secret
    rebuilt = cluster.rebuild_document(plain, secret, content_hash, secret_pending=True)
    assert rebuilt == {**plain, **secret}
    assert rebuilt["DB_PASSWORD"] == "s3cret"
    assert rebuilt["FEATURES"] == '["a", "b"]'
    assert rebuilt["DB_PORT"] == "5432"


def test_env_waits_for_a_pending_secret() -> None:
    plain, _, content_hash = _outputs("env")
    with pytest.raises(errors.ConfigError, match="not written for this version"):
        cluster.rebuild_document(plain, None, content_hash, secret_pending=True)
    # No Secret announced or present: nothing is sensitive.
    assert cluster.rebuild_document(plain, None, content_hash) == plain


# -- route tables and AuditSink references -----------------------------------------------------


def _table() -> router.RouteTable:
    manifest = yaml.safe_load((REPO / "examples" / "route-chat.yaml").read_text())
    route = Route.model_validate(manifest)
    return router.compile_route("default", "chat", route.spec, generation=3)


def test_route_table_is_checked_against_its_hash() -> None:
    table = _table()
    data = {router.ROUTE_TABLE_KEY: table.to_json()}
    annotations = {cluster.TABLE_HASH_ANNOTATION: table.version}
    assert cluster.check_route_table(data, annotations) == table
    with pytest.raises(errors.ConfigError, match="differs"):
        cluster.check_route_table(data, {cluster.TABLE_HASH_ANNOTATION: "0" * 64})
    edited = table.to_json().replace('"generation":3', '"generation":4')
    with pytest.raises(errors.ConfigError, match="differs"):
        cluster.check_route_table({router.ROUTE_TABLE_KEY: edited}, annotations)
    with pytest.raises(errors.ConfigError, match=r"route\.json"):
        cluster.check_route_table({}, annotations)


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
    assert cluster.sink_secret_names(spec) == ["ca", "hmac", "s3", "signing"]


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
    # get only where a feed reads a single object: the Secrets resources reference.
    getters = [rule["resources"] for rule in rbac.rules() if "get" in rule["verbs"]]
    assert getters == [["secrets"]]


async def test_every_informer_of_the_feeds_is_granted_list_and_watch(tmp_path: Path) -> None:
    client = kube.KubeClient(kube.Credentials(server="https://127.0.0.1:1"))
    feeds = cluster.Feeds(
        client,
        configs=ConfigStore(),
        audit=AuditService(Settings(data_dir=tmp_path)),
        collections=CollectionRegistry(tmp_path),
    )
    await client.close()
    granted = {(kind.group, kind.plural): set(verbs) for kind, verbs in rbac.GRANTS}
    for informer in feeds.informers:
        kind = informer.kind
        assert {"list", "watch"} <= granted.get((kind.group, kind.plural), set()), informer.name
    # Nothing granted that no feed uses (least privilege), apart from get on Secrets.
    watched = {(i.kind.group, i.kind.plural) for i in feeds.informers}
    assert set(granted) == watched
