"""Reads the layers of a ConfigSource: inline, ConfigMap, Secret, OpenBao/Vault KV v2, HTTP.

The "observe" half of ConfigSource resolution, free of Kubernetes: in-cluster
objects come through an `ObjectReader` the caller supplies (the operator reads
the API server, standalone mode and tests use `DictObjectReader`). Each layer
gives a `LayerOutcome`; a failure is recorded there, never raised, so one bad
layer does not hide what the others say. `_resolve` merges and validates.
Secret values never reach an error message, a source string or a log.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import io
import json
import re
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx
import pydantic_core
import yaml
from dotenv import parser as dotenv_parser

from llm_infra import errors
from llm_infra.api.v1alpha1._common import duration_seconds
from llm_infra.api.v1alpha1.configsource import (
    ConfigSourceSpec,
    HttpLayer,
    Layer,
    LayerStatus,
    VaultLayer,
)
from llm_infra.config._fetch import HttpLayerPolicy, check_address, fetch

VAULT_TIMEOUT = 10.0
"""Seconds one OpenBao/Vault call may take (the layer has no timeout field)."""

_SOURCE_MAX = 1024  # LayerStatus.source's limit
_FORMATS: Mapping[str, errors.SerializationFormat] = {
    "json": errors.SerializationFormat.JSON,
    "yaml": errors.SerializationFormat.YAML,
    "toml": errors.SerializationFormat.TOML,
}
# tomllib puts the position only into its message: "... (at line 3, column 7)".
_TOML_POSITION = re.compile(
    r"\s*\(at (?:line (?P<line>\d+), column (?P<column>\d+)|end of document)\)$"
)


class ObjectReader(Protocol):
    """The in-cluster objects a ConfigSource's layers refer to, in its own namespace."""

    async def config_map(self, name: str) -> Mapping[str, str] | None:
        """The ConfigMap's data, or None when it does not exist."""
        ...

    async def secret(self, name: str) -> Mapping[str, str] | None:
        """The Secret's data, values decoded to str, or None when it does not exist."""
        ...

    async def service_account_token(self, name: str | None, audiences: Sequence[str]) -> str:
        """A token of service account `name` (None: the caller's own) for OpenBao login."""
        ...


@dataclasses.dataclass(frozen=True)
class DictObjectReader:
    """An `ObjectReader` over in-memory maps: for tests and standalone mode's file-backed objects.

    `tokens` maps a service account name ("" for the caller's own) to its token;
    audiences are not checked.
    """

    config_maps: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict, repr=False)
    tokens: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)

    async def config_map(self, name: str) -> Mapping[str, str] | None:
        return self.config_maps.get(name)

    async def secret(self, name: str) -> Mapping[str, str] | None:
        return self.secrets.get(name)

    async def service_account_token(self, name: str | None, audiences: Sequence[str]) -> str:
        token = self.tokens.get(name or "")
        if token is None:
            raise errors.NotFound(
                f"no token for service account {name or '(own)'}", service="kubernetes"
            )
        return token


@dataclasses.dataclass(frozen=True)
class LayerOutcome:
    """What reading one layer gave.

    `resolved` False with no `error`: an optional layer whose source is
    missing. `source` says what was read, for status (never a secret value).
    """

    name: str
    resolved: bool
    source: str
    data: Mapping[str, Any] | None = dataclasses.field(default=None, repr=False)
    error: errors.InfraError | None = None

    def status(self) -> LayerStatus:
        """This outcome as the ConfigSource status shows it."""
        return LayerStatus(name=self.name, resolved=self.resolved, source=self.source)


class HttpLayerCache:
    """ETag and parsed document per URL, so a refresh of an unchanged document costs a 304.

    Keeps the `max_entries` most recently stored URLs; share one across refreshes.
    """

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self._entries: collections.OrderedDict[str, tuple[str, Mapping[str, Any]]] = (
            collections.OrderedDict()
        )

    def get(self, url: str) -> tuple[str, Mapping[str, Any]] | None:
        """(etag, document) last stored for `url`, if any."""
        return self._entries.get(url)

    def put(self, url: str, etag: str, document: Mapping[str, Any]) -> None:
        self._entries[url] = (etag, document)
        self._entries.move_to_end(url)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, url: str) -> None:
        self._entries.pop(url, None)

    def __len__(self) -> int:
        return len(self._entries)


class _SourceMissingError(Exception):
    """The layer's source does not exist: skipped when optional, else the carried error."""

    def __init__(self, error: errors.InfraError) -> None:
        super().__init__(error.message)
        self.error = error


async def read_layers(
    spec: ConfigSourceSpec,
    objects: ObjectReader,
    *,
    http_cache: HttpLayerCache | None = None,
    http_client: httpx.AsyncClient | None = None,
    http_policy: HttpLayerPolicy | None = None,
) -> list[LayerOutcome]:
    """Read every layer of `spec`, in order; failures are recorded in the outcomes, not raised.

    Layers are read one after another: they are few, and a failing server then
    gets one request per refresh. `http_client` lets a caller share connections
    (and tests pass a transport); one is made per call when an http layer needs it.
    `http_policy` says which addresses, redirects and sizes http layers may have;
    None is `HttpLayerPolicy()`, which refuses local addresses (the services build
    theirs from their settings).
    """
    if http_client is None and any(layer.http is not None for layer in spec.layers):
        async with httpx.AsyncClient() as client:
            return await read_layers(
                spec, objects, http_cache=http_cache, http_client=client, http_policy=http_policy
            )
    policy = http_policy or HttpLayerPolicy()
    http = _Http(http_cache, http_client, policy) if http_client is not None else None
    return [
        await _read_layer(index, layer, objects, http, policy)
        for index, layer in enumerate(spec.layers)
    ]


@dataclasses.dataclass(frozen=True)
class _Http:
    """How this read fetches http layers: the shared cache, client and policy."""

    cache: HttpLayerCache | None
    client: httpx.AsyncClient
    policy: HttpLayerPolicy


async def _read_layer(
    index: int,
    layer: Layer,
    objects: ObjectReader,
    http: _Http | None,
    policy: HttpLayerPolicy,
) -> LayerOutcome:
    where = f"layers[{index}] ({layer.name})"
    source = _describe(layer)
    try:
        if layer.inline is not None:
            data: Mapping[str, Any] = layer.inline
        elif layer.config_map_ref is not None:
            ref = layer.config_map_ref
            values = await objects.config_map(ref.name)
            data = _object_layer("ConfigMap", ref.name, values, ref.key, ref.format)
        elif layer.secret_ref is not None:
            ref_s = layer.secret_ref
            values = await objects.secret(ref_s.name)
            data = _object_layer("Secret", ref_s.name, values, ref_s.key, ref_s.format)
        elif layer.vault is not None:
            data, source = await _read_vault(layer.vault, objects, policy)
        elif layer.http is not None and http is not None:
            data, source = await _read_http(layer.http, objects, http)
        else:  # the model's rule forbids it; say so rather than fail obscurely
            raise errors.ConfigError("set one of inline, configMapRef, secretRef, vault or http")
    except _SourceMissingError as missing:
        if layer.optional:
            return LayerOutcome(layer.name, resolved=False, source=_clip(f"{source} (missing)"))
        error = _in_layer(missing.error, where, "create it, or set optional: true on the layer")
        return LayerOutcome(layer.name, resolved=False, source=source, error=error)
    except Exception as exc:  # noqa: BLE001  every failure becomes the layer's outcome
        mapped = errors.from_exception(exc)
        error = _in_layer(mapped, where, _fix_for(mapped))
        return LayerOutcome(layer.name, resolved=False, source=source, error=error)
    return LayerOutcome(layer.name, resolved=True, source=_clip(source), data=data)


def _describe(layer: Layer) -> str:
    """The layer's source as status names it before reading (readers refine vault and http)."""
    if layer.config_map_ref is not None:
        key = f" key {layer.config_map_ref.key}" if layer.config_map_ref.key else ""
        return f"configmap/{layer.config_map_ref.name}{key}"
    if layer.secret_ref is not None:
        key = f" key {layer.secret_ref.key}" if layer.secret_ref.key else ""
        return f"secret/{layer.secret_ref.name}{key}"
    if layer.vault is not None:
        return f"vault {layer.vault.mount}/{layer.vault.path}"
    if layer.http is not None:
        return _clip(f"http {errors.redact(layer.http.url)}")
    return "inline"


def _clip(source: str) -> str:
    return source if len(source) <= _SOURCE_MAX else source[: _SOURCE_MAX - 1] + "…"


def _in_layer(error: errors.InfraError, where: str, fix: str | None) -> errors.InfraError:
    """The same error, its message prefixed with the layer and followed by the fix."""
    message = f"{where}: {error.message}" + (f"; {fix}" if fix else "")
    # Rebuilt rather than mutated: errors are shared values. details() holds
    # exactly the context keywords the class takes (cause included).
    return type(error)(message, retry_after=error.retry_after(), **error.details())


def _fix_for(error: errors.InfraError) -> str | None:
    if isinstance(error, errors.AuthError):
        return "check the layer's auth (token Secret or kubernetes role) and its policy"
    if isinstance(error, errors.HttpError) and error.is_retryable():
        return "check the address and that the server is up; it is read again on the next refresh"
    if isinstance(error, errors.SerializationError):
        return "fix the document, or set the layer's format to match it"
    return None


# -- ConfigMaps and Secrets --------------------------------------------------------------------


def _object_layer(
    kind: str, name: str, values: Mapping[str, str] | None, key: str | None, value_format: str
) -> Mapping[str, Any]:
    if values is None:
        raise _SourceMissingError(errors.NotFound(f"{kind} {name} not found", service="kubernetes"))
    if key is None:
        return dict(values)
    if key not in values:
        raise _SourceMissingError(errors.ConfigMissing(f"{kind} {name} has no key {key}", key=key))
    return parse_document(values[key], value_format, what=f"{kind} {name} key {key}")


def parse_document(text: str, value_format: str, *, what: str) -> Mapping[str, Any]:
    """`text` parsed as json, yaml (which also reads json), toml or env; a mapping at the top.

    Errors name `what`, the format and the position, never a piece of the text.
    """
    if value_format == "env":
        return _parse_env(text, what)
    data_format = _FORMATS[value_format]
    position = ""
    try:
        if data_format is errors.SerializationFormat.TOML:
            document: Any = tomllib.loads(text)
        elif data_format is errors.SerializationFormat.YAML:
            document = yaml.safe_load(text)
        else:
            document = json.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_POSITION.search(str(exc))
        message = _TOML_POSITION.sub("", str(exc))
        if found and found["line"]:
            position = f"line {found['line']}, column {found['column']}"
        elif found:  # "at end of document": the last line
            position = f"line {len(text.splitlines()) or 1}"
    except yaml.YAMLError as exc:
        # Only the short problem: str(exc) quotes a snippet of the text.
        mark = getattr(exc, "problem_mark", None)
        message = str(getattr(exc, "problem", None) or type(exc).__name__)
        position = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    except json.JSONDecodeError as exc:
        message, position = exc.msg, f"line {exc.lineno}, column {exc.colno}"
    else:
        if document is None:  # an empty YAML document
            return {}
        if not isinstance(document, Mapping):
            raise errors.ConfigError(
                f"{what}: expected a {value_format} mapping at the top,"
                f" got {type(document).__name__}"
            )
        # YAML and TOML dates, YAML sets and int keys have no JSON form: as JSON would show them.
        jsonable: Mapping[str, Any] = pydantic_core.to_jsonable_python(document)
        return jsonable
    raise errors.SerializationError(
        f"{what} is not valid {value_format}: {message}",
        data_format=data_format,
        location=position or None,
    )


def _parse_env(text: str, what: str) -> Mapping[str, Any]:
    """KEY=value lines (python-dotenv's grammar: comments, quotes, `export`); no interpolation."""
    values: dict[str, Any] = {}
    for binding in dotenv_parser.parse_stream(io.StringIO(text)):
        if binding.error or (binding.key is not None and binding.value is None):
            raise errors.SerializationError(
                f"{what} is not valid env: line {binding.original.line} is no VARIABLE=value line",
                location=f"line {binding.original.line}",
            )
        if binding.key is not None:
            values[binding.key] = binding.value
    return values


# -- OpenBao / Vault ---------------------------------------------------------------------------


async def _read_vault(
    layer: VaultLayer, objects: ObjectReader, policy: HttpLayerPolicy
) -> tuple[Mapping[str, Any], str]:
    """The KV v2 secret's data (or its one `key`) and the source "vault mount/path@vN"."""
    # Before any credential is fetched or sent: the address is the ConfigSource's to choose.
    await check_address(str(layer.address), policy, f"vault {errors.redact(str(layer.address))}")
    token: str | None = None
    jwt: str | None = None
    if layer.auth.token_secret_ref is not None:
        token = await _secret_value(
            objects, layer.auth.token_secret_ref.name, layer.auth.token_secret_ref.key, "the token"
        )
    elif layer.auth.kubernetes is not None:
        kubernetes = layer.auth.kubernetes
        jwt = await objects.service_account_token(
            kubernetes.service_account_name, kubernetes.audiences
        )
    ca_pem = None
    if layer.ca_secret_ref is not None:
        ref = layer.ca_secret_ref
        ca_pem = await _secret_value(objects, ref.name, ref.key, "the CA bundle")
    # hvac is synchronous (requests): one thread per read keeps the event loop free.
    data, version = await asyncio.to_thread(_vault_read, layer, token, jwt, ca_pem)
    source = f"vault {layer.mount}/{layer.path}@v{version}"
    if layer.key is None:
        return data, source
    if layer.key not in data:
        raise _SourceMissingError(
            errors.ConfigMissing(f"{source} has no key {layer.key}", key=layer.key)
        )
    return {layer.key: data[layer.key]}, f"{source} key {layer.key}"


async def _secret_value(objects: ObjectReader, name: str, key: str, what: str) -> str:
    values = await objects.secret(name)
    if values is None or key not in values:
        # Not _SourceMissingError: a missing credential is a broken layer even when it is optional.
        raise errors.MissingCredentials(
            f"Secret {name} key {key} (holding {what}) not found; create it or fix the reference"
        )
    return values[key]


def _vault_read(
    layer: VaultLayer, token: str | None, jwt: str | None, ca_pem: str | None
) -> tuple[Mapping[str, Any], int | None]:
    if ca_pem is None:
        return _vault_call(layer, token, jwt, verify=True)
    # requests verifies against a file: the CA bundle (public, not secret) lives there briefly.
    with tempfile.NamedTemporaryFile("w", suffix=".pem", encoding="utf-8") as ca_file:
        ca_file.write(ca_pem)
        ca_file.flush()
        return _vault_call(layer, token, jwt, verify=ca_file.name)


def _vault_call(
    layer: VaultLayer, token: str | None, jwt: str | None, *, verify: bool | str
) -> tuple[Mapping[str, Any], int | None]:
    import hvac  # here: only vault layers need it

    client = hvac.Client(
        url=layer.address, namespace=layer.namespace, timeout=VAULT_TIMEOUT, verify=verify
    )
    try:
        with errors.translate():
            if token is not None:
                client.token = token
            elif jwt is not None and layer.auth.kubernetes is not None:
                client.auth.kubernetes.login(
                    role=layer.auth.kubernetes.role,
                    jwt=jwt,
                    mount_point=layer.auth.kubernetes.mount_path,
                )
        try:
            with errors.translate():
                response = client.secrets.kv.v2.read_secret_version(
                    path=layer.path,
                    version=layer.version,
                    mount_point=layer.mount,
                    raise_on_deleted_version=True,
                )
        except errors.NotFound as error:  # no such path or version: the source is missing
            raise _SourceMissingError(error) from None
    finally:
        client.adapter.close()
    body = response.get("data") if isinstance(response, Mapping) else None
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, Mapping):
        raise errors.ConfigError(f"vault {layer.mount}/{layer.path} holds no KV v2 data")
    metadata = body.get("metadata") if isinstance(body, Mapping) else None
    version = metadata.get("version") if isinstance(metadata, Mapping) else None
    return data, version if isinstance(version, int) else layer.version


# -- HTTP --------------------------------------------------------------------------------------


async def _read_http(
    layer: HttpLayer, objects: ObjectReader, http: _Http
) -> tuple[Mapping[str, Any], str]:
    cache = http.cache
    url = layer.url
    shown = f"http {errors.redact(url)}"
    headers: dict[str, str] = {}
    if layer.headers_secret_ref is not None:
        name = layer.headers_secret_ref.name
        values = await objects.secret(name)
        if values is None:
            raise errors.MissingCredentials(
                f"Secret {name} (request headers) not found; create it or fix headersSecretRef"
            )
        headers.update(values)
    cached = cache.get(url) if cache is not None else None
    secret_headers = layer.headers_secret_ref is not None
    if cached is not None:
        headers["If-None-Match"] = cached[0]
    response, body = await fetch(
        http.client,
        url,
        headers,
        secret_headers=secret_headers,
        request_timeout=duration_seconds(layer.timeout),
        policy=http.policy,
        shown=shown,
    )
    if response.status_code == 304 and cached is not None:
        return cached[1], f"{shown} (not modified, etag {_short(cached[0])})"
    if response.status_code in (404, 410):
        if cache is not None:
            cache.discard(url)
        raise _SourceMissingError(
            errors.NotFound(f"{shown} answered {response.status_code}", service="http")
        )
    with errors.translate():
        response.raise_for_status()
    # A document of up to max_bytes may take a while to parse: not on the event loop.
    encoding = response.encoding or "utf-8"
    document = await asyncio.to_thread(
        lambda: parse_document(body.decode(encoding, "replace"), layer.format, what=shown)
    )
    etag = response.headers.get("ETag")
    if etag and cache is not None:
        cache.put(url, etag, document)
    return document, f"{shown} (etag {_short(etag)})" if etag else shown


def _short(etag: str) -> str:
    return etag if len(etag) <= 80 else etag[:79] + "…"
