"""Typed, layered settings for llm-infra workloads, and a watcher that reloads them safely.

    from llm_infra import config

    class Settings(config.InfraSettings):
        db: Db = Db()
        api_key: pydantic.SecretStr

    settings = config.load_settings(
        Settings,
        files=["base.toml", "prod.yaml"],
        vault=config.VaultSource(address=url, path="app", auth=config.TokenAuth(token)),
    )
    config.require(settings, "db.pool_size")

Precedence is data (`PRECEDENCE`, highest first): init values, environment
(``LLM_INFRA_DB__POOL_SIZE``), extra `Source`s, OpenBao/Vault KV v2, files
(later over earlier), model defaults. The control plane's served
configuration plugs in as a `Source`: `HttpJsonSource(url=...)` GETs it.
ConfigSource resolution, shared by the operator and standalone mode, reads a
ConfigSource's layers through an `ObjectReader` and decides what to publish::

    resolution = await config.resolve_config_source(spec, objects, http_cache=cache)
    if resolution.valid:
        ...  # write resolution.plain_data / secret_data, publish config.ConfigChanged

Modules: `_settings` (the base class, layers, error mapping), `_sources`,
`_access` (dot keys), `_watch` (ConfigWatcher), `_layers` (reading ConfigSource
layers), `_fetch` (what an http layer may fetch: `HttpLayerPolicy`), `_resolve`
(merge, provenance, schema, split, render, change events).
"""

from llm_infra.config._access import get, get_or, require
from llm_infra.config._fetch import HTTP_LAYER_MAX_BYTES, HttpLayerPolicy
from llm_infra.config._layers import (
    VAULT_TIMEOUT,
    DictObjectReader,
    HttpLayerCache,
    LayerOutcome,
    ObjectReader,
    parse_document,
    read_layers,
)
from llm_infra.config._resolve import (
    CONFIG_EVENT_SUBJECT,
    HASH_ANNOTATION,
    PROVENANCE_LIMIT,
    SECRET_ANNOTATION,
    SOURCE_LABEL,
    ConfigChanged,
    Merged,
    Resolution,
    config_event_subject,
    content_hash,
    merge_layers,
    render,
    resolve_config_source,
    schema_of,
    split_sensitive,
    validate_document,
)
from llm_infra.config._settings import (
    PRECEDENCE,
    InfraSettings,
    Layer,
    config_error,
    load_settings,
)
from llm_infra.config._sources import (
    DEFAULT_SERVICE_ACCOUNT_TOKEN,
    FileSource,
    HttpJsonSource,
    KubernetesAuth,
    Source,
    TokenAuth,
    VaultSource,
    bind,
)
from llm_infra.config._watch import ConfigWatcher, watch

__all__ = [
    "CONFIG_EVENT_SUBJECT",
    "DEFAULT_SERVICE_ACCOUNT_TOKEN",
    "HASH_ANNOTATION",
    "HTTP_LAYER_MAX_BYTES",
    "PRECEDENCE",
    "PROVENANCE_LIMIT",
    "SECRET_ANNOTATION",
    "SOURCE_LABEL",
    "VAULT_TIMEOUT",
    "ConfigChanged",
    "ConfigWatcher",
    "DictObjectReader",
    "FileSource",
    "HttpJsonSource",
    "HttpLayerCache",
    "HttpLayerPolicy",
    "InfraSettings",
    "KubernetesAuth",
    "Layer",
    "LayerOutcome",
    "Merged",
    "ObjectReader",
    "Resolution",
    "Source",
    "TokenAuth",
    "VaultSource",
    "bind",
    "config_error",
    "config_event_subject",
    "content_hash",
    "get",
    "get_or",
    "load_settings",
    "merge_layers",
    "parse_document",
    "read_layers",
    "render",
    "require",
    "resolve_config_source",
    "schema_of",
    "split_sensitive",
    "validate_document",
    "watch",
]
