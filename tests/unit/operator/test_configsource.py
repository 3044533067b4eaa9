"""The ConfigSource reconciler's pure decisions, on resolutions made from in-memory objects."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from llm_infra import config, errors, kube
from llm_infra.api.v1alpha1.configsource import ConfigSourceSpec, ConfigSourceStatus
from llm_infra_operator.objects import KubeObjectReader
from llm_infra_operator.reconcilers import configsource as cs
from llm_infra_operator.settings import OperatorSettings

SECRET = "s3cret-Passw0rd-value"
UID = "0b7c5e58-4a55-4c3a-9b1f-1c2d3e4f5a6b"
BODY = {
    "apiVersion": "infra.llmdevops.io/v1alpha1",
    "kind": "ConfigSource",
    "metadata": {"name": "app", "namespace": "shop", "uid": UID},
}


def spec(*layers: dict[str, Any], **extra: Any) -> ConfigSourceSpec:
    return ConfigSourceSpec.model_validate({"layers": list(layers), **extra})


OBJECTS = config.DictObjectReader(
    config_maps={"defaults": {"level": "info"}},
    secrets={"db": {"password": SECRET}},
)


async def resolve(source: ConfigSourceSpec) -> config.Resolution:
    return await config.resolve_config_source(source, OBJECTS)


def sensitive_spec(**extra: Any) -> ConfigSourceSpec:
    return spec(
        {"name": "base", "inline": {"db": {"host": "db", "pool": 4}}},
        {"name": "defaults", "configMapRef": {"name": "defaults"}},
        {"name": "creds", "secretRef": {"name": "db"}},
        sensitiveKeys=["/password"],
        **extra,
    )


# -- references and refresh --------------------------------------------------------------------


def test_references_name_every_configmap_and_secret_that_feeds_the_config() -> None:
    vault = {
        "address": "http://bao:8200",
        "path": "apps/x",
        "auth": {"tokenSecretRef": {"name": "bao-token", "key": "token"}},
        "caSecretRef": {"name": "bao-ca", "key": "ca.crt"},
    }
    source = spec(
        {"name": "a", "inline": {"x": 1}},
        {"name": "b", "configMapRef": {"name": "defaults", "key": "app.yaml"}},
        {"name": "c", "secretRef": {"name": "db"}},
        {"name": "d", "vault": vault},
        {"name": "e", "http": {"url": "http://cfg/x", "headersSecretRef": {"name": "hdrs"}}},
        schema={"configMapRef": {"name": "app-schema", "key": "schema.json"}},
        refresh={"interval": "1m30s"},
    )
    assert cs.references(source) == {
        ("ConfigMap", "defaults"),
        ("ConfigMap", "app-schema"),
        ("Secret", "db"),
        ("Secret", "bao-token"),
        ("Secret", "bao-ca"),
        ("Secret", "hdrs"),
    }
    assert cs.refresh_seconds(source) == 90.0


def test_inline_only_references_nothing_and_refreshes_by_default_every_5m() -> None:
    source = spec({"name": "a", "inline": {"x": 1}})
    assert cs.references(source) == frozenset()
    assert cs.refresh_seconds(source) == 300.0


# -- outputs -----------------------------------------------------------------------------------


async def test_outputs_split_sensitive_keys_into_an_owned_secret() -> None:
    source = sensitive_spec(target={"labels": {"team": "shop"}, "annotations": {"a": "b"}})
    resolution = await resolve(source)
    config_map, secret = cs.decide_outputs("shop", "app", source, resolution, BODY)

    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["name"] == "app"
    assert config_map["metadata"]["namespace"] == "shop"
    assert SECRET not in str(config_map)
    assert config_map["data"] == resolution.plain_data
    assert "password" not in config_map["data"]["config.json"]

    assert secret["kind"] == "Secret"
    assert secret["type"] == "Opaque"
    decoded = base64.b64decode(secret["data"]["config.json"]).decode()
    assert SECRET in decoded
    assert "pool" not in decoded

    for output in (config_map, secret):
        meta = output["metadata"]
        assert meta["labels"] == {
            "team": "shop",
            "app.kubernetes.io/managed-by": "llm-infra",
            "infra.llmdevops.io/configsource": "app",
        }
        announced = {"infra.llmdevops.io/secret": "app"} if output is config_map else {}
        assert meta["annotations"] == {
            "a": "b",
            "infra.llmdevops.io/content-hash": resolution.content_hash,
            **announced,
        }
        [owner] = meta["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("ConfigSource", "app", UID)
        assert owner["controller"] is True


async def test_retain_sets_no_owner_and_target_names_are_used() -> None:
    source = sensitive_spec(
        target={"deletionPolicy": "Retain", "configMapName": "cm", "secretName": "sec"}
    )
    outputs = cs.decide_outputs("shop", "app", source, await resolve(source), BODY)
    assert [(o["kind"], o["metadata"]["name"]) for o in outputs] == [
        ("ConfigMap", "cm"),
        ("Secret", "sec"),
    ]
    assert all("ownerReferences" not in o["metadata"] for o in outputs)


async def test_no_sensitive_values_means_no_secret() -> None:
    source = spec({"name": "base", "inline": {"x": 1}}, sensitiveKeys=["/absent"])
    [config_map] = cs.decide_outputs("shop", "app", source, await resolve(source), BODY)
    assert config_map["kind"] == "ConfigMap"


async def test_an_invalid_resolution_is_never_rendered_into_outputs() -> None:
    source = spec({"name": "missing", "configMapRef": {"name": "absent"}})
    with pytest.raises(ValueError, match="valid"):
        cs.decide_outputs("shop", "app", source, await resolve(source), BODY)


# -- writing only what changed -----------------------------------------------------------------


def served(desired: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """`desired` as the API server would serve it back, with extra fields and `changes`."""
    meta = desired["metadata"]
    metadata = {
        **meta,
        "labels": {**meta["labels"], "added-by": "someone"},
        "annotations": {**meta["annotations"], "kubectl": "x"},
        "ownerReferences": [*meta.get("ownerReferences", []), {"uid": "other"}],
        "resourceVersion": "7",
        **changes.pop("metadata", {}),
    }
    return {**desired, "metadata": metadata, **changes}


async def test_needs_write_only_when_something_we_set_differs() -> None:
    source = sensitive_spec()
    config_map, _ = cs.decide_outputs("shop", "app", source, await resolve(source), BODY)
    assert cs.needs_write(config_map, None, UID)
    assert not cs.needs_write(config_map, served(config_map), UID)
    assert cs.needs_write(config_map, served(config_map, data={"config.json": "{}"}), UID)
    stale_hash = {"annotations": {"infra.llmdevops.io/content-hash": "0" * 64}}
    assert cs.needs_write(config_map, served(config_map, metadata=stale_hash), UID)
    assert cs.needs_write(config_map, served(config_map, metadata={"labels": {}}), UID)
    assert cs.needs_write(config_map, served(config_map, metadata={"ownerReferences": []}), UID)


async def test_needs_write_drops_our_owner_reference_when_retained() -> None:
    source = sensitive_spec(target={"deletionPolicy": "Retain"})
    config_map, _ = cs.decide_outputs("shop", "app", source, await resolve(source), BODY)
    ours = {"metadata": {"ownerReferences": [{"uid": UID}]}}
    assert cs.needs_write(config_map, served(config_map, **ours), UID)
    assert not cs.needs_write(config_map, served(config_map), UID)  # only someone else's


def test_owned_by_needs_both_labels() -> None:
    labels = {"infra.llmdevops.io/configsource": "app", "app.kubernetes.io/managed-by": "llm-infra"}
    assert cs.owned_by("app", {"metadata": {"labels": labels}})
    assert not cs.owned_by("other", {"metadata": {"labels": labels}})
    assert not cs.owned_by(
        "app", {"metadata": {"labels": {"infra.llmdevops.io/configsource": "app"}}}
    )
    assert not cs.owned_by("app", {"metadata": {"labels": None}})


async def test_stale_outputs_are_the_unneeded_secret_and_renamed_targets() -> None:
    source = spec({"name": "base", "inline": {"x": 1}}, target={"configMapName": "new"})
    outputs = cs.decide_outputs("shop", "app", source, await resolve(source), BODY)
    previous = ConfigSourceStatus(config_map_name="old", secret_name="app-secret")
    assert cs.decide_stale("app", source, previous, outputs) == [
        ("Secret", "app"),
        ("Secret", "app-secret"),
        ("ConfigMap", "old"),
    ]
    current = ConfigSourceStatus(config_map_name="new")
    assert cs.decide_stale("app", source, current, outputs) == [("Secret", "app")]


async def test_nothing_is_stale_while_both_outputs_are_wanted() -> None:
    source = sensitive_spec()
    outputs = cs.decide_outputs("shop", "app", source, await resolve(source), BODY)
    previous = ConfigSourceStatus(config_map_name="app", secret_name="app")
    assert cs.decide_stale("app", source, previous, outputs) == []


# -- versions and invalid resolutions ----------------------------------------------------------


def test_version_moves_only_when_the_published_hash_does() -> None:
    first, second = "a" * 64, "b" * 64
    assert cs.decide_version(ConfigSourceStatus(), first) == (1, True)
    published = ConfigSourceStatus(version=3, last_good_hash=first)
    assert cs.decide_version(published, first) == (3, False)
    assert cs.decide_version(published, second) == (4, True)
    # A status that lost its version starts again rather than claiming "unchanged".
    assert cs.decide_version(ConfigSourceStatus(last_good_hash=first), first) == (1, True)


async def test_a_failed_layer_is_named_with_its_fix() -> None:
    source = spec(
        {"name": "base", "inline": {"x": 1}},
        {"name": "overrides", "configMapRef": {"name": "absent"}},
    )
    resolution = await resolve(source)
    culprit, reason, message = cs.decide_invalid(resolution)
    assert (culprit, reason) == ("LayersResolved", "LayerFailed")
    assert "layers[1] (overrides)" in message
    assert "ConfigMap absent not found" in message
    assert "optional: true" in message


async def test_schema_violations_are_listed_and_secret_values_hidden() -> None:
    schema = {
        "type": "object",
        "properties": {"password": {"type": "string", "minLength": 64}, "level": {"enum": ["x"]}},
    }
    source = sensitive_spec(schema={"inline": schema})
    resolution = await resolve(source)
    culprit, reason, message = cs.decide_invalid(resolution)
    assert (culprit, reason) == ("Validated", "SchemaViolation")
    assert "/level" in message
    assert "/password" in message
    assert SECRET not in message


async def test_other_validation_failures_are_not_called_schema_violations() -> None:
    source = spec(
        {"name": "base", "inline": {"x": 1}},
        schema={"configMapRef": {"name": "absent", "key": "schema.json"}},
    )
    culprit, reason, message = cs.decide_invalid(await resolve(source))
    assert (culprit, reason) == ("Validated", "ValidationFailed")
    assert "schema.configMapRef" in message


# -- the object reader -------------------------------------------------------------------------


class Tokens:
    """Stands in for Kube's TokenRequest call: records what was asked."""

    def __init__(self, *missing: str) -> None:
        self.asked: list[tuple[str, str, Sequence[str]]] = []
        self.missing = set(missing)

    async def token_request(self, namespace: str, name: str, audiences: Sequence[str] = ()) -> str:
        self.asked.append((namespace, name, audiences))
        if name in self.missing:
            raise errors.NotFound(f"serviceaccounts {name} not found", service="kubernetes")
        return "token"


async def test_reader_asks_for_the_named_or_the_namespace_default_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The operator's own token (valid at the API server with the operator's rights in every
    # namespace) must never go to a server a ConfigSource names: unset means the namespace's
    # own "default" account.
    own = tmp_path / "token"
    own.write_text("the-operators-own-token")
    monkeypatch.setattr(config, "DEFAULT_SERVICE_ACCOUNT_TOKEN", own)
    tokens = Tokens()
    reader = KubeObjectReader(cast(kube.Kube, tokens), "shop")
    assert await reader.service_account_token("app", ["vault"]) == "token"
    assert await reader.service_account_token(None, []) == "token"
    assert tokens.asked == [("shop", "app", ["vault"]), ("shop", "default", [])]


async def test_a_missing_service_account_says_to_create_it() -> None:
    reader = KubeObjectReader(cast(kube.Kube, Tokens("default")), "shop")
    with pytest.raises(errors.ConfigError, match=r"shop/default .* does not exist") as raised:
        await reader.service_account_token(None, [])
    assert raised.value.key == "serviceAccountName"


async def test_a_kubernetes_auth_layer_without_its_account_fails_as_a_layer() -> None:
    vault = {"address": "http://bao:8200", "path": "apps/x", "auth": {"kubernetes": {"role": "r"}}}
    source = spec({"name": "vault", "vault": vault})
    reader = KubeObjectReader(cast(kube.Kube, Tokens("default")), "shop")
    resolution = await config.resolve_config_source(source, reader)
    culprit, reason, message = cs.decide_invalid(resolution)
    assert (culprit, reason) == ("LayersResolved", "LayerFailed")
    assert "layers[0] (vault)" in message
    assert "serviceAccountName" in message
    assert not resolution.retryable


@pytest.mark.parametrize(
    "address", ["http://127.0.0.1:8200", "http://169.254.169.254", "http://localhost:8200"]
)
async def test_a_vault_layer_on_a_local_address_is_refused_before_any_credential(
    address: str,
) -> None:
    tokens = Tokens()
    vault = {"address": address, "path": "apps/x", "auth": {"kubernetes": {"role": "r"}}}
    resolution = await config.resolve_config_source(
        spec({"name": "vault", "vault": vault}), KubeObjectReader(cast(kube.Kube, tokens), "shop")
    )
    _, reason, message = cs.decide_invalid(resolution)
    assert reason == "LayerFailed"
    assert "http_layer_allow_local_addresses" in message
    assert tokens.asked == []  # no token was even asked for


def test_the_http_layer_settings_make_the_fetch_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert OperatorSettings().http_layer_policy() == config.HttpLayerPolicy()
    monkeypatch.setenv("LLM_INFRA_OPERATOR_HTTP_LAYER_ALLOW_LOCAL_ADDRESSES", "true")
    monkeypatch.setenv("LLM_INFRA_OPERATOR_HTTP_LAYER_MAX_BYTES", "1024")
    assert OperatorSettings().http_layer_policy() == config.HttpLayerPolicy(
        allow_local_addresses=True, max_bytes=1024
    )
