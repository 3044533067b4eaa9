"""Where settings come from: the `Source` protocol, files, OpenBao/Vault KV v2 and HTTP JSON.

A `Source` is read once per load and returns a nested mapping keyed by field
name; `origin(key)` says who supplied a key, for error messages. `bind` plugs
any Source into pydantic-settings as a `PydanticBaseSettingsSource`;
`llm_infra.config._settings` orders them. `HttpJsonSource` is the seam for the
control plane's served configuration: it GETs one JSON object, nothing more.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
import yaml
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from llm_infra import errors

_log = logging.getLogger(__name__)

DEFAULT_SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
HTTP_SOURCE_MAX_BYTES = 4 * 1024 * 1024
"""Largest settings document `HttpJsonSource` reads by default (4 MiB)."""
# tomllib (3.11-3.13) puts the position only into the message: "... (at line 3, column 7)".
_TOML_POSITION = re.compile(r"\s*\(at line (?P<line>\d+), column (?P<column>\d+)\)$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)$")
_SUFFIX_FORMAT: Mapping[str, errors.SerializationFormat] = {
    ".toml": errors.SerializationFormat.TOML,
    ".yaml": errors.SerializationFormat.YAML,
    ".yml": errors.SerializationFormat.YAML,
    ".json": errors.SerializationFormat.JSON,
}


@runtime_checkable
class Source(Protocol):
    """A provider of settings values, read once per load."""

    def read(self) -> Mapping[str, Any]:
        """The values, nested by field name (``{"db": {"pool_size": 5}}``)."""
        ...

    def origin(self, key: str) -> str:
        """Who supplied `key` (a dot path): a file path, an env var, a vault path, a URL."""
        ...


# -- files -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileSource:
    """A TOML, YAML or JSON file (by suffix) holding one mapping."""

    path: Path

    def read(self) -> Mapping[str, Any]:
        data_format = _SUFFIX_FORMAT.get(self.path.suffix.lower())
        if data_format is None:
            raise errors.ConfigError(
                f"{self.path}: unknown settings file type (use .toml, .yaml, .yml or .json)"
            )
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise errors.from_exception(exc) from None
        document = _parse(text, data_format, self.path)
        if document is None:  # an empty YAML file
            return {}
        if not isinstance(document, Mapping):
            raise errors.ConfigError(
                f"{self.path}: expected a mapping at the top, got {type(document).__name__}"
            )
        return document

    def origin(self, key: str) -> str:
        return f"file {self.path}"


def _parse(text: str, data_format: errors.SerializationFormat, path: Path) -> Any:
    """The parsed document; a syntax error becomes SerializationError naming file and line."""
    line: int | None
    try:
        if data_format is errors.SerializationFormat.TOML:
            return tomllib.loads(text)
        if data_format is errors.SerializationFormat.YAML:
            return yaml.safe_load(text)
        return json.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION.search(message)
        line = int(position["line"]) if position else None
        column = int(position["column"]) if position else None
        if position is None and _TOML_AT_END.search(message):
            line = text.count("\n") + (0 if text.endswith("\n") else 1)
        message = _TOML_AT_END.sub("", _TOML_POSITION.sub("", message))
    except yaml.YAMLError as exc:
        # Only the short problem: str(exc) quotes a snippet of the file, which may hold a secret.
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        message = str(getattr(exc, "problem", None) or type(exc).__name__)
    except json.JSONDecodeError as exc:
        line, column, message = exc.lineno, exc.colno, exc.msg
    where = f"{path}, line {line}" if line is not None else str(path)
    where += f", column {column}" if column is not None else ""
    raise errors.SerializationError(
        f"{where}: {message}", data_format=data_format, location=where, cause="config.parse"
    ) from None


# -- OpenBao / Vault ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenAuth:
    """Authenticate with a token (a root or service token)."""

    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class KubernetesAuth:
    """Log in with the pod's service-account JWT to OpenBao's kubernetes auth method."""

    role: str
    jwt: str | None = field(default=None, repr=False)  # else read from jwt_path
    jwt_path: Path = DEFAULT_SERVICE_ACCOUNT_TOKEN
    mount: str = "kubernetes"


@dataclass(frozen=True, slots=True, kw_only=True)
class VaultSource:
    """One KV v2 secret of OpenBao/Vault as settings.

    The secret's data lands at the top of the settings, or under the dot path
    `key` (``key="db"``: ``{"password": ...}`` feeds ``db.password``).
    Unreachable servers raise retryable errors (HttpConnectError, HttpTimeout,
    5xx); with ``optional=True`` any failure is logged and the load goes on
    without this source.
    """

    address: str
    path: str
    auth: TokenAuth | KubernetesAuth
    mount: str = "secret"
    key: str | None = None
    optional: bool = False
    timeout: float = 5.0
    verify: bool | str = True

    def read(self) -> Mapping[str, Any]:
        try:
            data = self._read_secret()
        except errors.InfraError as error:
            if not self.optional:
                raise
            _log.warning("optional settings source %s skipped: %s", self.origin(""), error)
            return {}
        return _nest(self.key, data)

    def origin(self, key: str) -> str:
        return f"vault {self.address} {self.mount}/{self.path}"

    def _read_secret(self) -> Mapping[str, Any]:
        import hvac  # here: only loads that read OpenBao need it

        with errors.translate():
            client = hvac.Client(url=self.address, timeout=self.timeout, verify=self.verify)
            try:
                if isinstance(self.auth, TokenAuth):
                    client.token = self.auth.token
                else:
                    jwt = self.auth.jwt or self.auth.jwt_path.read_text(encoding="utf-8").strip()
                    client.auth.kubernetes.login(
                        role=self.auth.role, jwt=jwt, mount_point=self.auth.mount
                    )
                response = client.secrets.kv.v2.read_secret_version(
                    path=self.path, mount_point=self.mount, raise_on_deleted_version=True
                )
            finally:
                client.adapter.close()
        data = response.get("data", {}).get("data") if isinstance(response, Mapping) else None
        if not isinstance(data, Mapping):
            raise errors.ConfigError(f"{self.origin('')}: the secret holds no KV v2 data")
        return data


# -- HTTP JSON (the control plane's served configuration) --------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpJsonSource:
    """A JSON object served over HTTP (GET), such as the control plane's ConfigSource.

    Transport failures and 5xx are retryable errors; ``optional=True`` logs
    them and goes on without this source. `transport` is for tests.
    """

    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 5.0
    optional: bool = False
    max_bytes: int = HTTP_SOURCE_MAX_BYTES
    """Largest document read; a larger one fails the source unread past the limit."""
    transport: httpx.BaseTransport | None = field(default=None, repr=False, compare=False)

    def read(self) -> Mapping[str, Any]:
        try:
            return self._get()
        except errors.InfraError as error:
            if not self.optional:
                raise
            _log.warning("optional settings source %s skipped: %s", self.origin(""), error)
            return {}

    def origin(self, key: str) -> str:
        return f"url {self.url}"

    def _get(self) -> Mapping[str, Any]:
        with (
            errors.translate(),
            httpx.Client(timeout=self.timeout, transport=self.transport) as client,
            client.stream("GET", self.url, headers=dict(self.headers)) as response,
        ):
            response.raise_for_status()
            content = self._read_limited(response)
        try:
            document = json.loads(content)
        except json.JSONDecodeError as exc:
            where = f"{self.url}, line {exc.lineno}, column {exc.colno}"
            raise errors.SerializationError(
                f"{where}: {exc.msg}",
                data_format=errors.SerializationFormat.JSON,
                location=where,
                cause="config.parse",
            ) from None
        if not isinstance(document, Mapping):
            raise errors.ConfigError(
                f"{self.url}: expected a JSON object, got {type(document).__name__}"
            )
        return document

    def _read_limited(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large(f"it declares {declared} bytes")
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large("it sent more")
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, what: str) -> errors.ConfigError:
        return errors.ConfigError(
            f"{errors.redact(self.url)}: the document is larger than max_bytes"
            f" ({self.max_bytes} bytes; {what}): raise HttpJsonSource(max_bytes=...) if it"
            " is meant to be this large",
            key="max_bytes",
        )


# -- plugging sources into pydantic-settings ---------------------------------------------------

Origin = Callable[[str], str]


class Trail:
    """What each source of one load supplied, highest precedence first, to name a key's origin."""

    def __init__(self) -> None:
        self.layers: list[tuple[Origin, Mapping[str, Any]]] = []

    def origin(self, loc: tuple[str | int, ...]) -> str | None:
        """The origin of the highest source holding `loc` (or a scalar on its way), if any."""
        key = ".".join(str(part) for part in loc)
        for origin, data in self.layers:
            if _holds(data, loc):
                return origin(key)
        return None


class _Recorded(PydanticBaseSettingsSource):
    """A pydantic-settings source reading `read` once and noting its output in a Trail."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        read: Callable[[], Mapping[str, Any]],
        origin: Origin,
        trail: Trail | None,
        name: str,
    ) -> None:
        super().__init__(settings_cls)
        self._read, self._origin, self._trail = read, origin, trail
        self.__name__ = name  # pydantic-settings keys per-source state by this

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ answers for all fields at once

    def __call__(self) -> dict[str, Any]:
        data = dict(self._read())
        if self._trail is not None:
            self._trail.layers.append((self._origin, data))
        return data


def bind(
    source: Source, settings_cls: type[BaseSettings], *, trail: Trail | None = None
) -> PydanticBaseSettingsSource:
    """`source` as a pydantic-settings source of `settings_cls` (for settings_customise_sources)."""
    return _Recorded(settings_cls, source.read, source.origin, trail, name=repr(source))


def record(
    inner: PydanticBaseSettingsSource, origin: Origin, trail: Trail | None, name: str
) -> PydanticBaseSettingsSource:
    """One of pydantic-settings' own sources (init, env), noting its output in `trail`."""
    return _Recorded(inner.settings_cls, inner, origin, trail, name=name)


def env_origin(settings_cls: type[BaseSettings]) -> Origin:
    """The environment variable that supplies a key, as EnvSettingsSource names it."""
    config = settings_cls.model_config
    prefix = config.get("env_prefix") or ""
    delimiter = config.get("env_nested_delimiter") or "__"

    def origin(key: str) -> str:
        wanted = f"{prefix}{delimiter.join(key.split('.'))}"
        for variable in os.environ:
            if variable.lower() == wanted.lower():
                return f"env {variable}"
        # A whole object given as JSON in a parent variable: name the longest such one.
        parts = key.split(".")
        for end in range(len(parts) - 1, 0, -1):
            parent = f"{prefix}{delimiter.join(parts[:end])}".lower()
            for variable in os.environ:
                if variable.lower() == parent:
                    return f"env {variable}"
        return "environment"

    return origin


def _holds(data: Any, loc: tuple[str | int, ...]) -> bool:
    for part in loc:
        if isinstance(data, Mapping):
            if part not in data and str(part) not in data:
                return False
            data = data[part] if part in data else data[str(part)]
        elif isinstance(data, list | tuple) and isinstance(part, int):
            if not -len(data) <= part < len(data):
                return False
            data = data[part]
        else:
            return True  # a scalar (say a JSON string) stands for everything below it
    return True


def _nest(key: str | None, data: Mapping[str, Any]) -> Mapping[str, Any]:
    nested: Mapping[str, Any] = dict(data)
    for part in reversed(key.split(".") if key else []):
        nested = {part: nested}
    return nested
