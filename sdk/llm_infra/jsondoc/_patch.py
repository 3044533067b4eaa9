"""Changing documents without mutating them: JSON Patch, Merge Patch, pointer writes, diffs.

RFC 6902 operations are applied by python-jsonpath one at a time on a deep
copy, after `_pointer.check_target` has vetted their pointers, so a failure
names the index of the operation at fault. ``test`` is evaluated here with
JSON's equality (``true`` is not ``1``; ``1`` is ``1.0``). RFC 7386 merge patch
and both diffs are small enough to be pure functions of ours.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import jsonpath

from llm_infra import errors
from llm_infra.jsondoc import _pointer

_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: numbers by value, but booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


# -- JSON Patch (RFC 6902) ---------------------------------------------------------------------


def _invalid(where: str, detail: str) -> errors.ValidationError:
    return errors.ValidationError(f"{where}: {detail}", field=where)


def _member(op: Mapping[str, Any], name: str, where: str) -> str:
    value = op.get(name)
    if not isinstance(value, str):
        raise _invalid(where, f"'{name}' must be a JSON Pointer string")
    return value


def _apply_one(doc: Any, op: Any, where: str) -> Any:
    """`doc` (owned by the caller, may be changed in place) after one operation."""
    if not isinstance(op, Mapping):
        raise _invalid(where, "an operation must be an object")
    name = op.get("op")
    if name not in _OPS:
        raise _invalid(where, f"unknown op {name!r}")
    path = _member(op, "path", where)
    if name in ("add", "replace", "test") and "value" not in op:
        raise _invalid(where, f"{name} needs a 'value'")
    # Only the members the op defines; RFC 6902 section 4 says to ignore the rest.
    clean: dict[str, Any] = {"op": name, "path": path}
    try:
        if name == "test":
            if not json_equal(_pointer.resolve(doc, path), op["value"]):
                raise _invalid(where, f"test failed: value at {path!r} differs")
            return doc
        if name in ("add", "replace"):
            clean["value"] = copy.deepcopy(op["value"])  # the result must not alias the patch
        if name in ("move", "copy"):
            clean["from"] = source = _member(op, "from", where)
            _pointer.resolve(doc, source)
            if name == "move" and path != source and path.startswith(source + "/"):
                raise _invalid(where, f"cannot move {source!r} into its own child {path!r}")
        if name == "remove" and path == "":
            raise _invalid(where, "cannot remove the whole document")
        _pointer.check_target(doc, path, allow_append=name in ("add", "move", "copy"))
    except errors.ValidationError as exc:
        if exc.field == where:
            raise
        raise _invalid(where, exc.message) from None
    try:
        return jsonpath.JSONPatch([clean], unicode_escape=False).apply(doc)
    except (jsonpath.JSONPatchError, jsonpath.JSONPointerError) as exc:
        raise errors.ValidationError(
            f"{where}: {exc}", field=where, cause=type(exc).__name__
        ) from None


def apply_patch(doc: Any, patch: Sequence[Mapping[str, Any]]) -> Any:
    """A new document: `doc` with the RFC 6902 `patch` applied; `doc` is untouched.

    All or nothing: an invalid operation or a failed ``test`` raises
    `errors.ValidationError` whose message and ``field`` name ``patch op <index>``.
    """
    if not isinstance(patch, list | tuple):
        raise errors.ValidationError("a JSON Patch must be an array of operations", field="patch")
    result = copy.deepcopy(doc)
    for index, op in enumerate(patch):
        result = _apply_one(result, op, f"patch op {index}")
    return result


def diff(a: Any, b: Any) -> list[dict[str, Any]]:
    """A JSON Patch that turns `a` into `b`: ``apply_patch(a, diff(a, b)) == b``.

    Objects are compared member by member, recursively. Arrays are compared
    position by position, then the tail is appended or trimmed; there is no move
    detection, so inserting at the front rewrites every later element. Any other
    change replaces the value. Values in the patch are copies.
    """
    ops: list[dict[str, Any]] = []
    _diff(a, b, [], ops)
    return ops


def _diff(a: Any, b: Any, where: list[str | int], ops: list[dict[str, Any]]) -> None:
    if json_equal(a, b):
        return
    path = _pointer.join(where)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        ops.extend(
            {"op": "remove", "path": _pointer.join([*where, key])} for key in a if key not in b
        )
        for key, value in b.items():
            if key in a:
                _diff(a[key], value, [*where, key], ops)
            else:
                member = _pointer.join([*where, key])
                ops.append({"op": "add", "path": member, "value": copy.deepcopy(value)})
    elif isinstance(a, list) and isinstance(b, list):
        common = min(len(a), len(b))
        for index in range(common):
            _diff(a[index], b[index], [*where, index], ops)
        # Trim from the end so earlier indices stay valid while removing.
        ops.extend(
            {"op": "remove", "path": _pointer.join([*where, index])}
            for index in reversed(range(common, len(a)))
        )
        ops.extend(
            {"op": "add", "path": f"{path}/-", "value": copy.deepcopy(value)}
            for value in b[common:]
        )
    else:
        ops.append({"op": "replace", "path": path, "value": copy.deepcopy(b)})


# -- pointer writes -----------------------------------------------------------------------------


def pointer_set(doc: Any, pointer: str, value: Any) -> Any:
    """A new document with `value` at `pointer`: replaces an existing target, else adds it.

    The parent must exist; in an array, ``-`` (or the length) appends. Errors as
    `pointer_get`: `errors.ValidationError` with ``field`` naming the pointer.
    """
    where = f"pointer {pointer!r}"
    try:
        _pointer.resolve(doc, pointer)
        op = "replace"
    except errors.ValidationError:
        _pointer.parse(pointer)  # an invalid pointer is an error, not a missing target
        op = "add"
    return _apply_one(copy.deepcopy(doc), {"op": op, "path": pointer, "value": value}, where)


def pointer_remove(doc: Any, pointer: str) -> Any:
    """A new document without the value at `pointer` (which must exist; not the root)."""
    _pointer.parse(pointer)
    return _apply_one(copy.deepcopy(doc), {"op": "remove", "path": pointer}, f"pointer {pointer!r}")


# -- JSON Merge Patch (RFC 7386) ----------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """A new document: RFC 7386 section 2 applied to copies of `target` and `patch`.

    An object patch merges member by member and ``null`` deletes a member; any
    other patch (array, scalar, null) replaces the target whole.
    """
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    # Members kept from `target` were copied shallowly above; copy them deeply now.
    return {
        name: value if name in patch else copy.deepcopy(value) for name, value in result.items()
    }


def merge_patch_diff(a: Any, b: Any) -> Any:
    """A merge patch that turns `a` into `b`: ``merge_patch(a, merge_patch_diff(a, b)) == b``.

    Merge patch cannot set a member to ``null`` (null deletes), so a `b` that
    has a null member where `a` differs raises `errors.ValidationError`; use `diff`.
    """
    if not isinstance(b, Mapping):
        return copy.deepcopy(b)
    base: Mapping[str, Any] = a if isinstance(a, Mapping) else {}
    patch: dict[str, Any] = {name: None for name in base if name not in b}
    for name, value in b.items():
        if name in base and json_equal(base[name], value):
            continue
        if value is None:
            raise errors.ValidationError(
                f"merge patch cannot set member {name!r} to null", field=name
            )
        patch[name] = merge_patch_diff(base.get(name), value)
    return patch
