"""Turning the control plane's error answers back into `llm_infra.errors` exceptions."""

from __future__ import annotations

import httpx

from llm_infra import errors

PROBLEM_JSON = "application/problem+json"


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the error a non-2xx answer describes: its problem document, else its status."""
    if response.is_success:
        return
    if response.headers.get("content-type", "").startswith(PROBLEM_JSON):
        with errors.translate():
            document = response.json()
        raise errors.from_problem(document)
    # Not one of ours (a proxy's error page, say): the status is all there is to go on.
    status = httpx.HTTPStatusError(
        response.reason_phrase, request=response.request, response=response
    )
    raise errors.from_httpx(status) from None
