"""OpenAPI links: which call an answer leads to, and where that call's parameters come from.

A route declares its links with ``responses={200: links.response(links.to(...))}``; they land in
the OpenAPI document under the answer's status. Generated clients and API
explorers show them as "next steps", and stateful API tests (schemathesis'
state machine, in tests/security/) walk them: create a collection, upsert into
it, read a point back, delete it, read it again. Each link names its target by
operationId, which is the route function's name (`operation_id`), so renaming
a route function renames its operation.

Runtime expressions are OpenAPI's own (`$request.path.name`,
`$request.body#/points/0/id`, `$response.body#/items/0/name`).
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute

SAME_OBJECT = {"namespace": "$request.path.namespace", "name": "$request.path.name"}
"""The parameters of a call on the object the answered request named."""


def operation_id(route: APIRoute) -> str:
    """The operationId of `route`: its function's name (FastAPI's `generate_unique_id_function`)."""
    return route.name


def to(*operations: str, **parameters: str) -> dict[str, Any]:
    """Links to each of `operations` on the same object, with `parameters` added or replaced.

    Each link is named after its target in CamelCase (link names are what a
    reader of the document sees: ``UpsertPoints``, ``GetPoint``).
    """
    return {
        _link_name(operation): {
            "operationId": operation,
            "parameters": {**SAME_OBJECT, **parameters},
        }
        for operation in operations
    }


def response(*links: dict[str, Any]) -> dict[str, Any]:
    """The `responses=` entry of a status whose answer leads to every link in `links`."""
    merged: dict[str, Any] = {}
    for group in links:
        merged.update(group)
    return {"links": merged}


def _link_name(operation: str) -> str:
    return "".join(word.capitalize() for word in operation.split("_"))


__all__ = ["SAME_OBJECT", "operation_id", "response", "to"]
