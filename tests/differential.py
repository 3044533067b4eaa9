"""Differential testing of the resource API: manifests generated from the models, judged twice.

`cases(kind)` is a hypothesis strategy of `Case`s: a manifest of the kind drawn
from the spec model's own JSON Schema (pydantic's view of it; the CRD is made
from the same schema, so a difference between the two judges is a bug in one
of them), then, three times in four, one mutation of it: a wrong type, a bound
crossed, a value off the enum, a pattern broken, a cross-field rule broken, an
unknown key, a string number ("384"), a bool-ish ("yes"), an int beyond int64,
a null, a bad metadata.name, or an edge value that stays valid (at a bound, at
the longest length).

`server_verdict` asks the API server (a dry-run create, as kubectl applies a new
object: strict about unknown fields, and a whole float written as an integer, as kubectl
is); `models_verdict` parses the
manifest as the operator does (`Kind.model_validate`); `disagreement` compares
them: the same accept or refuse, and a refusal by both must name, in the API
server's answer, every field the models name. The test is
tests/integration/sdk/test_crds_differential.py; what it found is kept in
tests/data/invalid/ and tests/data/valid/ (files named differential-*).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import pydantic
from hypothesis import strategies as st

from llm_infra.api._resource import Resource

JsonPath = tuple[str | int, ...]
Schema = Mapping[str, Any]
RuleMode = Literal["keep", "any", "break"]
T = TypeVar("T")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Drawing again until an object keeps (or breaks) its cross-field rules: a few tries suffice
# for the one-of rules of these models; past that the draw is kept as it is.
_ATTEMPTS = 8
# Lists and strings stay short in the base manifest; the edge mutations reach the bounds.
_SHORT = 2
_SHORT_TEXT = 8
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_ABSENT = object()
"""A mutation that removes the key."""


@dataclass(frozen=True)
class Case:
    """A manifest of `kind` and how it was made (`mutation`: none, or what was changed where)."""

    kind: type[Resource]
    manifest: dict[str, Any]
    mutation: str = "none"


@dataclass(frozen=True)
class Verdict:
    """What a judge said: accepted, or refused naming `fields`, in `detail` words."""

    accepted: bool
    fields: tuple[str, ...] = ()
    detail: str = ""
    kinds: tuple[str, ...] = ()
    """The models' error type of each of `fields` (pydantic's: rule, extra_forbidden, ...)."""
    decoding: bool = False
    """The API server refused while decoding (unknown fields): it checked nothing else."""
    rules_unchecked: bool = False
    """The API server stopped before the CEL rules (it does so on any schema error)."""


def dotted(loc: Sequence[str | int]) -> str:
    """A location as the API server writes it: spec.targets[0].name."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


# -- generation ----------------------------------------------------------------------------------


def _model_classes(model: type[pydantic.BaseModel]) -> dict[str, type[pydantic.BaseModel]]:
    """Every model reachable from `model` by name: the names of pydantic's $defs."""
    found: dict[str, type[pydantic.BaseModel]] = {}

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            if annotation.__name__ not in found:
                found[annotation.__name__] = annotation
                for field in annotation.model_fields.values():
                    visit(field.annotation)
            return
        for argument in typing.get_args(annotation):
            visit(argument)

    visit(model)
    return found


class KindSchema:
    """A kind's spec schema as hypothesis strategies, and the places of a manifest to mutate."""

    def __init__(self, kind: type[Resource]) -> None:
        self.kind = kind
        spec_model = kind.model_fields["spec"].annotation
        assert isinstance(spec_model, type)
        assert issubclass(spec_model, pydantic.BaseModel)
        schema = spec_model.model_json_schema(by_alias=True, mode="validation")
        self.defs: dict[str, Schema] = schema.pop("$defs", {})
        self.defs[spec_model.__name__] = schema
        self.spec: Schema = {"$ref": f"#/$defs/{spec_model.__name__}"}
        self.models = _model_classes(spec_model)
        ruled = [name for name, node in self.defs.items() if node.get("x-kubernetes-validations")]
        # A def whose class is not found would have its rules silently unenforced.
        assert all(name in self.models for name in ruled), (ruled, sorted(self.models))
        # By the node's id, the node kept alive alongside so that its id is never reused.
        self._strategies: dict[tuple[int, RuleMode], tuple[Schema, st.SearchStrategy[Any]]] = {}
        self._refs = {name: {"$ref": f"#/$defs/{name}"} for name in self.defs}

    def resolve(self, node: Schema) -> tuple[Schema, str | None]:
        """The node behind a $ref, with the model name it came from."""
        if "$ref" not in node:
            return node, None
        name = node["$ref"].rsplit("/", 1)[-1]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {**self.defs[name], **rest}, name

    def manifest(self) -> st.SearchStrategy[dict[str, Any]]:
        info = self.kind.crd
        return st.fixed_dictionaries(
            {
                "apiVersion": st.just(info.api_version),
                "kind": st.just(info.kind),
                "metadata": st.fixed_dictionaries({"name": names()}),
                "spec": self.strategy(self.spec),
            }
        )

    def strategy(self, node: Schema, mode: RuleMode = "keep") -> st.SearchStrategy[Any]:
        key = (id(node), mode)
        if key not in self._strategies:
            self._strategies[key] = (node, st.deferred(lambda: self._build(node, mode)))
        return self._strategies[key][1]

    def _build(self, node: Schema, mode: RuleMode) -> st.SearchStrategy[Any]:
        node, model = self.resolve(node)
        if "anyOf" in node:
            variants = [v for v in node["anyOf"] if v.get("type") != "null"]
            inner = st.one_of(*(self.strategy(v) for v in variants))
            if len(variants) == len(node["anyOf"]):
                return inner
            # null is valid for an Optional field (nullable in the CRD), drawn once in five.
            return _rarely(inner, st.none())
        if "const" in node:
            return st.just(node["const"])
        if "enum" in node:
            return st.sampled_from(node["enum"])
        kind = node.get("type")
        if kind == "string":
            return _strings(node)
        if kind == "integer":
            low, high = _int_bounds(node)
            return st.one_of(st.integers(low, high), st.sampled_from(sorted({low, high})))
        if kind == "number":
            return _numbers(node)
        if kind == "boolean":
            return st.booleans()
        if kind == "array":
            return self._array(node, _SHORT)
        if kind == "object" and "properties" in node:
            return self._object(node, model, mode)
        if kind == "object" and isinstance(node.get("additionalProperties"), Mapping):
            values = self.strategy(node["additionalProperties"])
            most = min(node.get("maxProperties", _SHORT), _SHORT)
            keys: st.SearchStrategy[str] = st.text(max_size=_SHORT_TEXT)
            if isinstance(node.get("propertyNames"), Mapping):
                # Keys that keep their pattern, and now and then any text (a key mutation).
                keys = _rarely(_strings(node["propertyNames"]), keys)
            return st.dictionaries(keys, values, max_size=most)
        if kind == "object":
            return st.dictionaries(st.text(max_size=8), _free_json(), max_size=_SHORT)
        raise AssertionError(f"no strategy for schema {dict(node)}")

    def _array(self, node: Schema, longest: int, *, exact: bool = False) -> st.SearchStrategy[Any]:
        items = self.strategy(node["items"])
        low = node.get("minItems", 0)
        high = node.get("maxItems", longest)
        high = high if exact else min(high, max(low, longest))
        low = high if exact else low
        keys = node.get("x-kubernetes-list-map-keys")
        if keys:
            return st.lists(
                items,
                min_size=low,
                max_size=high,
                unique_by=lambda x: tuple(x.get(k) for k in keys),
            )
        unique = node.get("x-kubernetes-list-type") == "set"
        return st.lists(items, min_size=low, max_size=high, unique=unique)

    def _object(self, node: Schema, model: str | None, mode: RuleMode) -> st.SearchStrategy[Any]:
        properties = {name: self.strategy(child) for name, child in node["properties"].items()}
        required = set(node.get("required", ()))
        rules = [r for r in node.get("x-kubernetes-validations", ()) if "oldSelf" not in r["rule"]]
        model_class = self.models.get(model) if model and rules else None

        @st.composite
        def draw_object(draw: st.DrawFn) -> dict[str, Any]:
            if model_class is None:
                return {
                    name: draw(child)
                    for name, child in properties.items()
                    if name in required or draw(st.booleans())
                }
            # Mostly kept, once in eight left to chance: a draw that breaks a rule the models
            # check too eagerly (and the API server accepts) must be possible as well.
            want = mode if mode != "keep" or draw(st.integers(0, 7)) < 7 else "any"
            value: dict[str, Any] = {}
            drawn: dict[str, Any] = {}
            for _ in range(_ATTEMPTS):
                # Which properties are set is drawn again until the rules agree, each value
                # drawn once at most: a one-of rule over five fields rarely holds by chance,
                # and drawing all of them again for each try would be slow.
                chosen = [name for name in properties if name in required or draw(st.booleans())]
                for name in chosen:
                    if name not in drawn:
                        drawn[name] = draw(properties[name])
                value = {name: drawn[name] for name in chosen}
                if want == "any" or _rules_hold(model_class, value) == (want == "keep"):
                    return value
            return value

        return draw_object()

    # -- mutation --------------------------------------------------------------------------------

    def sites(self, manifest: Mapping[str, Any]) -> Iterator[Site]:
        """Every value of the manifest's spec, with its schema, and metadata.name."""
        yield from self._sites(manifest["spec"], self.spec, ("spec",), required=True)
        yield Site(("metadata", "name"), {"type": "string"}, None, manifest["metadata"]["name"])

    def _sites(self, value: Any, node: Schema, path: JsonPath, *, required: bool) -> Iterator[Site]:
        node, model = self.resolve(node)
        if "anyOf" in node:
            variants = [v for v in node["anyOf"] if v.get("type") != "null"]
            if value is None:
                yield Site(path, self.resolve(variants[0])[0], None, None, required, nullable=True)
                return
            node, model = self.resolve(variants[0])
        yield Site(path, node, model, value, required)
        if isinstance(value, dict) and "properties" in node:
            needed = set(node.get("required", ()))
            for name, child in value.items():
                if name in node["properties"]:
                    yield from self._sites(
                        child, node["properties"][name], (*path, name), required=name in needed
                    )
        elif isinstance(value, dict) and isinstance(node.get("additionalProperties"), Mapping):
            for name, child in value.items():
                yield from self._sites(
                    child, node["additionalProperties"], (*path, name), required=False
                )
        elif isinstance(value, list) and "items" in node:
            for index, item in enumerate(value):
                yield from self._sites(item, node["items"], (*path, index), required=False)

    def mutations(self, site: Site) -> list[tuple[str, st.SearchStrategy[Any]]]:
        """(what, new value) for one place; `_ABSENT` removes the key."""
        node, value = site.node, site.value
        if site.path == ("metadata", "name"):
            return [("bad metadata.name", st.sampled_from(BAD_NAMES))]
        found: list[tuple[str, st.SearchStrategy[Any]]] = []
        if len(site.path) > 1:
            found.append(("null", st.none()))
            if site.required:
                found.append(("required key removed", st.just(_ABSENT)))
            found.append(("wrong type", st.sampled_from(_other_types(node))))
        kind = node.get("type")
        if "enum" in node and value is not None:
            found.append(("not in enum", st.sampled_from(_off_enum(node["enum"], value))))
        elif kind == "string" and isinstance(value, str):
            found += _string_mutations(node, value)
        elif kind == "integer" and isinstance(value, int):
            found += _integer_mutations(node, value)
        elif kind == "number" and isinstance(value, int | float):
            low, high = node.get("minimum"), node.get("maximum")
            found.append(("string number", st.just(str(value))))
            if low is not None:
                found.append(("below minimum", st.just(low - 1)))
                found.append(("at minimum", st.just(low)))
            if high is not None:
                found.append(("above maximum", st.just(high + 1)))
                found.append(("at maximum", st.just(high)))
            for bound in ("exclusiveMinimum", "exclusiveMaximum"):
                if isinstance(node.get(bound), int | float):
                    found.append((f"at {bound}", st.just(node[bound])))
        elif kind == "boolean":
            found.append(("bool-ish", st.sampled_from(["yes", "true", "on", "1", 1, 0, "True"])))
        elif kind == "array" and isinstance(value, list):
            found += self._array_mutations(node, value)
        elif kind == "object" and isinstance(value, dict) and "properties" in node:
            found.append(("unknown key", st.just({**value, "unknownField": "x"})))
            if site.model and node.get("x-kubernetes-validations"):
                broken = self.strategy(self._refs[site.model], "break")
                found.append(("cross-field rule broken", broken))
        return found

    def _array_mutations(
        self, node: Schema, value: list[Any]
    ) -> list[tuple[str, st.SearchStrategy[Any]]]:
        found: list[tuple[str, st.SearchStrategy[Any]]] = []
        if "maxItems" in node:
            most = node["maxItems"]
            first = st.just(value[0]) if value else self.strategy(node["items"])
            found.append(("at maxItems", first.map(lambda item: _filled(node, item, most))))
            found.append(("above maxItems", first.map(lambda item: _filled(node, item, most + 1))))
        if node.get("minItems"):
            found.append(("below minItems", st.just(value[: node["minItems"] - 1])))
        if value and node.get("x-kubernetes-list-type") in ("set", "map"):
            found.append(("duplicate item", st.just([*value, copy.deepcopy(value[0])])))
        return found


def _filled(node: Schema, item: Any, length: int) -> list[Any]:
    """`length` items made from `item`, distinct where the list wants them distinct.

    Made, not drawn: drawing 64 payload indexes for each such case would be most of the run.
    """
    keys = node.get("x-kubernetes-list-map-keys")
    enum = node["items"].get("enum")
    if keys:
        # k0, k1, ...: a DNS label, a header name and a payload path alike.
        return [{**item, **dict.fromkeys(keys, f"k{index}")} for index in range(length)]
    if node.get("x-kubernetes-list-type") == "set":
        if enum:
            return [enum[index % len(enum)] for index in range(length)]
        return [f"{item}{index}" if isinstance(item, str) else index for index in range(length)]
    return [copy.deepcopy(item) for _ in range(length)]


@dataclass(frozen=True)
class Site:
    """One value of a manifest: where, its schema (and model name), whether the key is required."""

    path: JsonPath
    node: Schema
    model: str | None
    value: Any
    required: bool = True
    nullable: bool = False


BAD_NAMES = ("Upper", "under_score", "-dash", "dash-", "a..b", "", "a" * 254, "dot.", "sp ace")


def names() -> st.SearchStrategy[str]:
    """metadata.name as the API server takes it: a DNS subdomain (a short one)."""
    return st.from_regex(_DNS_SUBDOMAIN, fullmatch=True).filter(lambda n: len(n) <= 63)


def cases(kind: type[Resource]) -> st.SearchStrategy[Case]:
    """Manifests of `kind`: about one in five as drawn, the others with one mutation."""
    schema = _kind_schema(kind)

    @st.composite
    def draw_case(draw: st.DrawFn) -> Case:
        manifest = draw(schema.manifest())
        options: dict[str, list[tuple[Site, st.SearchStrategy[Any]]]] = {}
        for site in schema.sites(manifest):
            for what, new in schema.mutations(site):
                options.setdefault(what, []).append((site, new))
        # What to change first, then where. Hypothesis leans to the first items of a list
        # (and replays earlier cases' choices), which made most cases the same mutation; a
        # digest of the manifest turns its choice round, so each of them is about as likely,
        # and any of them can still be drawn for any manifest. About one case in five stays
        # as drawn.
        salt = int.from_bytes(hashlib.sha256(json.dumps(manifest).encode()).digest()[:8])
        kinds = sorted(options)
        what = _spread(draw, ["none"] * max(1, len(kinds) // 4) + kinds, salt)
        if what == "none":
            return Case(kind, manifest)
        site, new = _spread(draw, options[what], salt)
        return Case(kind, _set(manifest, site.path, draw(new)), f"{what} at {dotted(site.path)}")

    return draw_case()


_SCHEMAS: dict[type[Resource], KindSchema] = {}


def _kind_schema(kind: type[Resource]) -> KindSchema:
    if kind not in _SCHEMAS:
        _SCHEMAS[kind] = KindSchema(kind)
    return _SCHEMAS[kind]


def _spread(draw: st.DrawFn, items: Sequence[T], salt: int) -> T:
    return items[(draw(st.integers(0, len(items) - 1)) + salt) % len(items)]


def _rules_hold(model: type[pydantic.BaseModel], value: Mapping[str, Any]) -> bool:
    """Whether `value` keeps the model's cross-field rules (as far as Python got to check them)."""
    try:
        model.model_validate(value)
    except pydantic.ValidationError as refused:
        return not any(error["type"] == "rule" for error in refused.errors())
    return True


def _rarely(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.integers(0, 4).flatmap(lambda n: rare if n == 4 else usual)


def _strings(node: Schema) -> st.SearchStrategy[str]:
    low, high = node.get("minLength", 0), node.get("maxLength")
    if "pattern" in node:
        drawn = st.from_regex(str(node["pattern"]), fullmatch=True)
        return drawn.filter(lambda s: low <= len(s) <= (high if high is not None else len(s)))
    return st.text(min_size=low, max_size=max(low, min(high or _SHORT_TEXT, _SHORT_TEXT)))


def _int_bounds(node: Schema) -> tuple[int, int]:
    low = node.get("minimum", INT64_MIN)
    high = node.get("maximum", INT64_MAX)
    if isinstance(node.get("exclusiveMinimum"), int):
        low = node["exclusiveMinimum"] + 1
    if isinstance(node.get("exclusiveMaximum"), int):
        high = node["exclusiveMaximum"] - 1
    return int(low), int(high)


def _numbers(node: Schema) -> st.SearchStrategy[float]:
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    return st.floats(
        min_value=low,
        max_value=high,
        exclude_min="exclusiveMinimum" in node,
        exclude_max="exclusiveMaximum" in node,
        allow_nan=False,
        allow_infinity=False,
    )


def _free_json() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(INT64_MIN, INT64_MAX),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=6,
    )


def _other_types(node: Schema) -> list[Any]:
    samples: dict[str, Any] = {
        "string": "text",
        "integer": 7,
        "number": 1.5,
        "boolean": True,
        "array": ["text"],
        "object": {"key": "text"},
    }
    kind = node.get("type")
    if "enum" in node and kind is None:
        kind = {str: "string", int: "integer"}.get(type(node["enum"][0]))
    # An integer is a number too.
    same = {kind, "integer"} if kind == "number" else {kind}
    return [sample for name, sample in samples.items() if name not in same]


def _off_enum(enum: Sequence[Any], value: Any) -> list[Any]:
    found: list[Any]
    if isinstance(value, str):
        found = [value.lower(), value.upper(), f"{value} ", "unknown", ""]
    else:
        found = [value + 1, -1, 0, str(value)]
    return [v for v in found if v not in enum] or ["unknown"]


def _string_mutations(node: Schema, value: str) -> list[tuple[str, st.SearchStrategy[Any]]]:
    found: list[tuple[str, st.SearchStrategy[Any]]] = []
    low, high = node.get("minLength", 0), node.get("maxLength")
    if "pattern" in node:
        # Places where regex engines differ: a final newline ($ in Python re), Unicode spaces
        # (\s is ASCII in RE2, Unicode in Rust's regex), case, the empty string.
        broken = [f"{value}\n", f" {value}", f"{value}\u00a0x", f"{value}\u2028", value.upper(), ""]
        found.append(("pattern broken", st.sampled_from(broken)))
        if "(ms|s|m|h)" in node["pattern"]:
            huge = ["2562048h", "9999999999h", "99999999999999999999s", "1000000000000m"]
            found.append(("huge duration", st.sampled_from(huge)))
    if high is not None:
        found.append(("above maxLength", st.just(_stretch(value, high + 1))))
        found.append(("at maxLength", st.just(_stretch(value, high))))
    if low:
        found.append(("below minLength", st.just(value[: low - 1])))
    return found


def _stretch(value: str, length: int) -> str:
    # The last character repeated: keeps most patterns (a DNS label's last character is
    # alphanumeric) so the length is what is judged.
    return (value + (value[-1:] or "a") * length)[:length]


def _integer_mutations(node: Schema, value: int) -> list[tuple[str, st.SearchStrategy[Any]]]:
    low, high = _int_bounds(node)
    found: list[tuple[str, st.SearchStrategy[Any]]] = [
        ("string number", st.just(str(value))),
        ("integral float", st.just(float(value))),
        ("bool for integer", st.booleans()),
        ("beyond int64", st.sampled_from([INT64_MAX + 1, INT64_MIN - 1, 2**64])),
    ]
    if low > INT64_MIN:
        found += [("below minimum", st.just(low - 1)), ("at minimum", st.just(low))]
    if high < INT64_MAX:
        found += [("above maximum", st.just(high + 1)), ("at maximum", st.just(high))]
    return found


def _set(manifest: dict[str, Any], path: JsonPath, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(manifest)
    parent: Any = changed
    for part in path[:-1]:
        parent = parent[part]
    if value is _ABSENT:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return changed


# -- judging -------------------------------------------------------------------------------------


def models_verdict(kind: type[Resource], manifest: Mapping[str, Any]) -> Verdict:
    """The manifest parsed as the models parse a manifest a user wrote."""
    # `from_manifest` (strict JSON types) where the models have it, else `model_validate`,
    # as the operator parses an object.
    parse = getattr(kind, "from_manifest", None) or kind.model_validate
    try:
        parse(manifest)
    except pydantic.ValidationError as refused:
        found = refused.errors()
        return Verdict(
            accepted=False,
            fields=tuple(dotted(_reported_at(e["loc"])) for e in found),
            kinds=tuple(_server_check(e) for e in found),
            detail="; ".join(f"{dotted(e['loc'])}: {e['msg']} [{e['type']}]" for e in found),
        )
    return Verdict(accepted=True)


_UNCHECKED = "some validation rules were not checked"


def _reported_at(loc: Sequence[str | int]) -> Sequence[str | int]:
    """Where the API server reports a models error at `loc`: a bad map key at the map."""
    return loc[:-2] if loc[-1:] == ("[key]",) else loc


def _server_check(error: Mapping[str, Any]) -> str:
    """The models' error type, or "rule" where the API server may find it with a CEL rule."""
    kind = str(error["type"])
    # A float in an integer field (the whole-number rule of crdgen), a value off the enum of
    # a nullable field (an enum rule there: no null in an enum ever matches), a map key (a
    # key rule: a structural schema cannot constrain keys).
    if kind == "int_type" and isinstance(error.get("input"), float):
        return "rule"
    if kind == "literal_error" or error["loc"][-1:] == ("[key]",):
        return "rule"
    return kind


def server_verdict(
    http: httpx.Client, namespace: str, kind: type[Resource], manifest: Mapping[str, Any]
) -> Verdict:
    """The API server's judgement of a create of `manifest` (dryRun=All: nothing is stored)."""
    info = kind.crd
    answer = http.post(
        f"/apis/{info.group}/{info.version}/namespaces/{namespace}/{info.plural}",
        params={"dryRun": "All", "fieldValidation": "Strict"},
        content=json.dumps(_as_kubectl(manifest), allow_nan=False),
        headers={"Content-Type": "application/json"},
    )
    if answer.status_code in (200, 201):
        return Verdict(accepted=True)
    # 422 Invalid (schema, CEL, metadata) and 400 BadRequest (strict decoding) are refusals;
    # anything else (a 500, a timeout) is no judgement and fails the test as it is.
    assert answer.status_code in (400, 422), f"{answer.status_code}: {answer.text}"
    status = answer.json()
    causes = (status.get("details") or {}).get("causes") or []
    message = str(status.get("message", ""))
    return Verdict(
        accepted=False,
        fields=tuple(c["field"] for c in causes if c.get("field") not in (None, "<nil>")),
        detail=f"{answer.status_code} {status.get('reason')}: {message}",
        decoding=answer.status_code == 400,
        rules_unchecked=_UNCHECKED in message,
    )


def _as_kubectl(value: Any) -> Any:
    """What kubectl sends for `value`: Go's JSON writes a whole float64 below 1e21 as `8`.

    Written apart from the models' own reading on purpose: with one shared function, a
    mistake in it would reach both judges alike and never show.
    """
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {key: _as_kubectl(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_kubectl(item) for item in value]
    return value


def names_field(server: Verdict, field: str) -> bool:
    """Whether the API server's refusal names `field` (or a field below it)."""
    if any(f == field or f.startswith((f"{field}.", f"{field}[")) for f in server.fields):
        return True
    # Strict decoding errors name the field only in the message: unknown field "spec.x".
    return re.search(rf"(?<![\w.\[\]]){re.escape(field)}(?![\w])", server.detail) is not None


def _unchecked(server: Verdict, error_type: str) -> bool:
    """Whether the API server stopped before it checks what the models found here."""
    # It decodes (refusing unknown fields, and nothing else), then checks the schema, then,
    # only on a schema-valid object, the CEL rules; pydantic checks all it can at once.
    if server.decoding:
        return error_type != "extra_forbidden"
    return server.rules_unchecked and error_type == "rule"


def disagreement(case: Case, server: Verdict, models: Verdict) -> str | None:
    """None when the judges agree, else a report: the manifest and what each said."""
    if server.accepted == models.accepted:
        if server.accepted:
            return None
        unnamed = [
            field
            for field, kind in zip(models.fields, models.kinds, strict=True)
            if not names_field(server, field) and not _unchecked(server, kind)
        ]
        if not unnamed:
            return None
        problem = f"the API server's refusal does not name {', '.join(unnamed)}"
    elif server.accepted:
        problem = "the API server accepts what the models refuse"
    else:
        problem = "the API server refuses what the models accept"
    return "\n".join(
        [
            f"{case.kind.crd.kind} ({case.mutation}): {problem}",
            "manifest:",
            json.dumps(case.manifest, indent=2, ensure_ascii=True),
            f"API server: {'accepted' if server.accepted else server.detail}",
            f"models: {'accepted' if models.accepted else models.detail}",
        ]
    )
