"""The base of every resource model: camelCase on the wire, described fields, rules in one place.

A field's docstring is its description (it becomes `kubectl explain` text).
A cross-field rule is declared once, as a `Rule` carrying both its CEL
expression (for the API server, through the generated CRD) and the same check
in Python (for the SDK and the operator), so a manifest is judged the same way
on both sides.
"""

from __future__ import annotations

import datetime
import functools
import json
import types
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""The API server's integers: JSON numbers decoded as int64, anything larger refused."""


@dataclass(frozen=True)
class Rule:
    """A cross-field rule: `cel` for the API server, `check` for Python, one message for both.

    `field` is the JSON path below the model that the rule is about (for
    example ``.embeddingModel.dimensions``): the API server reports it as the
    failing field, and so does the Python check. A `transition` rule compares
    with the stored object (`oldSelf`) and only the API server can run it.
    """

    cel: str
    message: str
    field: str | None = None
    check: Callable[[Any], bool] | None = None
    reason: str | None = None
    transition: bool = False

    def as_validation(self) -> dict[str, str]:
        rule = {"rule": self.cel, "message": self.message}
        if self.field:
            rule["fieldPath"] = self.field
        if self.reason:
            rule["reason"] = self.reason
        return rule


def _yaml_scalar(value: object) -> str:
    # YAML reads an unquoted 2026-01-02 as a date; kubectl sends the same text as a string.
    if isinstance(value, datetime.date):  # datetime.datetime too
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} has no JSON form: quote the value")


def _bound_integers(schema: Any) -> None:
    if isinstance(schema, dict):
        if schema.get("type") == "int":
            if "le" not in schema and "lt" not in schema:
                schema["le"] = INT64_MAX
            if "ge" not in schema and "gt" not in schema:
                schema["ge"] = INT64_MIN
        for value in schema.values():
            _bound_integers(value)
    elif isinstance(schema, list):
        for value in schema:
            _bound_integers(value)


class ApiModel(BaseModel):
    """Base of the resource models: camelCase aliases, unknown fields refused, field docstrings."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=False,
        json_schema_extra=lambda schema, cls: _add_rules(schema, cls),
    )

    rules: ClassVar[tuple[Rule, ...]] = ()
    """Cross-field rules of this object (see `Rule`)."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[BaseModel], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # Every integer field of every model is an int64 on the API server; bounding them all
        # here, once, keeps a field that declares no bound from taking 2**70 in Python only.
        schema = handler(source)
        _bound_integers(schema)
        return schema

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> Self:
        """A manifest (YAML or JSON a user wrote) judged as the API server judges it.

        Strict JSON types, as the API server decodes them: "384" is no integer and "yes"
        no boolean; camelCase keys only (snake_case field names are Python's, not the
        manifest's). `model_validate` stays lax for what our own code hands over (the
        API server's answers, the control plane's requests), which is already typed.
        """
        text = json.dumps(_prune_nulls(cls, _as_kubectl_sends(manifest)), default=_yaml_scalar)
        return cls.model_validate_json(text, strict=True, by_alias=True, by_name=False)

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        broken = [rule for rule in self.rules if rule.check is not None and not rule.check(self)]
        if broken:
            # Located at the rule's field, as the API server reports it.
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("rule", rule.message),
                        loc=tuple(rule.field.strip(".").split(".")) if rule.field else (),
                        input=None,  # the manifest may hold inline values: never echo them
                    )
                    for rule in broken
                ],
            )
        return self

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


_GO_EXPONENT_FROM = 1e21
"""Go's JSON encoder writes a float at least this large with an exponent (1e+21)."""


def _as_kubectl_sends(value: Any) -> Any:
    """`value` as kubectl sends a YAML manifest: a whole float (8.0) written as an integer.

    kubectl reads YAML into Go values and writes them as JSON, where float64(8) is `8`; so
    `size: 8.0` in a YAML file reaches the API server as 8, an integer. (A client that posts
    JSON `8.0` itself gets it refused at the field: every integer field has a rule.)
    """
    if isinstance(value, float) and value.is_integer() and abs(value) < _GO_EXPONENT_FROM:
        return int(value)
    if isinstance(value, Mapping):
        return {key: _as_kubectl_sends(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_kubectl_sends(item) for item in value]
    return value


def _prune_nulls(model: type[BaseModel], data: Any) -> Any:
    """`data` for `model` without the nulls the API server prunes before it checks anything.

    The API server drops a null given to a field that is not nullable, then defaults it:
    `replicas: null` is the default replicas there, so it is here too; so is a map entry
    whose value is null. (A required field's null stays, and is refused on both sides.)
    Done on the manifest, before parsing: a model validator on the way would make pydantic
    read the rest as Python objects, not JSON, and refuse a JSON array for a tuple.
    """
    if not isinstance(data, Mapping):
        return data
    fields = _null_handling(model)
    pruned = {}
    for key, value in data.items():
        found = fields.get(key)
        if found is None:
            pruned[key] = value
            continue
        prunable, nested = found
        if value is None and prunable:
            continue
        pruned[key] = _prune_within(nested, value)
    return pruned


def _prune_within(annotation: Any, value: Any) -> Any:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _prune_within(args[0], value)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _prune_nulls(annotation, value)
    if origin in (list, tuple) and isinstance(value, list) and args:
        return [_prune_within(args[0], item) for item in value]
    if origin is dict and isinstance(value, Mapping):
        keep = _takes_none(args[1])
        return {k: _prune_within(args[1], v) for k, v in value.items() if v is not None or keep}
    if origin in (Union, types.UnionType):  # X | None
        inner = [arg for arg in args if arg is not type(None)]
        if len(inner) == 1:
            return _prune_within(inner[0], value)
    return value


@functools.cache
def _null_handling(model: type[BaseModel]) -> dict[str, tuple[bool, Any]]:
    """Each key of `model` (alias and name): whether its null is pruned, and its annotation."""
    fields = {}
    for name, field in model.model_fields.items():
        prunable = not field.is_required() and not _takes_none(field.annotation)
        for key in {name, field.alias} - {None}:
            fields[str(key)] = (prunable, field.annotation)
    return fields


def _takes_none(annotation: Any) -> bool:
    return annotation is None or annotation is Any or type(None) in get_args(annotation)


class _ListConstraint(ABC):
    """A list annotation that extends the CRD schema and checks the same thing in Python."""

    extensions: ClassVar[dict[str, Any]] = {}

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {**handler(schema), **self.schema_extensions()}

    def schema_extensions(self) -> dict[str, Any]:
        return dict(self.extensions)

    @abstractmethod
    def check(self, items: list[Any]) -> list[Any]:
        """Return `items` if they keep the constraint, else raise PydanticCustomError."""


@dataclass(frozen=True)
class KeyedBy(_ListConstraint):
    """`Annotated[list[X], KeyedBy("name")]`: a list whose items are unique by `key`.

    The CRD gets ``x-kubernetes-list-type: map`` (server-side apply merges
    items by key, the API server refuses duplicates); Python refuses them too.
    """

    key: str

    def schema_extensions(self) -> dict[str, Any]:
        return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [self.key]}

    def check(self, items: list[Any]) -> list[Any]:
        seen: set[object] = set()
        for item in items:
            value = item.get(self.key) if isinstance(item, dict) else getattr(item, self.key, None)
            if value in seen:
                raise PydanticCustomError(
                    # PydanticCustomError fills in {name} only: no conversions such as !r.
                    "duplicate_key",
                    "duplicate {key} {value}: each item needs its own {key}",
                    {"key": self.key, "value": repr(value)},
                )
            seen.add(value)
        return items


@dataclass(frozen=True)
class UniqueItems(_ListConstraint):
    """`Annotated[list[str], UniqueItems()]`: distinct values (``x-kubernetes-list-type: set``)."""

    extensions: ClassVar[dict[str, Any]] = {"x-kubernetes-list-type": "set"}

    def check(self, items: list[Any]) -> list[Any]:
        duplicates = sorted({str(item) for item in items if items.count(item) > 1})
        if duplicates:
            raise PydanticCustomError(
                "duplicate_item", "duplicate values {duplicates}", {"duplicates": duplicates}
            )
        return items


def _add_rules(schema: dict[str, Any], cls: type[Any]) -> None:
    rules = getattr(cls, "rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [rule.as_validation() for rule in rules]
