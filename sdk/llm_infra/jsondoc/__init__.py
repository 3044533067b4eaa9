"""JSON documents for llm-infra: codec, canonical form, JSONPath, Pointer, Patch, streams.

One facade over well-kept libraries, with our error mapping and a promise that
nothing here mutates its inputs:

- `dumps`/`loads` (orjson) and `canonical`/`canonical_sha256` (RFC 8785, rfc8785)
  for the audit hash chain and caches;
- `query`/`query_all` (RFC 9535 JSONPath) and `pointer_get`/`pointer_set`/
  `pointer_remove` (RFC 6901), on python-jsonpath;
- `apply_patch`/`diff` (RFC 6902) and `merge_patch`/`merge_patch_diff` (RFC 7386);
- `iter_json_values`/`aiter_json_values` (ijson), `SseDecoder` and
  `iter_llm_deltas`/`aiter_llm_deltas` for streamed responses.

Malformed input raises `errors.SerializationError`; a bad path, pointer or
patch, a missing pointer target and a failed patch ``test`` raise
`errors.ValidationError` naming the culprit in ``field``. The language-neutral
test vectors in ``sdk/testvectors/jsondoc.json`` pin the behaviour for the WASM client.
Modules: `_codec`, `_path`, `_pointer`, `_patch`, `_stream`.
"""

from llm_infra.jsondoc._codec import canonical, canonical_sha256, dumps, loads
from llm_infra.jsondoc._patch import (
    apply_patch,
    diff,
    json_equal,
    merge_patch,
    merge_patch_diff,
    pointer_remove,
    pointer_set,
)
from llm_infra.jsondoc._path import query, query_all
from llm_infra.jsondoc._pointer import escape as escape_pointer_token
from llm_infra.jsondoc._pointer import join as join_pointer
from llm_infra.jsondoc._pointer import pointer_get
from llm_infra.jsondoc._stream import (
    SseDecoder,
    SseEvent,
    aiter_json_values,
    aiter_llm_deltas,
    iter_json_values,
    iter_llm_deltas,
)

__all__ = [
    "SseDecoder",
    "SseEvent",
    "aiter_json_values",
    "aiter_llm_deltas",
    "apply_patch",
    "canonical",
    "canonical_sha256",
    "diff",
    "dumps",
    "escape_pointer_token",
    "iter_json_values",
    "iter_llm_deltas",
    "join_pointer",
    "json_equal",
    "loads",
    "merge_patch",
    "merge_patch_diff",
    "pointer_get",
    "pointer_remove",
    "pointer_set",
    "query",
    "query_all",
]
