"""The sandbox rules: every path a FileSystem takes is relative to its root and stays under it.

Pure string policy, shared by all backends; the local backend adds a symlink
check on top (`_filesystem`), since only a real directory can be escaped that way.
"""

from __future__ import annotations

import re

from llm_infra import errors

# Control characters and backslashes: a Windows separator or a NUL would mean
# something else to the OS than to the sandbox check.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")
# object_store's local backend stages writes as `<name>#<n>` and hides such names.
_STAGING = re.compile(r"#\d+$")


def normalize_path(path: str) -> str:
    """The canonical form of a file path (`a/./b` -> `a/b`, `a/x/../b` -> `a/b`).

    Raises errors.ValidationError for an empty or absolute path, a backslash or
    control character, an empty segment (`a//b`, a trailing slash), a `..` that
    climbs above the root, and a name the local backend reserves (`x#1`).
    """
    normalized = _normalize(path, field="path")
    if not normalized:
        raise _invalid(path, "path", "names no file")
    return normalized


def normalize_prefix(prefix: str) -> str:
    """The canonical form of a list/watch prefix: like a path, but may be empty or end in `/`."""
    trimmed = prefix[:-1] if prefix.endswith("/") and prefix != "/" else prefix
    return _normalize(trimmed, field="prefix") if trimmed else ""


def is_under(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or inside it, segment by segment (`a` holds `a/b`, not `ab`)."""
    return not prefix or path == prefix or path.startswith(prefix + "/")


def is_staging_name(path: str) -> bool:
    """Whether a name is one of the local backend's in-flight temporary files."""
    return _STAGING.search(path) is not None


def _normalize(path: str, *, field: str) -> str:
    if not isinstance(path, str):
        raise _invalid(repr(path), field, "must be a string")
    if _FORBIDDEN.search(path):
        raise _invalid(path, field, "contains a backslash or a control character")
    if path.startswith("/"):
        raise _invalid(path, field, "is absolute; paths are relative to the filesystem's root")
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "":
            raise _invalid(path, field, "has an empty segment")
        if segment == ".":
            continue
        if segment == "..":
            if not segments:
                raise _invalid(path, field, "climbs above the filesystem's root")
            segments.pop()
            continue
        if is_staging_name(segment):
            raise _invalid(path, field, "ends in '#<digits>', reserved for temporary files")
        segments.append(segment)
    return "/".join(segments)


def _invalid(path: str, field: str, reason: str) -> errors.ValidationError:
    return errors.ValidationError(f"{field} {path!r} {reason}", field=field, actual=path)
