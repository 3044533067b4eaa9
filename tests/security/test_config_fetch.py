"""Regression tests: what a ConfigSource http layer may fetch, and what a parse error may show.

Real local HTTP servers (`served`, and a second one for another origin): redirects keep secret
headers on their origin, loopback and link-local addresses are refused unless allowed (before
connecting and on the connected peer), a document over the limit is refused unread; and a
malformed resource YAML is reported by file and line without its text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_infra import config, errors
from llm_infra.api.v1alpha1.configsource import ConfigSourceSpec
from llm_infra.config import _fetch
from llm_infra_controlplane.configs.store import ConfigStore
from llm_infra_controlplane.standalone import applier as standalone
from tests.servers.documents import DocumentServer

SECRET = "Bearer hunter2-Sup3r-s3cret-token"
LOCAL = config.HttpLayerPolicy(allow_local_addresses=True)
"""The local document servers listen on 127.0.0.1: the tests that read them say so."""


def spec(*layers: dict[str, Any]) -> ConfigSourceSpec:
    return ConfigSourceSpec.model_validate({"layers": list(layers)})


def http_layer(url: str, *, secret_headers: bool = False, **http: Any) -> dict[str, Any]:
    if secret_headers:
        http["headersSecretRef"] = {"name": "hdrs"}
    return {"name": "remote", "http": {"url": url, **http}}


OBJECTS = config.DictObjectReader(secrets={"hdrs": {"Authorization": SECRET, "X-Api-Key": SECRET}})


async def read_one(
    layer: dict[str, Any], policy: config.HttpLayerPolicy | None = None
) -> config.LayerOutcome:
    [outcome] = await config.read_layers(spec(layer), OBJECTS, http_policy=policy)
    return outcome


def shown(outcome: config.LayerOutcome) -> str:
    return f"{outcome.source} {outcome.error!s} {outcome.error!r}"


@pytest.fixture
def other() -> Iterator[DocumentServer]:
    """A second document server: another origin (another port)."""
    with DocumentServer() as server:
        yield server


# -- redirects ---------------------------------------------------------------------------------


async def test_a_cross_origin_redirect_with_secret_headers_is_refused(
    served: DocumentServer, other: DocumentServer
) -> None:
    other.documents["/app.json"] = b'{"model": "stolen"}'
    served.redirects["/app.json"] = f"{other.url}/app.json"
    outcome = await read_one(http_layer(f"{served.url}/app.json", secret_headers=True), LOCAL)
    assert not outcome.resolved
    assert isinstance(outcome.error, errors.ConfigError)
    message = str(outcome.error)
    assert "layers[0] (remote)" in message
    assert "another origin" in message
    assert other.url in message  # the origin it was sent to, so the url can be fixed
    assert other.seen == []  # the other origin never saw the request, let alone the headers
    assert SECRET not in shown(outcome)
    assert served.seen[0]["Authorization"] == SECRET  # the layer's own origin did get them


async def test_redirects_within_the_origin_keep_the_headers(served: DocumentServer) -> None:
    served.documents["/v2/app.json"] = b'{"model": "small"}'
    served.redirects["/app.json"] = f"{served.url}/v2/app.json"
    outcome = await read_one(http_layer(f"{served.url}/app.json", secret_headers=True), LOCAL)
    assert outcome.data == {"model": "small"}, outcome.error
    assert [seen["Authorization"] for seen in served.seen] == [SECRET, SECRET]


async def test_a_cross_origin_redirect_without_secret_headers_is_followed(
    served: DocumentServer, other: DocumentServer
) -> None:
    other.documents["/app.json"] = b'{"model": "mirrored"}'
    served.redirects["/app.json"] = f"{other.url}/app.json"
    outcome = await read_one(http_layer(f"{served.url}/app.json"), LOCAL)
    assert outcome.data == {"model": "mirrored"}, outcome.error
    assert "Authorization" not in other.seen[0]


async def test_redirect_loops_end(served: DocumentServer) -> None:
    served.redirects["/a"] = f"{served.url}/b"
    served.redirects["/b"] = f"{served.url}/a"
    outcome = await read_one(http_layer(f"{served.url}/a"), LOCAL)
    assert isinstance(outcome.error, errors.ConfigError)
    assert "redirects" in str(outcome.error)


# -- addresses ---------------------------------------------------------------------------------


async def test_loopback_is_refused_by_default_and_read_when_allowed(
    served: DocumentServer,
) -> None:
    served.documents["/varz"] = json.dumps({"server_id": "NATS-monitoring"}).encode()
    refused = await read_one(http_layer(f"{served.url}/varz", secret_headers=True))
    assert not refused.resolved
    assert isinstance(refused.error, errors.ConfigError)
    assert "loopback" in str(refused.error)
    assert "http_layer_allow_local_addresses" in str(refused.error)
    assert served.seen == []  # refused before connecting
    assert SECRET not in shown(refused)

    allowed = await read_one(http_layer(f"{served.url}/varz"), LOCAL)
    assert allowed.data == {"server_id": "NATS-monitoring"}


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("[fe80::1]", "link-local"),
        ("[::1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - what Linux connects to loopback
        ("224.0.0.1", "multicast"),
        ("localhost", "loopback"),
    ],
)
async def test_local_addresses_are_refused_before_connecting(host: str, kind: str) -> None:
    outcome = await read_one(http_layer(f"http://{host}:8222/varz", timeout="1s"))
    assert isinstance(outcome.error, errors.ConfigError), outcome.error
    assert kind in str(outcome.error)


async def test_the_connected_peer_is_checked_too(
    served: DocumentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DNS rebinding: the name resolves to a public address first, then to loopback.
    async def public(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    monkeypatch.setattr(_fetch, "resolve", public)
    served.documents["/varz"] = b'{"server_id": "NATS-monitoring"}'
    by_name = served.url.replace("127.0.0.1", "localhost")
    outcome = await read_one(http_layer(f"{by_name}/varz"))
    assert not outcome.resolved
    assert isinstance(outcome.error, errors.ConfigError)
    assert "the connection went to 127.0.0.1, a loopback address" in str(outcome.error)
    assert len(served.seen) == 1  # it connected: the peer check, not the resolution, refused


async def test_the_standalone_applier_refuses_local_addresses_unless_told(
    served: DocumentServer, tmp_path: Path
) -> None:
    served.documents["/app.json"] = b'{"model": "small"}'
    (tmp_path / "cfg.yaml").write_text(
        "apiVersion: infra.llmdevops.io/v1alpha1\nkind: ConfigSource\nmetadata: {name: app}\n"
        f"spec: {{layers: [{{name: remote, http: {{url: '{served.url}/app.json'}}}}]}}\n"
    )
    folder = standalone.read_folder(tmp_path)
    for policy, published in ((config.HttpLayerPolicy(), False), (LOCAL, True)):
        store, reported = ConfigStore(), list[str]()
        applier = standalone.Applier(
            None,  # type: ignore[arg-type]  # a ConfigSource only: no collection, no audit
            store,
            None,  # type: ignore[arg-type]
            tmp_path,
            report=reported.append,
            http_policy=policy,
        )
        await applier.apply(folder)
        await applier.aclose()
        assert (store.get("default", "app") is not None) is published, reported
        assert published or "a loopback address: refused" in "\n".join(reported)


# -- size --------------------------------------------------------------------------------------


async def test_a_document_over_the_limit_is_refused_unread(served: DocumentServer) -> None:
    chunk, chunks = b"x" * 65536, 512  # 32 MiB, valid JSON

    def big() -> Iterator[bytes]:
        yield b'{"pad": "'
        for _ in range(chunks):
            yield chunk
        yield b'"}'

    served.streams["/big.json"] = big
    limit = 1024 * 1024
    policy = config.HttpLayerPolicy(allow_local_addresses=True, max_bytes=limit)
    outcome = await read_one(http_layer(f"{served.url}/big.json"), policy)
    assert not outcome.resolved
    assert isinstance(outcome.error, errors.ConfigError)
    message = str(outcome.error)
    assert "layers[0] (remote)" in message
    assert f"{limit} bytes" in message
    assert "http_layer_max_bytes" in message
    assert served.sent["/big.json"] < len(chunk) * chunks // 2  # stopped, not read whole


async def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    served: DocumentServer,
) -> None:
    served.documents["/big.json"] = json.dumps({"pad": "x" * 4096}).encode()
    policy = config.HttpLayerPolicy(allow_local_addresses=True, max_bytes=1024)
    outcome = await read_one(http_layer(f"{served.url}/big.json"), policy)
    assert isinstance(outcome.error, errors.ConfigError)
    assert "1024 bytes" in str(outcome.error)


# -- parse errors of the standalone resource folder --------------------------------------------


async def test_a_malformed_secret_yaml_is_reported_by_file_and_line_without_its_text(
    tmp_path: Path,
) -> None:
    password = "pw-9f8e7d6c5b4a-TOPSECRET"
    (tmp_path / "db-secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData:\n"
        f'  password: "{password}\n  user: app\n'
    )
    (tmp_path / "colon.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData:\n"
        f"  token: {password}: x\n"
    )
    reported: list[str] = []
    folder = standalone.read_folder(tmp_path)
    applier = standalone.Applier(
        None,  # type: ignore[arg-type]  # problems only: no service is called
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        tmp_path,
        report=reported.append,
    )
    await applier.apply(folder)
    output = "\n".join(reported)
    assert "db-secret.yaml: not readable as YAML: line " in output
    assert "colon.yaml: not readable as YAML: line 5, column " in output
    assert password not in output
    assert "password" not in output  # not even the key: no line of the file is quoted
