"""InfraSettings and load_settings: typed settings from layered sources, precedence as data.

`PRECEDENCE` orders the layers, highest first; `load_settings` says which
files, vault secret and extra sources one load uses and turns pydantic's
ValidationError into a ConfigError naming each key, the source that supplied
it (env var, file, vault path, URL), and the expected and actual type, never
the value. Sources live in `_sources`; dot-key access in `_access`.
"""

from __future__ import annotations

import contextvars
import os
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import pydantic
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from llm_infra import errors
from llm_infra.config import _sources

Layer = Literal["init", "env", "sources", "vault", "files"]

# Highest first; a field no layer sets keeps the model's default.
#   init     keyword values given to load_settings (or the constructor)
#   env      LLM_INFRA_* variables, nested with "__"
#   sources  extra Sources, such as the control plane's served configuration (HttpJsonSource)
#   vault    one OpenBao/Vault KV v2 secret
#   files    TOML/YAML/JSON files, a later file overriding an earlier one
PRECEDENCE: tuple[Layer, ...] = ("init", "env", "sources", "vault", "files")

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one load reads, besides init values."""

    files: tuple[Path, ...] = ()
    vault: _sources.VaultSource | None = None
    sources: tuple[_sources.Source, ...] = ()
    env: bool = True
    trail: _sources.Trail | None = None


# Set by load_settings for the duration of one construction: settings_customise_sources is a
# classmethod pydantic-settings calls with no way to pass per-load arguments.
_PLAN: contextvars.ContextVar[_Plan | None] = contextvars.ContextVar("llm_infra_config_plan")


class InfraSettings(BaseSettings):
    """Base of llm-infra settings: subclass it, then build instances with `load_settings`.

    Constructed directly (``MySettings()``) it reads init values and the
    environment only.
    """

    model_config = SettingsConfigDict(
        env_prefix="LLM_INFRA_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        plan = _PLAN.get(None) or _Plan()
        return resolve_layers(plan, settings_cls, init_settings, env_settings)


def resolve_layers(
    plan: _Plan,
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """The pydantic-settings sources of one load, in PRECEDENCE order."""
    trail = plan.trail
    layers: dict[Layer, list[PydanticBaseSettingsSource]] = {
        "init": [_sources.record(init_settings, lambda key: f"init value {key!r}", trail, "init")],
        "env": (
            [_sources.record(env_settings, _sources.env_origin(settings_cls), trail, "env")]
            if plan.env
            else []
        ),
        "sources": [_sources.bind(s, settings_cls, trail=trail) for s in plan.sources],
        "vault": [_sources.bind(v, settings_cls, trail=trail) for v in (plan.vault,) if v],
        # Later files win: the last one is the highest.
        "files": [
            _sources.bind(_sources.FileSource(path), settings_cls, trail=trail)
            for path in reversed(plan.files)
        ],
    }
    return tuple(source for layer in PRECEDENCE for source in layers[layer])


def load_settings(
    model_cls: type[SettingsT],
    *,
    files: Iterable[str | os.PathLike[str]] = (),
    vault: _sources.VaultSource | None = None,
    sources: Sequence[_sources.Source] = (),
    env: bool = True,
    init: Mapping[str, Any] | None = None,
) -> SettingsT:
    """Load `model_cls` from `init` > environment > `sources` > `vault` > `files` > defaults.

    Each source is read once. Raises ConfigError naming every invalid key with
    its source and types; SerializationError naming file and line for a
    malformed file; the retryable errors of an unreachable OpenBao or URL.
    """
    trail = _sources.Trail()
    plan = _Plan(
        files=tuple(Path(path) for path in files),
        vault=vault,
        sources=tuple(sources),
        env=env,
        trail=trail,
    )
    token = _PLAN.set(plan)
    try:
        return model_cls(**dict(init or {}))
    except pydantic.ValidationError as exc:
        raise config_error(exc, model_cls, trail) from None
    finally:
        _PLAN.reset(token)


def config_error(
    exc: pydantic.ValidationError,
    model_cls: type[pydantic.BaseModel],
    trail: _sources.Trail | None = None,
) -> errors.ConfigError:
    """A ConfigError for every issue of `exc`: key, source, expected and actual type, no value."""
    lines: list[str] = []
    keys: list[str] = []
    for issue in exc.errors(include_url=False, include_context=False):
        loc = tuple(issue["loc"])
        key = ".".join(str(part) for part in loc) or "(root)"
        keys.append(key)
        source = (trail.origin(loc) if trail is not None else None) or "defaults"
        if issue["type"] == "missing":
            lines.append(f"{key} (required, {_expected_type(model_cls, loc)}) is not set")
            continue
        # The input's type only: the value itself may be a secret.
        actual = type(issue.get("input")).__name__
        lines.append(
            f"{key} (from {source}) expected {_expected_type(model_cls, loc)}, got {actual}"
            f" ({issue['msg']})"
        )
    more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
    return errors.ConfigError(
        f"{model_cls.__name__}{more}: " + "; ".join(lines),
        key=keys[0] if keys else None,
        cause="pydantic_core.ValidationError",
    )


def _expected_type(model_cls: type[pydantic.BaseModel], loc: tuple[str | int, ...]) -> str:
    annotation: Any = model_cls
    for part in loc:
        annotation = _strip_optional(annotation)
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            fields = annotation.model_fields
            if not isinstance(part, str) or part not in fields:
                return "?"
            annotation = fields[part].annotation
        else:  # an item of a list, tuple or dict: its value type
            args = typing.get_args(annotation)
            annotation = args[-1] if args else Any
    return _type_name(_strip_optional(annotation))


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in {typing.Union, types.UnionType}:
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
