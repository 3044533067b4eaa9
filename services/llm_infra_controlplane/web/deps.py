"""What routes receive through `Depends`: the state `lifespan` built, typed.

Routes never reach into `app.state` themselves; they declare `settings: SettingsDep`
or `principal: PrincipalDep` (each domain package declares its own service the
same way) and get what `main.lifespan` put there.

Every dependency is `async def`, though none awaits: FastAPI runs a plain `def`
dependency in its thread pool, a thread hand-off on every request that showed
as the control plane's tail latency.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from llm_infra import auth, errors
from llm_infra_controlplane.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_principal(request: Request) -> auth.Identity:
    """The caller `web.auth.require` authenticated and authorized for this request."""
    principal: auth.Identity | None = getattr(request.state, "principal", None)
    if principal is None:
        # A programming error, not the caller's: the route's router lacks the dependency.
        raise errors.UnexpectedError(
            f"{request.url.path} asks for the principal but has no web.auth.require dependency"
        )
    return principal


def state(name: str) -> Any:
    """A dependency handing over `app.state.<name>` (what lifespan built under that name)."""

    async def get(request: Request) -> Any:
        return getattr(request.app.state, name, None)

    get.__name__ = f"get_{name}"
    return Depends(get)


SettingsDep = Annotated[Settings, Depends(get_settings)]
PrincipalDep = Annotated[auth.Identity, Depends(get_principal)]

__all__ = ["PrincipalDep", "SettingsDep", "get_principal", "get_settings", "state"]
