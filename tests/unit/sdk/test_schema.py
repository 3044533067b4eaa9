"""llm_infra.schema: validation paths, the registry, compatibility rules, TypeScript, OpenAPI."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from llm_infra import errors, schema

ORDER = {
    "$id": "https://example.com/order",
    "type": "object",
    "required": ["id", "items"],
    "properties": {
        "id": {"type": "string"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "qty": {"type": "integer", "minimum": 1},
                },
            },
        },
        "customer": {
            "type": "object",
            "properties": {
                "address": {"type": "object", "properties": {"zip": {"type": "string"}}}
            },
        },
    },
}


# -- Validator ---------------------------------------------------------------------------------


def test_valid_instance_passes() -> None:
    validator = schema.Validator(ORDER)
    order = {"id": "o1", "items": [{"name": "a", "qty": 2}], "customer": {"address": {"zip": "1"}}}
    validator.validate(order)
    assert validator.is_valid(order)
    assert validator.errors_of(order) == []


@pytest.mark.parametrize(
    ("instance", "path"),
    [
        ({"id": 1, "items": []}, "/id"),
        ({"id": "o", "items": [{"name": "a"}, {"name": "b"}, {"name": 3}]}, "/items/2/name"),
        ({"id": "o", "items": [{"name": "a", "qty": 0}]}, "/items/0/qty"),
        ({"id": "o", "items": [], "customer": {"address": {"zip": 75}}}, "/customer/address/zip"),
        ({"id": "o", "items": [{}]}, "/items/0"),
        ({"id": "o"}, ""),
    ],
)
def test_violation_path_is_the_instance_pointer(instance: dict[str, Any], path: str) -> None:
    validator = schema.Validator(ORDER)
    assert not validator.is_valid(instance)
    with pytest.raises(errors.SchemaViolation) as caught:
        validator.validate(instance)
    assert caught.value.path == path
    assert caught.value.schema_id == "https://example.com/order"
    assert caught.value.code == "schema.violation"


def test_errors_of_lists_every_error() -> None:
    validator = schema.Validator(ORDER)
    issues = validator.errors_of({"id": 7, "items": [{"name": 1}, {"qty": "x"}]})
    assert sorted(issue.instance_path for issue in issues) == [
        "/id",
        "/items/0/name",
        "/items/1",
        "/items/1/qty",
    ]
    by_path = {issue.instance_path: issue for issue in issues}
    assert by_path["/items/0/name"].schema_path == "/properties/items/items/properties/name/type"
    assert "not of type" in by_path["/id"].message


def test_violation_message_lists_the_errors() -> None:
    with pytest.raises(errors.SchemaViolation) as caught:
        schema.Validator(ORDER).validate({"id": 7, "items": [{"name": 1}]})
    assert caught.value.message.startswith("2 errors: ")
    assert "/id: " in caught.value.message
    assert "/items/0/name: " in caught.value.message


def test_pointer_escapes_slash_and_tilde() -> None:
    validator = schema.Validator({"properties": {"a/b~c": {"type": "string"}}})
    [issue] = validator.errors_of({"a/b~c": 1})
    assert issue.instance_path == "/a~1b~0c"
    assert schema.json_pointer(["items", 2, "name"]) == "/items/2/name"


def test_draft_defaults_to_2020_12_and_honours_dollar_schema() -> None:
    # prefixItems is 2020-12; draft-07 ignores it (and reads items as the tuple form instead).
    tuple_schema = {"prefixItems": [{"type": "string"}]}
    assert not schema.Validator(tuple_schema).is_valid([1])
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", **tuple_schema}
    assert schema.Validator(draft7).is_valid([1])


@pytest.mark.parametrize(
    "bad",
    [
        {"$id": "urn:bad", "type": "nope"},
        {"$id": "urn:bad", "minimum": "one"},
        {"$id": "urn:bad", "$ref": "#/$defs/missing"},
        {"$id": "urn:bad", "$schema": "https://example.com/unknown-draft"},
    ],
)
def test_invalid_schema_raises_schema_error_naming_it(bad: dict[str, Any]) -> None:
    with pytest.raises(errors.SchemaError) as caught:
        schema.Validator(bad)
    assert type(caught.value) is errors.SchemaError
    assert caught.value.schema_id == "urn:bad"
    assert "invalid schema" in caught.value.message


def test_schema_id_falls_back_to_title_then_given_id() -> None:
    assert schema.Validator({"title": "Thing"}).schema_id == "Thing"
    assert schema.Validator({"title": "Thing"}, schema_id="thing@1").schema_id == "thing@1"


def test_non_json_instance_is_a_validation_error() -> None:
    with pytest.raises(errors.ValidationError):
        schema.Validator({"type": "array"}).is_valid({1, 2})


# -- SchemaRegistry ----------------------------------------------------------------------------

V1 = {"type": "object", "properties": {"name": {"type": "string"}}}
V2 = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
V3_BREAKING = {**V2, "required": ["age"]}


def test_registry_versions_and_latest() -> None:
    registry = schema.SchemaRegistry()
    registry.register("person", "1.0.0", V1)
    registry.register("person", "1.10.0", V2)
    registry.register("person", "1.9.0", V1)
    registry.register("person", "2.0.0-rc.1", V3_BREAKING)
    assert registry.versions("person") == ["1.0.0", "1.9.0", "1.10.0", "2.0.0-rc.1"]
    assert registry.get("person").version == "2.0.0-rc.1"
    assert registry.get("person", "1.0.0").schema == V1
    registry.register("person", "2.0.0", V3_BREAKING)
    assert registry.get("person").version == "2.0.0"
    assert registry.names() == ["person"]


def test_semver_precedence() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11"]
    ordered += ["1.0.0-rc.1", "1.0.0", "2.0.0"]
    shuffled = [ordered[i] for i in (5, 0, 7, 3, 1, 6, 4, 2)]
    assert sorted(shuffled, key=schema.semver_key) == ordered


def test_registry_rejects_a_bad_version() -> None:
    with pytest.raises(errors.ValidationError):
        schema.SchemaRegistry().register("person", "1.0", V1)


def test_registry_validates_against_latest_or_a_version() -> None:
    registry = schema.SchemaRegistry()
    registry.register("person", "1.0.0", V1)
    registry.register("person", "2.0.0", V3_BREAKING)
    registry.validate("person", {"name": "a"}, version="1.0.0")
    with pytest.raises(errors.SchemaViolation) as caught:
        registry.validate("person", {"name": "a"})
    assert caught.value.schema_id == "person@2.0.0"


def test_reregistering_same_body_is_a_no_op_and_different_body_is_refused() -> None:
    registry = schema.SchemaRegistry()
    first = registry.register("person", "1.0.0", V1)
    assert registry.register("person", "1.0.0", dict(V1)) is first
    with pytest.raises(errors.SchemaError) as caught:
        registry.register("person", "1.0.0", V2)
    assert caught.value.schema_id == "person@1.0.0"
    assert registry.get("person", "1.0.0").schema == V1


def test_registered_schema_is_a_copy() -> None:
    registry = schema.SchemaRegistry()
    body: dict[str, Any] = {"type": "object", "properties": {"name": {"type": "string"}}}
    registry.register("person", "1.0.0", body)
    body["properties"]["name"]["type"] = "integer"
    registry.validate("person", {"name": "still a string"})


def test_unknown_name_or_version() -> None:
    registry = schema.SchemaRegistry()
    with pytest.raises(errors.SchemaError):
        registry.get("nobody")
    registry.register("person", "1.0.0", V1)
    with pytest.raises(errors.SchemaError) as caught:
        registry.get("person", "9.9.9")
    assert "1.0.0" in caught.value.message


def test_register_requiring_compatibility() -> None:
    registry = schema.SchemaRegistry()
    registry.register("person", "1.0.0", V1, require_backward_compatible=True)
    registry.register("person", "1.1.0", V2, require_backward_compatible=True)
    with pytest.raises(errors.SchemaError) as caught:
        registry.register("person", "1.2.0", V3_BREAKING, require_backward_compatible=True)
    assert "newly required" in caught.value.message
    assert "1.1.0" in caught.value.message
    assert registry.versions("person") == ["1.0.0", "1.1.0"]
    # Without the flag a major version may break.
    registry.register("person", "2.0.0", V3_BREAKING)


# -- check_compatible: each rule, both directions ------------------------------------------------


def _obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


COMPAT_RULES = [
    pytest.param(
        _obj(a={"type": "string"}),
        {**_obj(a={"type": "string"}), "required": ["a"]},
        "property 'a' is newly required",
        id="newly-required",
    ),
    pytest.param(
        {**_obj(a={}, b={}), "additionalProperties": False},
        {**_obj(a={}), "additionalProperties": False},
        "property 'b' removed while additionalProperties is false",
        id="property-removed",
    ),
    pytest.param(
        _obj(a={"type": ["string", "null"]}),
        _obj(a={"type": "string"}),
        "/properties/a: type changed",
        id="type-narrowed",
    ),
    pytest.param(
        _obj(a={"type": "number"}),
        _obj(a={"type": "integer"}),
        "/properties/a: type changed",
        id="number-to-integer",
    ),
    pytest.param(
        _obj(a={"type": "string"}),
        _obj(a={"type": "integer"}),
        "/properties/a: type changed",
        id="type-changed",
    ),
    pytest.param(
        _obj(a={"enum": ["x", "y"]}),
        _obj(a={"enum": ["x"]}),
        'enum value(s) removed: ["y"]',
        id="enum-value-removed",
    ),
    pytest.param(
        _obj(a={"type": "number", "minimum": 0}),
        _obj(a={"type": "number", "minimum": 1}),
        "minimum tightened from 0 to 1",
        id="minimum",
    ),
    pytest.param(
        _obj(a={"type": "number", "maximum": 10}),
        _obj(a={"type": "number", "maximum": 9}),
        "maximum tightened from 10 to 9",
        id="maximum",
    ),
    pytest.param(
        _obj(a={"type": "string", "minLength": 1}),
        _obj(a={"type": "string", "minLength": 2}),
        "minLength tightened from 1 to 2",
        id="minLength",
    ),
    pytest.param(
        _obj(a={"type": "string", "maxLength": 64}),
        _obj(a={"type": "string", "maxLength": 32}),
        "maxLength tightened from 64 to 32",
        id="maxLength",
    ),
    pytest.param(
        _obj(a={"type": "array"}),
        _obj(a={"type": "array", "minItems": 1}),
        "minItems 1 added",
        id="minItems",
    ),
    pytest.param(
        _obj(a={"type": "array", "maxItems": 5}),
        _obj(a={"type": "array", "maxItems": 4}),
        "maxItems tightened from 5 to 4",
        id="maxItems",
    ),
    pytest.param(
        _obj(a={"type": "string"}),
        {**_obj(a={"type": "string"}), "additionalProperties": False},
        "/: additionalProperties turned false",
        id="additionalProperties-false",
    ),
    pytest.param(
        _obj(outer=_obj(inner={"type": "string"})),
        _obj(outer={**_obj(inner={"type": "string"}), "required": ["inner"]}),
        "/properties/outer: property 'inner' is newly required",
        id="nested-property",
    ),
    pytest.param(
        {"type": "array", "items": _obj(n={"type": "integer", "maximum": 3})},
        {"type": "array", "items": _obj(n={"type": "integer", "maximum": 2})},
        "/items/properties/n: maximum tightened from 3 to 2",
        id="array-items",
    ),
]


@pytest.mark.parametrize(("old", "new", "reason"), COMPAT_RULES)
def test_breaking_change_is_reported(old: dict[str, Any], new: dict[str, Any], reason: str) -> None:
    reasons = schema.check_compatible(old, new)
    assert any(reason in text for text in reasons), reasons


# A changed type breaks both ways; every other rule loosens when applied backwards.
REVERSIBLE = [rule for rule in COMPAT_RULES if rule.id != "type-changed"]


@pytest.mark.parametrize(("old", "new", "reason"), REVERSIBLE)
def test_reverse_change_is_compatible(
    old: dict[str, Any], new: dict[str, Any], reason: str
) -> None:
    # new -> old breaks nothing
    assert schema.check_compatible(new, old) == [], f"reverse of: {reason}"


def test_compatible_changes_report_nothing() -> None:
    old = {**_obj(a={"type": "integer", "minimum": 1}, b={"enum": ["x"]}), "required": ["a"]}
    new = {
        **_obj(
            a={"type": "number", "minimum": 0},
            b={"enum": ["x", "y"]},
            c={"type": "string"},
        ),
        "required": [],
    }
    assert schema.check_compatible(old, new) == []
    assert schema.check_compatible(old, old) == []


# -- to_typescript -------------------------------------------------------------------------------

USER = {
    "description": "A user of the service.",
    "type": "object",
    "required": ["id", "name"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string", "description": "Display name."},
        "role": {"enum": ["admin", "member"]},
        "email": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "scores": {"type": "array", "items": {"type": ["number", "null"]}},
        "address": {"$ref": "#/$defs/Address"},
        "contact": {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "required": ["phone"],
                    "properties": {"phone": {"type": "string"}},
                },
            ]
        },
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "active": {"type": "boolean"},
        "first-seen": {"type": "string"},
    },
    "$defs": {
        "Address": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}},
            "additionalProperties": {"type": "string"},
        },
        "status": {
            "description": "Line one.\nLine two.",
            "oneOf": [{"const": "on"}, {"const": "off"}],
        },
    },
}

USER_TS = """\
export interface Address {
  city: string;
  [key: string]: string;
}

/**
 * Line one.
 * Line two.
 */
export type Status = "on" | "off";

/** A user of the service. */
export interface User {
  id: number;
  /** Display name. */
  name: string;
  role?: "admin" | "member";
  email?: string | null;
  tags?: string[];
  scores?: (number | null)[];
  address?: Address;
  contact?: string | {
    phone: string;
  };
  labels?: {
    [key: string]: string;
  };
  active?: boolean;
  "first-seen"?: string;
}
"""


def test_typescript_for_a_representative_schema() -> None:
    assert schema.to_typescript(USER, "user") == USER_TS


def test_typescript_index_signature_covers_named_properties() -> None:
    ts = schema.to_typescript(
        {
            "type": "object",
            "required": ["n"],
            "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
            "additionalProperties": {"type": "boolean"},
        },
        "mixed",
    )
    assert "  [key: string]: boolean | number | string | undefined;\n" in ts


def test_typescript_non_object_root_is_a_type_alias() -> None:
    assert schema.to_typescript({"type": "array", "items": {"type": "integer"}}, "ids") == (
        "export type Ids = number[];\n"
    )
    assert schema.to_typescript({}, "anything") == "export type Anything = unknown;\n"


# -- OpenAPI and pydantic ------------------------------------------------------------------------


def test_openapi_components_hoists_defs_and_rewrites_refs() -> None:
    components = schema.openapi_components(
        {
            "Order": {
                "$schema": schema.DRAFT_2020_12,
                "type": "object",
                "properties": {
                    "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}},
                    "parent": {"$ref": "#"},
                },
                "$defs": {
                    "Line": {
                        "type": "object",
                        "properties": {"sku": {"$ref": "#/$defs/Sku"}},
                        "$defs": {"Sku": {"type": "string"}},
                    }
                },
            },
            "Refund": {"type": "object", "properties": {"line": {"$ref": "#/definitions/Line"}}},
        }
    )
    assert components == {
        "schemas": {
            "Line": {"type": "object", "properties": {"sku": {"$ref": "#/components/schemas/Sku"}}},
            "Order": {
                "type": "object",
                "properties": {
                    "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
                    "parent": {"$ref": "#/components/schemas/Order"},
                },
            },
            "Refund": {
                "type": "object",
                "properties": {"line": {"$ref": "#/components/schemas/Line"}},
            },
            "Sku": {"type": "string"},
        }
    }


def test_openapi_components_refuses_two_bodies_for_one_name() -> None:
    with pytest.raises(errors.SchemaError) as caught:
        schema.openapi_components(
            {
                "A": {"$defs": {"Shared": {"type": "string"}}},
                "B": {"$defs": {"Shared": {"type": "integer"}}},
            }
        )
    assert caught.value.schema_id == "Shared"


class _Line(pydantic.BaseModel):
    sku: str
    qty: int = pydantic.Field(ge=1)


class _Order(pydantic.BaseModel):
    id: str
    lines: list[_Line]
    note: str | None = None


def test_from_model_round_trip() -> None:
    order_schema = schema.from_model(_Order)
    assert order_schema["$schema"] == schema.DRAFT_2020_12
    validator = schema.Validator(order_schema)
    order = _Order(id="o1", lines=[_Line(sku="a", qty=2)])
    validator.validate(order.model_dump(mode="json"))
    with pytest.raises(errors.SchemaViolation) as caught:
        validator.validate({"id": "o1", "lines": [{"sku": "a", "qty": 0}]})
    assert caught.value.path == "/lines/0/qty"
    components = schema.openapi_components({"Order": order_schema})["schemas"]
    assert set(components) == {"Order", "_Line"}
    assert components["Order"]["properties"]["lines"]["items"] == {
        "$ref": "#/components/schemas/_Line"
    }


def test_all_is_complete() -> None:
    public = {name for name in vars(schema) if not name.startswith("_")}
    modules = {"annotations"} | {name for name in public if name.startswith("_")}
    assert set(schema.__all__) == public - modules
