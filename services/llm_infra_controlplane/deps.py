"""What routes receive through `Depends`: the state `lifespan` built, typed.

Routes never reach into `app.state` themselves; they declare `settings: SettingsDep`
or `registry: CollectionsDep` and get what `main.lifespan` put there.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from llm_infra_controlplane.collection_registry import CollectionRegistry
from llm_infra_controlplane.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_collections(request: Request) -> CollectionRegistry:
    registry: CollectionRegistry = request.app.state.collections
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
CollectionsDep = Annotated[CollectionRegistry, Depends(get_collections)]
