"""The FastAPI side of access: the dependency every /v1 router gets (`require`).

It asks `access.Security` (built in lifespan into `app.state.security`) who
calls and whether `access.policy` lets them; the caller is left in
``request.state.principal`` (`web.deps.PrincipalDep`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from llm_infra import auth
from llm_infra_controlplane.access.policy import ACTION_EXTRA, IMPLIED, Action, Kind
from llm_infra_controlplane.access.service import Security
from llm_infra_controlplane.web.guard import IDENTITY_STATE

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Documents the scheme in the OpenAPI (the docs' "Authorize" button); `Security` does the checking.
_bearer = HTTPBearer(auto_error=False, description="an API key (llmi_...) or a JWT")


def require(kind: Kind, *, writes: Action = "write") -> params.Depends:
    """The dependency of a /v1 router: authenticate, authorize `kind` in the path's namespace.

    GET and HEAD need `read`, other methods `writes` (``"admin"`` for the collection admin
    API), unless the route says otherwise with ``openapi_extra=READ_ONLY_ROUTE``. The caller
    is left in ``request.state.principal`` (`deps.PrincipalDep`).
    """

    async def authorized(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> auth.Identity:
        security: Security = request.app.state.security
        # `web.guard` authenticated the caller before the body was read; an app built
        # without it (a test's bare router) authenticates here.
        identity: auth.Identity | None = getattr(request.state, IDENTITY_STATE, None)
        if identity is None:
            client = request.client.host if request.client else None
            identity = await security.authenticate(request.headers, client=client)
        namespace = request.path_params.get("namespace")
        security.authorize(identity, namespace, kind, _action(request, writes))
        request.state.principal = identity
        return identity

    return params.Depends(authorized)


def _action(request: Request, writes: Action) -> Action:
    route = request.scope.get("route")
    declared = (getattr(route, "openapi_extra", None) or {}).get(ACTION_EXTRA)
    if declared in IMPLIED:
        action: Action = declared
        return action
    return "read" if request.method in _READ_METHODS else writes


__all__ = ["require"]
