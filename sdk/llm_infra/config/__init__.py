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
Modules: `_settings` (the base class, layers, error mapping), `_sources`,
`_access` (dot keys), `_watch` (ConfigWatcher).
"""

from llm_infra.config._access import get, get_or, require
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
    "DEFAULT_SERVICE_ACCOUNT_TOKEN",
    "PRECEDENCE",
    "ConfigWatcher",
    "FileSource",
    "HttpJsonSource",
    "InfraSettings",
    "KubernetesAuth",
    "Layer",
    "Source",
    "TokenAuth",
    "VaultSource",
    "bind",
    "config_error",
    "get",
    "get_or",
    "load_settings",
    "require",
    "watch",
]
