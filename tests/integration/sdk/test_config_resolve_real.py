"""ConfigSource layers against a real OpenBao dev server and a real local HTTP server.

OpenBao's kubernetes auth is not exercised (it would need the test API
server's TokenReview wired into OpenBao; see test_config_openbao.py): the
token path is, with the token read from a Secret through DictObjectReader.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import hvac
import pytest

from llm_infra import config, errors
from llm_infra.api.v1alpha1.configsource import ConfigSourceSpec
from tests.servers._process import free_port
from tests.servers.documents import DocumentServer
from tests.servers.openbao import OpenBao

PASSWORD_V1 = "first-Pa55word-from-bao"
PASSWORD_V2 = "second-Pa55word-from-bao"


@pytest.fixture
def secret_path(bao: OpenBao) -> str:
    """A fresh KV v2 path with two versions: v1 then v2."""
    path = f"apps/{uuid.uuid4().hex[:8]}"
    client = hvac.Client(url=bao.url, token=bao.token)
    for password, pool in ((PASSWORD_V1, 1), (PASSWORD_V2, 2)):
        client.secrets.kv.v2.create_or_update_secret(
            path=path, mount_point="secret", secret={"password": password, "pool": pool}
        )
    client.adapter.close()
    return path


@pytest.fixture
def objects(bao: OpenBao) -> config.DictObjectReader:
    return config.DictObjectReader(secrets={"bao": {"token": bao.token}, "bad": {"token": "nope"}})


def vault_layer(address: str, path: str, name: str = "vault", **options: Any) -> dict[str, Any]:
    auth = {"tokenSecretRef": {"name": options.pop("token_secret", "bao"), "key": "token"}}
    optional = options.pop("optional", False)
    return {
        "name": name,
        "optional": optional,
        "vault": {"address": address, "path": path, "auth": auth, **options},
    }


# OpenBao and `served` listen on 127.0.0.1, which layers may read only when allowed.
LOCAL = config.HttpLayerPolicy(allow_local_addresses=True)


def spec(*layers: dict[str, Any], **extra: Any) -> ConfigSourceSpec:
    return ConfigSourceSpec.model_validate({"layers": list(layers), **extra})


async def test_token_from_a_secret_latest_pinned_version_and_one_key(
    bao: OpenBao, secret_path: str, objects: config.DictObjectReader
) -> None:
    latest, pinned, one_key = await config.read_layers(
        spec(
            vault_layer(bao.url, secret_path, "latest"),
            vault_layer(bao.url, secret_path, "pinned", version=1),
            vault_layer(bao.url, secret_path, "key", key="password"),
        ),
        objects,
        http_policy=LOCAL,
    )
    assert latest.data == {"password": PASSWORD_V2, "pool": 2}
    assert latest.source == f"vault secret/{secret_path}@v2"
    assert pinned.data == {"password": PASSWORD_V1, "pool": 1}
    assert pinned.source == f"vault secret/{secret_path}@v1"
    assert one_key.data == {"password": PASSWORD_V2}
    assert one_key.source == f"vault secret/{secret_path}@v2 key password"
    for outcome in (latest, pinned, one_key):
        assert outcome.error is None
        assert PASSWORD_V2 not in repr(outcome) + outcome.source
        assert bao.token not in repr(outcome) + outcome.source


async def test_missing_paths_versions_and_keys_optional_and_required(
    bao: OpenBao, secret_path: str, objects: config.DictObjectReader
) -> None:
    outcomes = await config.read_layers(
        spec(
            vault_layer(bao.url, "apps/absent", "skipped", optional=True),
            vault_layer(bao.url, secret_path, "no-version", version=99, optional=True),
            vault_layer(bao.url, secret_path, "no-key", key="absent", optional=True),
            vault_layer(bao.url, "apps/absent", "required"),
        ),
        objects,
        http_policy=LOCAL,
    )
    *skipped, required = outcomes
    for outcome in skipped:
        assert (outcome.resolved, outcome.error) == (False, None), outcome
        assert outcome.source.endswith("(missing)")
    assert isinstance(required.error, errors.NotFound)
    assert str(required.error).count("layers[3] (required): ") == 1
    assert "set optional: true" in str(required.error)
    assert not required.error.is_retryable()


async def test_a_refused_token_fails_and_stays_unnamed(
    bao: OpenBao, secret_path: str, objects: config.DictObjectReader
) -> None:
    [outcome] = await config.read_layers(
        spec(vault_layer(bao.url, secret_path, token_secret="bad", optional=True)),
        objects,
        http_policy=LOCAL,
    )
    assert isinstance(outcome.error, errors.InsufficientPermissions)  # optional covers "missing"
    assert "layers[0] (vault): openbao" in str(outcome.error)
    assert "check the layer's auth" in str(outcome.error)
    assert not outcome.error.is_retryable()
    assert "nope" not in str(outcome.error) + repr(outcome.error)


async def test_unreachable_openbao_is_a_retryable_failure(
    objects: config.DictObjectReader,
) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    layers = spec({"name": "base", "inline": {"a": 1}}, vault_layer(address, "apps/x"))
    resolution = await config.resolve_config_source(layers, objects, http_policy=LOCAL)
    failed = resolution.layers[1].error
    assert isinstance(failed, errors.HttpConnectError)
    assert failed.is_retryable()
    assert resolution.retryable
    assert not resolution.valid
    assert resolution.plain_data == {}
    assert resolution.problems[0].startswith("layers[1] (vault): ")


# -- HTTP layer against a real server ----------------------------------------------------------


async def test_http_layer_etag_304_and_changes(served: DocumentServer) -> None:
    served.documents["/app.json"] = json.dumps({"model": "small", "n": 1}).encode()
    objects = config.DictObjectReader(secrets={"hdrs": {"X-Api-Key": "k-123456789"}})
    layer = {
        "name": "remote",
        "http": {"url": f"{served.url}/app.json", "headersSecretRef": {"name": "hdrs"}},
    }
    layers = spec(layer)
    cache = config.HttpLayerCache()

    [first] = await config.read_layers(layers, objects, http_cache=cache, http_policy=LOCAL)
    [second] = await config.read_layers(layers, objects, http_cache=cache, http_policy=LOCAL)
    assert first.data == second.data == {"model": "small", "n": 1}
    assert "(etag " in first.source
    assert "(not modified, etag " in second.source
    assert "If-None-Match" not in served.seen[0]
    assert served.seen[1]["If-None-Match"] == served.etag(served.documents["/app.json"])
    assert served.seen[1]["X-Api-Key"] == "k-123456789"

    served.documents["/app.json"] = json.dumps({"model": "large", "n": 2}).encode()
    [third] = await config.read_layers(layers, objects, http_cache=cache, http_policy=LOCAL)
    assert third.data == {"model": "large", "n": 2}
    assert "not modified" not in third.source


async def test_http_layer_missing_and_a_full_resolution(
    served: DocumentServer, bao: OpenBao, secret_path: str, objects: config.DictObjectReader
) -> None:
    served.documents["/app.json"] = json.dumps({"db": {"pool": 8}, "model": "small"}).encode()
    layers = spec(
        {"name": "defaults", "inline": {"db": {"host": "db", "pool": 1}, "model": "tiny"}},
        vault_layer(bao.url, secret_path, "creds", key="password"),
        {"name": "remote", "http": {"url": f"{served.url}/app.json"}},
        {"name": "extra", "optional": True, "http": {"url": f"{served.url}/absent.json"}},
        sensitiveKeys=["/password"],
        schema={"inline": {"type": "object", "required": ["password", "model"]}},
    )
    resolution = await config.resolve_config_source(layers, objects, http_policy=LOCAL)
    assert resolution.valid, resolution.problems
    assert [layer.resolved for layer in resolution.layers] == [True, True, True, False]
    assert resolution.provenance == {
        "/db/host": "defaults",
        "/db/pool": "remote",
        "/model": "remote",
        "/password": "creds",
    }
    assert json.loads(resolution.plain_data["config.json"]) == {
        "db": {"host": "db", "pool": 8},
        "model": "small",
    }
    assert json.loads(resolution.secret_data["config.json"]) == {"password": PASSWORD_V2}
    assert resolution.content_hash == config.content_hash(resolution.document)
    assert PASSWORD_V2 not in repr(resolution)

    required = spec({"name": "needed", "http": {"url": f"{served.url}/absent.json"}})
    [missing] = (await config.resolve_config_source(required, objects, http_policy=LOCAL)).layers
    assert isinstance(missing.error, errors.NotFound)
    assert "layers[0] (needed): http " in str(missing.error)
