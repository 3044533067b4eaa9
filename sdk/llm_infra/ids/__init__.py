"""Identifiers for llm-infra: UUIDv7, ULID, nanoid, Snowflake and typed prefixed ids.

One facade over well-kept libraries (uuid-utils or the standard library, python-ulid,
fastnanoid); our part is the policy: defaults, argument checks, error mapping, and the
Snowflake generator, which no maintained library offers with an injectable clock.

- `uuid7`, `ulid`, `nanoid` make one id; `Uuid7Generator`, `UlidGenerator`,
  `NanoidGenerator` and `Snowflake` implement the `IdGenerator` protocol (``new() -> str``),
  as does every prefixed id class;
- `uuid7_timestamp_ms`, `ulid_timestamp_ms`, `parse_ulid` and `Snowflake.parse` read ids back;
- `PrefixedId` subclasses (``class RequestId(PrefixedId, prefix="req")``) or `id_type("req")`
  make ``req_<ULID>`` ids that sort by time and validate as pydantic fields.

Bad input raises `errors.ValidationError` (``field`` names the argument, or the expected
prefix); a Snowflake clock that steps back more than ``max_rollback_ms`` raises
`errors.ConfigError` with key ``clock``. The language-neutral test vectors in
``sdk/testvectors/ids.json`` pin the formats for the WASM client.
Modules: `_random` (UUIDv7, ULID, nanoid), `_snowflake`, `_prefixed`.
"""

from llm_infra.ids._prefixed import PREFIX_PATTERN, PrefixedId, id_type
from llm_infra.ids._random import (
    CROCKFORD_BASE32,
    NANOID_ALPHABET,
    NANOID_MAX_SIZE,
    NANOID_SIZE,
    IdGenerator,
    NanoidGenerator,
    UlidGenerator,
    Uuid7Generator,
    nanoid,
    parse_ulid,
    ulid,
    ulid_timestamp_ms,
    uuid7,
    uuid7_timestamp_ms,
)
from llm_infra.ids._snowflake import (
    DEFAULT_MAX_ROLLBACK_MS,
    MAX_SEQUENCE,
    MAX_SNOWFLAKE,
    MAX_WORKER,
    SNOWFLAKE_EPOCH_MS,
    Snowflake,
    SnowflakeParts,
)

__all__ = [
    "CROCKFORD_BASE32",
    "DEFAULT_MAX_ROLLBACK_MS",
    "MAX_SEQUENCE",
    "MAX_SNOWFLAKE",
    "MAX_WORKER",
    "NANOID_ALPHABET",
    "NANOID_MAX_SIZE",
    "NANOID_SIZE",
    "PREFIX_PATTERN",
    "SNOWFLAKE_EPOCH_MS",
    "IdGenerator",
    "NanoidGenerator",
    "PrefixedId",
    "Snowflake",
    "SnowflakeParts",
    "UlidGenerator",
    "Uuid7Generator",
    "id_type",
    "nanoid",
    "parse_ulid",
    "ulid",
    "ulid_timestamp_ms",
    "uuid7",
    "uuid7_timestamp_ms",
]
