"""The FastAPI side of access: the dependency every /v1 router gets (`require`).

It asks `access.Security` (built in lifespan into `app.state.security`) who
calls and whether `access.policy` lets them; the caller is left in
``request.state.principal`` (`web.deps.PrincipalDep`).

FastAPI reads a request's body before it runs any dependency, so a router's
routes are `CheckedRoute`s: the check of the router's `require` runs in front
of the handler, and a caller without rights on the namespace gets its 403 from
the headers alone, whatever it sends after them (`web.guard` has authenticated
it by then). The dependency stays: it declares the bearer scheme in the
document and hands routes the caller, and finds the caller already checked.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response, params
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from llm_infra import auth
from llm_infra_controlplane.access.policy import ACTION_EXTRA, IMPLIED, Action, Kind
from llm_infra_controlplane.access.service import Security
from llm_infra_controlplane.web.guard import IDENTITY_STATE

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Documents the scheme in the OpenAPI (the docs' "Authorize" button); `Security` does the checking.
_bearer = HTTPBearer(auto_error=False, description="an API key (llmi_...) or a JWT")


@dataclass(frozen=True, slots=True)
class _Requirement:
    """What a router's routes need: `kind` in the path's namespace, `writes` to change it."""

    kind: Kind
    writes: Action

    async def check(self, request: Request) -> auth.Identity:
        """The caller, once allowed; left in ``request.state.principal``."""
        principal: auth.Identity | None = getattr(request.state, "principal", None)
        if principal is not None:
            return principal  # checked before the body was read
        security: Security = request.app.state.security
        # `web.guard` authenticated the caller before the body was read; an app built
        # without it (a test's bare router) authenticates here.
        identity: auth.Identity | None = getattr(request.state, IDENTITY_STATE, None)
        if identity is None:
            client = request.client.host if request.client else None
            identity = await security.authenticate(request.headers, client=client)
        namespace = request.path_params.get("namespace")
        security.authorize(identity, namespace, self.kind, _action(request, self.writes))
        request.state.principal = identity
        return identity


def require(kind: Kind, *, writes: Action = "write") -> params.Depends:
    """The dependency of a /v1 router: authenticate, authorize `kind` in the path's namespace.

    GET and HEAD need `read`, other methods `writes` (``"admin"`` for the collection admin
    API), unless the route says otherwise with ``openapi_extra=READ_ONLY_ROUTE``. The caller
    is left in ``request.state.principal`` (`deps.PrincipalDep`).
    """
    requirement = _Requirement(kind, writes)

    async def authorized(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> auth.Identity:
        return await requirement.check(request)

    authorized.requirement = requirement  # type: ignore[attr-defined]  # read by CheckedRoute
    return params.Depends(authorized)


class CheckedRoute(APIRoute):
    """A route that runs its router's `require` check before its body is read.

    For routers that declare ``dependencies=[require(...)]`` themselves (an
    include-time dependency is only known to FastAPI's own handler).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        found = (
            getattr(dependency.dependency, "requirement", None) for dependency in self.dependencies
        )
        requirements = [
            requirement for requirement in found if isinstance(requirement, _Requirement)
        ]
        if not requirements:
            return handler

        async def checked(request: Request) -> Response:
            for requirement in requirements:
                await requirement.check(request)
            return await handler(request)

        return checked


def _action(request: Request, writes: Action) -> Action:
    route = request.scope.get("route")
    declared = (getattr(route, "openapi_extra", None) or {}).get(ACTION_EXTRA)
    if declared in IMPLIED:
        action: Action = declared
        return action
    return "read" if request.method in _READ_METHODS else writes


__all__ = ["CheckedRoute", "require"]
