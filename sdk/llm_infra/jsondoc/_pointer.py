"""JSON Pointer (RFC 6901): strict parsing and read-only resolution.

python-jsonpath's pointer accepts things RFC 6901 does not (``~2``, array
indices such as ``+1`` or `` 1``), so parsing and index checks are ours; the
library still applies JSON Patch operations (`_patch`), which call `check_op`
here first so a patch sees the same strict rules as `pointer_get`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from llm_infra import errors

# RFC 6901 section 3: `~` is only ever followed by 0 or 1; every token starts with `/`.
_POINTER = re.compile(r"(?:/(?:[^~/]|~[01])*)*", re.DOTALL)
# RFC 6901 section 4: array indices have no sign, no spaces and no leading zeros.
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


def parse(pointer: str) -> list[str]:
    """The unescaped reference tokens of `pointer`; an invalid pointer raises ValidationError."""
    if not _POINTER.fullmatch(pointer):
        raise errors.ValidationError(
            f"invalid JSON Pointer {pointer!r}: must be empty or start with '/', "
            "and '~' must be followed by 0 or 1",
            field=pointer,
        )
    # Order matters (RFC 6901 section 4): `~01` is the token `~1`, not `/`.
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer.split("/")[1:]]


def escape(token: str) -> str:
    """One reference token, escaped for use in a pointer."""
    return token.replace("~", "~0").replace("/", "~1")


def join(tokens: Sequence[str | int]) -> str:
    """The pointer naming `tokens` (keys or array indices) from the root."""
    return "".join(f"/{escape(str(token))}" for token in tokens)


def _missing(pointer: str, detail: str) -> errors.ValidationError:
    return errors.ValidationError(f"JSON Pointer {pointer!r}: {detail}", field=pointer)


def step(node: Any, token: str, pointer: str) -> Any:
    """The child `token` names in `node`; absent or unreachable raises ValidationError."""
    if isinstance(node, Mapping):
        if token not in node:
            raise _missing(pointer, f"no member {token!r}")
        return node[token]
    if isinstance(node, list):
        if not _ARRAY_INDEX.fullmatch(token):
            raise _missing(pointer, f"{token!r} is not an array index")
        index = int(token)
        if index >= len(node):
            raise _missing(pointer, f"index {index} is past the end of an array of {len(node)}")
        return node[index]
    raise _missing(pointer, f"cannot descend into a {type(node).__name__} with {token!r}")


def resolve(doc: Any, pointer: str) -> Any:
    """The value `pointer` names in `doc` (not a copy)."""
    node = doc
    for token in parse(pointer):
        node = step(node, token, pointer)
    return node


def check_target(doc: Any, pointer: str, *, allow_append: bool) -> None:
    """Check that `pointer`'s parent exists and its last token suits the parent.

    `allow_append` admits ``-`` and the index one past the end of an array (the
    JSON Patch ``add`` target); otherwise the target must exist.
    """
    tokens = parse(pointer)
    if not tokens:
        return
    parent = doc
    for token in tokens[:-1]:
        parent = step(parent, token, pointer)
    last = tokens[-1]
    if isinstance(parent, list):
        if allow_append and last == "-":
            return
        if not _ARRAY_INDEX.fullmatch(last):
            raise _missing(pointer, f"{last!r} is not an array index")
        if int(last) > len(parent) or (int(last) == len(parent) and not allow_append):
            raise _missing(pointer, f"index {last} is out of range for an array of {len(parent)}")
    elif isinstance(parent, Mapping):
        if not allow_append and last not in parent:
            raise _missing(pointer, f"no member {last!r}")
    else:
        raise _missing(pointer, f"parent is a {type(parent).__name__}, not a container")


def pointer_get(doc: Any, pointer: str) -> Any:
    """The value at `pointer` in `doc` (RFC 6901).

    An invalid pointer and a missing target both raise `errors.ValidationError`
    with ``field`` set to the pointer: for callers the pointer is the input at fault.
    """
    return resolve(doc, pointer)
