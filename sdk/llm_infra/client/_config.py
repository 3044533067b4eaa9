"""The config API of the control plane: wire models, the client half, and hot-reloaded settings.

The control plane serves each ConfigSource's merged, validated document as a
`ConfigVersion` (GET with ETag, and an SSE watch stream). `ConfigClientMixin`
gives `ControlPlaneClient` its config methods; `ServedConfigSource` plugs a
served config into `llm_infra.config.load_settings` as a `Source`, and
`watch_settings` re-validates settings on each new version, keeping the last
good ones when a version does not validate.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import stamina
from pydantic import ConfigDict, Field
from pydantic_settings import BaseSettings

from llm_infra import config, errors, jsondoc
from llm_infra.client._transport import DEFAULT_RETRY, Sender, raise_for_problem
from llm_infra.client._wire import Wire

_log = logging.getLogger(__name__)

CONFIG_EVENT = "config"
"""The SSE event name of a config version on the watch stream."""

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class ConfigSummary(Wire):
    """A served config without its document: what the list answers."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    name: str
    """The ConfigSource's namespace and name."""
    version: int = Field(ge=1)
    """Counts content changes; publishing the same content again keeps it."""
    content_hash: str
    """Hex SHA-256 of the document's canonical form (`config.content_hash`); the ETag."""
    updated_at: datetime
    """When this version was published."""


class ConfigVersion(ConfigSummary):
    """One version of a served config: the document and what identifies it."""

    document: dict[str, Any]
    """The merged, validated document."""

    @property
    def etag(self) -> str:
        """The HTTP entity tag of this version (a strong validator: the quoted hash)."""
        return f'"{self.content_hash}"'


class ConfigList(Wire):
    """Answer of GET /v1/namespaces/{namespace}/configs, sorted by name."""

    items: list[ConfigSummary] = Field(default_factory=list)


class ConfigClientMixin(Sender):
    """The config methods of `ControlPlaneClient`."""

    async def list_configs(self, namespace: str) -> list[ConfigSummary]:
        """The configs served in `namespace`, with their current versions."""
        response = await self._send("GET", _configs_path(namespace))
        return ConfigList.model_validate_json(response.content).items

    async def get_config(
        self, namespace: str, name: str, *, etag: str | None = None
    ) -> ConfigVersion | None:
        """The current version of config `namespace/name`; None if it is still `etag`.

        `etag` is a version's `etag` (or its bare content hash). Raises
        errors.NotFound when no ConfigSource of that name is served.
        """
        headers = {} if etag is None else {"If-None-Match": _quoted(etag)}
        response = await self._send("GET", _config_path(namespace, name), headers=headers)
        if response.status_code == httpx.codes.NOT_MODIFIED:
            return None
        return ConfigVersion.model_validate_json(response.content)

    async def watch_config(
        self,
        namespace: str,
        name: str,
        *,
        after_hash: str | None = None,
        backoff_initial: float = 0.25,
        backoff_max: float = 5.0,
    ) -> AsyncGenerator[ConfigVersion, None]:
        """The current version of config `namespace/name`, then each new one, as served (SSE).

        Skips the current version if its hash is `after_hash`. A dropped
        stream, an unreachable or restarting control plane and 5xx answers
        are retried with jittered exponential backoff (Retry-After honoured),
        resuming after the last version seen (Last-Event-ID), for as long as
        the caller iterates. Ends when the config is gone (404); other errors
        (401, 403, 422) are raised.
        """
        path = _config_path(namespace, name) + "/watch"
        last_hash = after_hash

        def reconnect(error: Exception) -> bool | float:
            # stamina's hook: retry what waiting can fix, after the server's Retry-After if any.
            if not isinstance(error, errors.InfraError) or not error.is_retryable():
                return False
            _log.info("config watch %s/%s: %s; reconnecting", namespace, name, error)
            return error.retry_after() or True

        while True:
            # A new retry context per connection: a drop after a healthy stream starts the
            # backoff over (reconnect at once, then exponentially, jittered).
            async for attempt in stamina.retry_context(
                on=reconnect,
                attempts=None,
                timeout=None,
                wait_initial=backoff_initial,
                wait_max=backoff_max,
                wait_jitter=backoff_initial,
            ):
                with attempt:
                    headers = {"Accept": "text/event-stream"}
                    if last_hash is not None:
                        headers["Last-Event-ID"] = last_hash
                    try:
                        with errors.translate(errors.from_httpx):
                            async with self._http.stream("GET", path, headers=headers) as response:
                                if not response.is_success:
                                    await response.aread()
                                    raise_for_problem(response)
                                async with contextlib.aclosing(_versions(response)) as versions:
                                    async for version in versions:
                                        last_hash = version.content_hash
                                        yield version
                    except errors.NotFound:
                        return  # the config is gone
            # Ended by the server (shutting down; or the config is gone, which the next
            # request hears as a 404): connect again.


async def _versions(response: httpx.Response) -> AsyncGenerator[ConfigVersion, None]:
    decoder = jsondoc.SseDecoder()
    async for chunk in response.aiter_bytes():
        for event in decoder.feed(chunk):
            if event.event == CONFIG_EVENT:  # other events are for newer clients
                yield ConfigVersion.model_validate_json(event.data)


class _ConfigClient(ConfigClientMixin):
    """The mixin on a bare httpx client, for `watch_settings` (ControlPlaneClient imports us)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._retry = DEFAULT_RETRY


# -- llm_infra.config integration --------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ServedConfigSource:
    """A config served by the control plane, as an `llm_infra.config.Source`.

        served = ServedConfigSource(url, "team-a", "app", token=token)
        settings = config.load_settings(Settings, sources=[served])

    `read()` GETs the current document (a sync request: settings load
    synchronously); `watch_settings` follows it. `transport` is for tests.
    """

    base_url: str
    namespace: str
    name: str
    token: str | None = dataclasses.field(default=None, repr=False)
    timeout: float = 5.0
    transport: httpx.BaseTransport | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def fetch(self) -> ConfigVersion:
        """The current version; errors.NotFound when the control plane serves no such config."""
        with (
            errors.translate(errors.from_httpx),
            httpx.Client(
                base_url=self.base_url,
                headers=self.headers,
                timeout=self.timeout,
                transport=self.transport,
            ) as client,
        ):
            response = client.get(_config_path(self.namespace, self.name))
        raise_for_problem(response)
        return ConfigVersion.model_validate_json(response.content)

    def read(self) -> Mapping[str, Any]:
        return self.fetch().document

    def origin(self, key: str) -> str:
        return f"config {self.namespace}/{self.name} served by {self.base_url}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Served:
    """One version of a served config as a Source, so a load validates exactly that version."""

    source: ServedConfigSource
    version: ConfigVersion

    def read(self) -> Mapping[str, Any]:
        # Settings validation must not alias the version's document.
        return copy.deepcopy(self.version.document)

    def origin(self, key: str) -> str:
        return f"{self.source.origin(key)} (version {self.version.version})"


async def watch_settings(
    settings_cls: type[SettingsT],
    source: ServedConfigSource,
    *,
    files: Iterable[str | os.PathLike[str]] = (),
    sources: Sequence[config.Source] = (),
    env: bool = True,
    on_error: Callable[[errors.InfraError], None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncGenerator[SettingsT, None]:
    """`settings_cls` loaded from each version of `source` as the control plane serves it.

    Yields the settings of the current version, then new settings for each
    new version that validates. A version that does not validate is skipped
    (the last good settings stay the caller's) and its ConfigError goes to
    `on_error`; only the first version's error is raised, as there is nothing
    to fall back on. `files`, `sources` and `env` are the other layers of
    each load (`config.load_settings`; the served config ranks with
    `sources`, ahead of them). Ends when the config is removed.
    """
    files = tuple(files)
    http = httpx.AsyncClient(
        base_url=source.base_url,
        headers=source.headers,
        timeout=httpx.Timeout(source.timeout, read=None),  # heartbeats keep the stream alive
        transport=transport,
    )
    async with http:
        loaded = False
        async for version in _ConfigClient(http).watch_config(source.namespace, source.name):
            try:
                settings = config.load_settings(
                    settings_cls, files=files, sources=[_Served(source, version), *sources], env=env
                )
            except errors.InfraError as error:
                if not loaded:
                    raise
                _log.warning(
                    "config %s/%s version %d rejected, keeping the last good settings: %s",
                    source.namespace,
                    source.name,
                    version.version,
                    error,
                )
                if on_error is not None:
                    on_error(error)
                continue
            loaded = True
            yield settings


# -- internals ---------------------------------------------------------------------------------


def _quoted(etag: str) -> str:
    return etag if etag.startswith(('"', "W/")) else f'"{etag}"'


def _configs_path(namespace: str) -> str:
    return f"/v1/namespaces/{quote(namespace, safe='')}/configs"


def _config_path(namespace: str, name: str) -> str:
    return f"{_configs_path(namespace)}/{quote(name, safe='')}"
