"""What routes receive through `Depends`: the state `lifespan` built, typed.

Routes never reach into `app.state` themselves; they declare `settings: SettingsDep`
or `registry: CollectionsDep` and get what `main.lifespan` put there.

Every dependency is `async def`, though none awaits: FastAPI runs a plain `def`
dependency in its thread pool, a thread hand-off on every request that showed
as the control plane's tail latency.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from llm_infra import auth, errors
from llm_infra_controlplane.audit_service import AuditService
from llm_infra_controlplane.cluster import Feeds
from llm_infra_controlplane.collection_registry import CollectionRegistry
from llm_infra_controlplane.config_store import ConfigStore
from llm_infra_controlplane.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_collections(request: Request) -> CollectionRegistry:
    registry: CollectionRegistry = request.app.state.collections
    return registry


async def get_configs(request: Request) -> ConfigStore:
    store: ConfigStore = request.app.state.configs
    return store


async def get_audit(request: Request) -> AuditService:
    service: AuditService = request.app.state.audit
    return service


async def get_feeds(request: Request) -> Feeds | None:
    """The in-cluster feeds, or None when the control plane runs without them (standalone)."""
    feeds: Feeds | None = getattr(request.app.state, "feeds", None)
    return feeds


async def get_principal(request: Request) -> auth.Identity:
    """The caller `security.require` authenticated and authorized for this request."""
    principal: auth.Identity | None = getattr(request.state, "principal", None)
    if principal is None:
        # A programming error, not the caller's: the route's router lacks the dependency.
        raise errors.UnexpectedError(
            f"{request.url.path} asks for the principal but has no security.require dependency"
        )
    return principal


SettingsDep = Annotated[Settings, Depends(get_settings)]
CollectionsDep = Annotated[CollectionRegistry, Depends(get_collections)]
ConfigsDep = Annotated[ConfigStore, Depends(get_configs)]
AuditDep = Annotated[AuditService, Depends(get_audit)]
FeedsDep = Annotated[Feeds | None, Depends(get_feeds)]
PrincipalDep = Annotated[auth.Identity, Depends(get_principal)]
