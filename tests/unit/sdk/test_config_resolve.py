"""ConfigSource resolution without servers: layers from DictObjectReader, HTTP via MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from llm_infra import config, errors
from llm_infra.api.v1alpha1.configsource import ConfigSourceSpec, Target

SECRET = "hunter2-Sup3r-s3cret-value"


def spec(*layers: dict[str, Any], **extra: Any) -> ConfigSourceSpec:
    return ConfigSourceSpec.model_validate({"layers": list(layers), **extra})


def inline(name: str, values: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "inline": values}


async def read(
    source: ConfigSourceSpec, objects: config.ObjectReader | None = None
) -> list[config.LayerOutcome]:
    return await config.read_layers(source, objects or config.DictObjectReader())


# -- merging and provenance --------------------------------------------------------------------


async def test_later_layers_win_arrays_are_replaced_and_null_deletes() -> None:
    base = {"db": {"host": "a", "port": 1}, "tags": [1, 2], "old": 1, "empty": {}}
    over = {"db": {"host": "b"}, "tags": [3], "old": None, "new": {"on": True}}
    merged = config.merge_layers(await read(spec(inline("base", base), inline("over", over))))
    assert merged.document == {
        "db": {"host": "b", "port": 1},
        "tags": [3],
        "empty": {},
        "new": {"on": True},
    }
    assert merged.provenance == {
        "/db/host": "over",
        "/db/port": "base",
        "/tags": "over",
        "/empty": "base",
        "/new/on": "over",
    }
    assert not merged.provenance_truncated
    assert base["old"] == 1  # inputs are not mutated


async def test_a_layer_replacing_a_scalar_with_an_object_owns_its_leaves() -> None:
    layers = spec(inline("a", {"x": 5, "y/z": 1}), inline("b", {"x": {"deep": [1]}}))
    merged = config.merge_layers(await read(layers))
    assert merged.provenance == {"/x/deep": "b", "/y~1z": "a"}


async def test_provenance_is_capped_at_the_status_limit_and_says_so() -> None:
    many = {f"k{number:05}": number for number in range(config.PROVENANCE_LIMIT + 10)}
    merged = config.merge_layers(await read(spec(inline("many", many))))
    assert len(merged.provenance) == config.PROVENANCE_LIMIT
    assert merged.provenance_truncated
    assert len(merged.document) == config.PROVENANCE_LIMIT + 10


# -- ConfigMaps and Secrets, formats -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value_format", "text"),
    [
        ("yaml", "db:\n  port: 5432\nname: app\n"),
        ("yaml", '{"db": {"port": 5432}, "name": "app"}'),  # yaml also reads json
        ("json", '{"db": {"port": 5432}, "name": "app"}'),
        ("toml", 'name = "app"\n[db]\nport = 5432\n'),
    ],
)
async def test_document_formats_parse(value_format: str, text: str) -> None:
    objects = config.DictObjectReader(config_maps={"app": {"doc": text}})
    layer = {"name": "cm", "configMapRef": {"name": "app", "key": "doc", "format": value_format}}
    [outcome] = await read(spec(layer), objects)
    assert outcome.error is None
    assert outcome.data == {"db": {"port": 5432}, "name": "app"}
    assert outcome.source == "configmap/app key doc"


def test_dates_and_other_non_json_values_become_json() -> None:
    document = config.parse_document("day: 2024-01-02\n1: one\n", "yaml", what="doc")
    assert document == {"day": "2024-01-02", "1": "one"}
    document = config.parse_document("at = 1979-05-27T07:32:00Z\n", "toml", what="doc")
    assert document == {"at": "1979-05-27T07:32:00Z"}


async def test_env_format_and_keys_without_a_key() -> None:
    env = '# comment\nexport A=1\nB="two words"\n\nC=x=y\n'
    objects = config.DictObjectReader(
        config_maps={"flat": {"one": "1", "two": "2"}}, secrets={"env": {"vars": env}}
    )
    layers = spec(
        {"name": "flat", "configMapRef": {"name": "flat"}},
        {"name": "env", "secretRef": {"name": "env", "key": "vars", "format": "env"}},
    )
    flat, from_env = await read(layers, objects)
    assert flat.data == {"one": "1", "two": "2"}
    assert flat.source == "configmap/flat"
    assert from_env.data == {"A": "1", "B": "two words", "C": "x=y"}
    assert from_env.source == "secret/env key vars"


@pytest.mark.parametrize(
    ("value_format", "text", "position"),
    [
        ("yaml", f"a: [1, 2\npassword: {SECRET}\n", "line"),
        ("json", f'{{"password": "{SECRET}",}}', "line 1"),
        ("toml", f'password = "{SECRET}"\nbroken', "line 2"),
        ("env", f"PASSWORD={SECRET}\nnot a pair\n", "line 2"),
    ],
)
async def test_parse_errors_name_the_layer_never_the_value(
    value_format: str, text: str, position: str
) -> None:
    objects = config.DictObjectReader(secrets={"creds": {"doc": text}})
    layer = {"name": "creds", "secretRef": {"name": "creds", "key": "doc", "format": value_format}}
    [outcome] = (await read(spec(inline("base", {}), layer), objects))[1:]
    assert isinstance(outcome.error, errors.SerializationError)
    assert not outcome.resolved
    message = str(outcome.error)
    headline = "Serialization" if value_format == "env" else f"{value_format.upper()} serialization"
    assert message.startswith(f"{headline} error at {position}")
    assert "layers[1] (creds): Secret creds key doc is not valid" in message
    assert position in message
    assert SECRET not in message + repr(outcome.error) + outcome.source + repr(outcome)


async def test_a_document_that_is_no_mapping_is_refused() -> None:
    objects = config.DictObjectReader(config_maps={"app": {"doc": "- 1\n- 2\n"}})
    layer = {"name": "cm", "configMapRef": {"name": "app", "key": "doc"}}
    [outcome] = await read(spec(layer), objects)
    assert isinstance(outcome.error, errors.ConfigError)
    assert "expected a yaml mapping at the top, got list" in str(outcome.error)


async def test_optional_missing_layers_are_skipped_required_ones_fail() -> None:
    objects = config.DictObjectReader(config_maps={"present": {"other": "x"}})
    layers = spec(
        inline("base", {"a": 1}),
        {"name": "gone", "optional": True, "configMapRef": {"name": "absent"}},
        {"name": "nokey", "optional": True, "configMapRef": {"name": "present", "key": "k"}},
        {"name": "needed", "secretRef": {"name": "absent"}},
    )
    base, gone, nokey, needed = await read(layers, objects)
    assert base.resolved
    assert (gone.resolved, gone.error, gone.source) == (False, None, "configmap/absent (missing)")
    assert (nokey.resolved, nokey.error) == (False, None)
    assert isinstance(needed.error, errors.NotFound)
    assert needed.error.message == (
        "layers[3] (needed): Secret absent not found; create it, or set optional: true on the layer"
    )
    assert not needed.error.is_retryable()
    assert needed.status().model_dump() == {
        "name": "needed",
        "resolved": False,
        "source": "secret/absent",
    }

    resolution = await config.resolve_config_source(layers, objects)
    assert not resolution.valid
    assert not resolution.retryable
    assert resolution.problems == [needed.error.message]
    assert (resolution.content_hash, resolution.plain_data, resolution.secret_data) == (
        None,
        {},
        {},
    )


async def test_vault_credentials_missing_fail_before_any_request() -> None:
    vault = {"address": "http://192.0.2.1:1", "path": "apps/x"}  # TEST-NET-1: never reached
    layers = spec(
        {
            "name": "tok",
            "optional": True,
            "vault": vault | {"auth": {"tokenSecretRef": {"name": "t", "key": "token"}}},
        },
        {"name": "k8s", "vault": vault | {"auth": {"kubernetes": {"role": "app"}}}},
    )
    token, kubernetes = await read(layers)
    assert isinstance(token.error, errors.MissingCredentials)  # optional covers data, not auth
    assert "layers[0] (tok): Secret t key token (holding the token) not found" in str(token.error)
    assert isinstance(kubernetes.error, errors.NotFound)
    assert "no token for service account (own)" in str(kubernetes.error)


def test_dict_object_reader_hides_secrets_and_tokens() -> None:
    reader = config.DictObjectReader(secrets={"s": {"k": SECRET}}, tokens={"": SECRET})
    assert SECRET not in repr(reader)


# -- schema ------------------------------------------------------------------------------------

PORT_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {"port": {"type": "integer", "maximum": 65535}, "password": {"type": "integer"}},
}


def test_schema_problems_name_the_pointer_and_hide_sensitive_values() -> None:
    document = {"port": 70000, "password": SECRET}
    problems = config.validate_document(document, PORT_SCHEMA, hidden=["/password"])
    assert '/: "name" is a required property' in problems
    assert any(problem.startswith("/port: 70000") for problem in problems)
    assert "/password: fails the schema's 'type' (value hidden: sensitive)" in problems
    assert SECRET not in "".join(problems)
    assert config.validate_document({"name": "x"}, PORT_SCHEMA) == []
    assert config.validate_document(document, None) == []


async def test_schema_from_a_config_map_and_secret_layer_values_stay_hidden() -> None:
    objects = config.DictObjectReader(
        config_maps={"schemas": {"app.yaml": yaml.safe_dump(PORT_SCHEMA)}},
        secrets={"db": {"password": SECRET}},
    )
    layers = spec(
        inline("base", {"name": "app", "port": 80}),
        {"name": "db", "secretRef": {"name": "db"}},
        schema={"configMapRef": {"name": "schemas", "key": "app.yaml"}},
    )
    resolution = await config.resolve_config_source(layers, objects)
    assert not resolution.valid
    assert resolution.problems == ["/password: fails the schema's 'type' (value hidden: sensitive)"]
    assert SECRET not in repr(resolution)

    missing = spec(inline("base", {}), schema={"configMapRef": {"name": "nope", "key": "s"}})
    resolution = await config.resolve_config_source(missing, objects)
    assert resolution.problems == [
        "schema: ConfigMap nope key s not found; create it or fix schema.configMapRef"
    ]


# -- split, render, hash -----------------------------------------------------------------------


def test_split_sensitive_moves_values_keeping_their_nesting() -> None:
    document = {"db": {"host": "h", "password": SECRET}, "servers": [{"key": "k"}], "x": 1}
    plain, sensitive = config.split_sensitive(
        document, ["/db/password", "/servers/0/key", "/absent/deep", "/x/under-a-scalar"]
    )
    assert plain == {"db": {"host": "h"}, "x": 1}
    # An array is moved whole: removing one element would shift the others.
    assert sensitive == {"db": {"password": SECRET}, "servers": [{"key": "k"}]}
    assert document["db"] == {"host": "h", "password": SECRET}  # not mutated


def test_render_json_yaml_and_env_deterministically() -> None:
    one = {"b": {"y": 2, "x": "s"}, "a": [1, "two"], "c d": True, "e": None}
    two = {"e": None, "c d": True, "a": [1, "two"], "b": {"x": "s", "y": 2}}
    as_json = config.render(one, Target())
    assert as_json == config.render(two, Target())
    assert list(as_json) == ["config.json"]
    assert json.loads(as_json["config.json"]) == one
    assert as_json["config.json"].index('"a"') < as_json["config.json"].index('"b"')

    as_yaml = config.render(one, Target(format="yaml", key="app.yaml"))
    assert as_yaml == config.render(two, Target(format="yaml", key="app.yaml"))
    assert yaml.safe_load(as_yaml["app.yaml"]) == one

    env = config.render(one, Target(format="env"))
    assert env == config.render(two, Target(format="env"))
    assert list(env.items()) == [
        ("A", '[1, "two"]'),
        ("B_X", "s"),
        ("B_Y", "2"),
        ("C_D", "true"),
        ("E", "null"),
    ]


def test_env_keys_that_collide_are_refused() -> None:
    with pytest.raises(errors.ConfigError) as caught:
        config.render({"a.b": 1, "a": {"b": 2}}, Target(format="env"))
    assert "/a.b" in str(caught.value)
    assert "/a/b" in str(caught.value)


def test_content_hash_is_stable_under_key_order() -> None:
    first = config.content_hash({"a": 1, "b": {"c": [1, 2], "d": "x"}})
    assert first == config.content_hash({"b": {"d": "x", "c": [1, 2]}, "a": 1})
    assert len(first) == 64
    assert first != config.content_hash({"a": 1, "b": {"c": [2, 1], "d": "x"}})


async def test_resolution_splits_renders_and_hashes() -> None:
    objects = config.DictObjectReader(secrets={"db": {"password": SECRET}})
    layers = spec(
        inline("base", {"db": {"host": "h", "password": "dev"}, "name": "app"}),
        {"name": "db", "secretRef": {"name": "db"}},
        {"name": "overlay", "secretRef": {"name": "db", "key": "password"}, "optional": True},
        sensitiveKeys=["/db/password", "/password"],
        target={"format": "env"},
    )
    resolution = await config.resolve_config_source(layers, objects)
    # The overlay's key holds no document: a plain string is not a mapping.
    assert not resolution.valid
    assert SECRET not in str(resolution.problems)

    layers = spec(
        *[layer.model_dump(by_alias=True, exclude_none=True) for layer in layers.layers[:2]],
        inline("overlay", {"db": {"password": None}}),
        sensitiveKeys=["/db/password", "/password"],
        target={"format": "env"},
    )
    resolution = await config.resolve_config_source(layers, objects)
    assert resolution.valid, resolution.problems
    assert resolution.document == {
        "db": {"host": "h"},
        "name": "app",
        "password": SECRET,
    }
    assert resolution.plain_data == {"DB_HOST": "h", "NAME": "app"}
    assert resolution.secret_data == {"PASSWORD": SECRET}
    assert resolution.content_hash == config.content_hash(resolution.document)
    assert resolution.provenance == {"/db/host": "base", "/name": "base", "/password": "db"}
    assert SECRET not in repr(resolution)


# -- HTTP layers (a remote source: MockTransport stands in for it here) -------------------------


def http_layer(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "remote", "http": {"url": url, **extra.pop("http", {})}, **extra}


def serving(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


# MockTransport has no connection whose address the policy could check: these tests say so.
# (The address, redirect and size rules: tests/security/test_config_fetch.py, on real servers.)
UNCHECKED = config.HttpLayerPolicy(allow_local_addresses=True)


async def test_a_transport_that_hides_its_peer_is_refused_by_default() -> None:
    layers = spec(http_layer("http://config.test/app"))
    async with serving(lambda _: httpx.Response(200, json={"model": "small"})) as client:
        [outcome] = await config.read_layers(layers, config.DictObjectReader(), http_client=client)
    assert isinstance(outcome.error, errors.ConfigError)
    assert "http_layer_allow_local_addresses" in str(outcome.error)


async def test_http_cache_sends_if_none_match_and_reuses_data_on_304() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("If-None-Match") == '"v1"':
            return httpx.Response(304, headers={"ETag": '"v1"'})
        return httpx.Response(200, json={"model": "small"}, headers={"ETag": '"v1"'})

    objects = config.DictObjectReader(secrets={"hdrs": {"Authorization": f"Bearer {SECRET}"}})
    layers = spec(http_layer("http://config.test/app", http={"headersSecretRef": {"name": "hdrs"}}))
    cache = config.HttpLayerCache()
    async with serving(handler) as client:
        [first] = await config.read_layers(
            layers, objects, http_cache=cache, http_client=client, http_policy=UNCHECKED
        )
        [second] = await config.read_layers(
            layers, objects, http_cache=cache, http_client=client, http_policy=UNCHECKED
        )
    assert first.data == second.data == {"model": "small"}
    assert first.source == 'http http://config.test/app (etag "v1")'
    assert second.source == 'http http://config.test/app (not modified, etag "v1")'
    assert "If-None-Match" not in seen[0].headers
    assert seen[1].headers["If-None-Match"] == '"v1"'
    assert seen[1].headers["Authorization"] == f"Bearer {SECRET}"
    assert len(cache) == 1


def test_http_cache_keeps_the_most_recent_entries() -> None:
    cache = config.HttpLayerCache(max_entries=2)
    for name in ("a", "b", "c"):
        cache.put(name, f'"{name}"', {"n": name})
    assert (cache.get("a"), cache.get("c")) == (None, ('"c"', {"n": "c"}))
    assert len(cache) == 2


async def test_http_errors_missing_optional_and_secret_headers_never_shown() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/missing":
            return httpx.Response(404)
        if request.url.path == "/bad":
            return httpx.Response(200, text=f"password = {SECRET}")  # not json
        return httpx.Response(503, text=f"echo {request.headers['Authorization']}")

    objects = config.DictObjectReader(secrets={"hdrs": {"Authorization": f"Bearer {SECRET}"}})
    headers = {"headersSecretRef": {"name": "hdrs"}}
    layers = spec(
        http_layer("http://c.test/missing", optional=True, http=headers),
        http_layer("http://c.test/missing", http=headers) | {"name": "required"},
        http_layer("http://c.test/down", http=headers) | {"name": "down"},
        http_layer("http://c.test/bad", http=headers) | {"name": "bad"},
    )
    async with serving(handler) as client:
        outcomes = await config.read_layers(
            layers, objects, http_client=client, http_policy=UNCHECKED
        )
        resolution = await config.resolve_config_source(
            layers, objects, http_client=client, http_policy=UNCHECKED
        )
    skipped, required, down, bad = outcomes
    assert (skipped.resolved, skipped.error) == (False, None)
    assert isinstance(required.error, errors.NotFound)
    assert "layers[1] (required): http http://c.test/missing answered 404" in str(required.error)
    assert isinstance(down.error, errors.HttpStatusError)
    assert down.error.is_retryable()
    assert isinstance(bad.error, errors.SerializationError)
    assert resolution.retryable
    assert not resolution.valid
    shown = " ".join(f"{o.source} {o.error!s} {o.error!r}" for o in outcomes)
    assert SECRET not in shown + " ".join(resolution.problems)


# -- change events -----------------------------------------------------------------------------


def test_config_changed_round_trips_on_its_subject() -> None:
    event = config.ConfigChanged(
        namespace="shop", name="checkout", version=3, content_hash="a" * 64, previous_hash="b" * 64
    )
    assert event.subject == config.config_event_subject("shop", "checkout")
    assert event.subject == "llm-infra.config.shop.checkout"
    wire = json.loads(event.to_json())
    assert set(wire) == {"namespace", "name", "version", "content_hash", "previous_hash", "time"}
    assert config.ConfigChanged.from_json(event.to_json()) == event
    with pytest.raises(errors.ValidationError):
        config.ConfigChanged.from_json(b'{"namespace": "shop"}')
    with pytest.raises(errors.ValidationError):
        config.config_event_subject("shop", "a.b")
