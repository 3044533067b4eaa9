"""W3C trace context and baggage across process boundaries (HTTP headers, message headers).

The propagator is fixed to ``traceparent``/``tracestate`` + ``baggage``
rather than the global one, so what crosses the wire does not depend on an
OTEL_PROPAGATORS variable in whichever process happens to run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager

from opentelemetry import baggage, context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def inject(headers: MutableMapping[str, str], ctx: context.Context | None = None) -> None:
    """Write the current (or `ctx`'s) span context and baggage into `headers`."""
    _PROPAGATOR.inject(headers, context=ctx)


def extract(headers: Mapping[str, str], ctx: context.Context | None = None) -> context.Context:
    """Return a context carrying the remote span context and baggage found in `headers`.

    Header names match case-insensitively (HTTP/1.1 peers capitalise them).
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    return _PROPAGATOR.extract(lowered, context=ctx)


@contextmanager
def with_baggage(**items: str) -> Iterator[context.Context]:
    """Make `items` baggage of the current context for the block; `inject` sends them on."""
    ctx = context.get_current()
    for key, value in items.items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = context.attach(ctx)
    try:
        yield ctx
    finally:
        context.detach(token)
