"""Values out of byte streams: concatenated/NDJSON values, Server-Sent Events, LLM deltas.

`iter_json_values`/`aiter_json_values` push chunks into ijson's incremental
parser (yajl, multiple values), so a value may span any number of chunks.
`SseDecoder` follows the WHATWG "event stream" parsing rules; `iter_llm_deltas`
reads OpenAI-style ``data: {...}`` events until ``data: [DONE]``.
"""

from __future__ import annotations

import codecs
import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any

import ijson  # type: ignore[import-untyped]  # ijson ships no type information

from llm_infra import errors
from llm_infra.jsondoc import _codec

_JSON = errors.SerializationFormat.JSON


class _ValueSplitter:
    """Feeds chunks to ijson and hands back each top-level value once complete."""

    def __init__(self) -> None:
        self._found = ijson.sendable_list()
        # use_float: JSON numbers as float/int like `loads`, not Decimal.
        self._parser = ijson.items_coro(self._found, "", multiple_values=True, use_float=True)
        self._offset = 0

    def _drain(self) -> list[Any]:
        values = list(self._found)
        del self._found[:]
        return values

    def _fail(self, exc: Exception) -> errors.SerializationError:
        return errors.SerializationError(
            f"malformed JSON stream: {exc}",
            data_format=_JSON,
            location=f"chunk ending at byte {self._offset}",
            cause=type(exc).__name__,
        )

    def feed(self, chunk: bytes) -> list[Any]:
        if not chunk:
            return []  # ijson reads an empty send as end of input
        self._offset += len(chunk)
        try:
            self._parser.send(bytes(chunk))
        except ijson.JSONError as exc:
            raise self._fail(exc) from None
        return self._drain()

    def close(self) -> list[Any]:
        # A number at the very end is only known to be complete at end of input.
        try:
            self._parser.close()
        except ijson.JSONError as exc:
            raise self._fail(exc) from None
        return self._drain()


def iter_json_values(chunks: Iterable[bytes]) -> Iterator[Any]:
    """Each JSON value in concatenated or newline-delimited JSON, whatever the chunking.

    A malformed or truncated stream raises `errors.SerializationError`.
    """
    splitter = _ValueSplitter()
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.close()


async def aiter_json_values(chunks: AsyncIterable[bytes]) -> AsyncIterator[Any]:
    """`iter_json_values` over an async byte stream (an httpx response's `aiter_bytes()`)."""
    splitter = _ValueSplitter()
    async for chunk in chunks:
        for value in splitter.feed(chunk):
            yield value
    for value in splitter.close():
        yield value


# -- Server-Sent Events ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event.

    `id` is the stream's last event ID ("" when none was set); `retry` the latest
    reconnection time (ms) the stream asked for, if any.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


class SseDecoder:
    """Incremental WHATWG event-stream parser: `feed(bytes)` returns the events completed.

    Lines end in CRLF, CR or LF (a CRLF split across chunks counts once); a
    leading BOM is dropped; ``:`` lines are comments; ``data`` lines join with
    LF; a blank line dispatches, and a block without data dispatches nothing.
    An unterminated last block is discarded at end of stream, as the spec says.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._started = False
        self._skip_lf = False  # the last chunk ended in CR; a leading LF belongs to it
        self._event = ""
        self._data: list[str] = []
        self.last_event_id = ""
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Events completed by `chunk`."""
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._skip_lf and text:
            self._skip_lf = False
            text = text.removeprefix("\n")
        self._buffer += text
        events: list[SseEvent] = []
        while True:
            cut = min(
                (i for i in (self._buffer.find("\r"), self._buffer.find("\n")) if i >= 0),
                default=-1,
            )
            if cut < 0:
                break
            line, ending = self._buffer[:cut], self._buffer[cut]
            rest = self._buffer[cut + 1 :]
            if ending == "\r":
                if rest.startswith("\n"):
                    rest = rest[1:]
                elif not rest:
                    self._skip_lf = True
            self._buffer = rest
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SseEvent(
            event=event or "message", data="\n".join(data), id=self.last_event_id, retry=self.retry
        )


def _delta(event: SseEvent) -> dict[str, Any]:
    value = _codec.loads(event.data)
    if not isinstance(value, dict):
        raise errors.SerializationError(
            f"an LLM stream event must carry a JSON object, got {type(value).__name__}",
            data_format=_JSON,
            location=f"event id {event.id!r}" if event.id else None,
        )
    return value


def iter_llm_deltas(events: Iterable[SseEvent]) -> Iterator[dict[str, Any]]:
    """The parsed JSON object of each OpenAI-style chunk event, stopping at ``[DONE]``.

    Events with empty data are skipped; data that is not a JSON object raises
    `errors.SerializationError`.
    """
    for event in events:
        if event.data.strip() == "[DONE]":
            return
        if event.data.strip():
            yield _delta(event)


async def aiter_llm_deltas(events: AsyncIterable[SseEvent]) -> AsyncIterator[dict[str, Any]]:
    """`iter_llm_deltas` over an async stream of events."""
    async for event in events:
        if event.data.strip() == "[DONE]":
            return
        if event.data.strip():
            yield _delta(event)
