"""MetadataFilter: one small filter language over payloads, translated for each backend.

    from llm_infra.vector import F
    F.eq("lang", "en") & F.gte("year", 2020) & ~F.in_("status", ["draft", "deleted"])

Translated into qdrant-client `models.Filter` (server and local mode) and into
`qdrant_edge.Filter` (embedded); the two trees have the same shape, so both
backends answer a filter the same way (the contract tests check it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from llm_infra import errors

Scalar = str | int | float | bool
_RANGE_OPS = {"gt", "gte", "lt", "lte"}


@dataclass(frozen=True, slots=True)
class MetadataFilter:
    """A filter node: a field condition, or and/or/not over child filters. Build with `F`."""

    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "and", "or", "not"]
    field: str | None = None
    value: Any = None
    children: tuple[MetadataFilter, ...] = ()

    def __and__(self, other: MetadataFilter) -> MetadataFilter:
        return F.and_(self, other)

    def __or__(self, other: MetadataFilter) -> MetadataFilter:
        return F.or_(self, other)

    def __invert__(self) -> MetadataFilter:
        return F.not_(self)

    def fields(self) -> Iterator[str]:
        """Every payload field the filter reads (to check they are indexed)."""
        if self.field is not None:
            yield self.field
        for child in self.children:
            yield from child.fields()

    # -- translation -------------------------------------------------------------------------

    def to_qdrant(self) -> Any:
        """A qdrant_client.models.Filter."""
        from qdrant_client import models  # here: only server stores need it

        return _translate(self, _QdrantClientTerms(models))

    def to_edge(self) -> Any:
        """A qdrant_edge.Filter."""
        import qdrant_edge  # here: only the embedded store needs it

        return _translate(self, _EdgeTerms(qdrant_edge))


class F:
    """Builders of MetadataFilter: eq, ne, gt, gte, lt, lte, in_, contains, and_, or_, not_."""

    @staticmethod
    def eq(field: str, value: Scalar) -> MetadataFilter:
        return MetadataFilter("eq", _field(field), _scalar(field, value))

    @staticmethod
    def ne(field: str, value: Scalar) -> MetadataFilter:
        return MetadataFilter("ne", _field(field), _scalar(field, value))

    @staticmethod
    def gt(field: str, value: float | int) -> MetadataFilter:
        return MetadataFilter("gt", _field(field), _number(field, value))

    @staticmethod
    def gte(field: str, value: float | int) -> MetadataFilter:
        return MetadataFilter("gte", _field(field), _number(field, value))

    @staticmethod
    def lt(field: str, value: float | int) -> MetadataFilter:
        return MetadataFilter("lt", _field(field), _number(field, value))

    @staticmethod
    def lte(field: str, value: float | int) -> MetadataFilter:
        return MetadataFilter("lte", _field(field), _number(field, value))

    @staticmethod
    def in_(field: str, values: Sequence[Scalar]) -> MetadataFilter:
        if isinstance(values, str) or not values:
            raise errors.ValidationError("`in` takes a non-empty list of values", field=field)
        return MetadataFilter("in", _field(field), tuple(_scalar(field, v) for v in values))

    @staticmethod
    def contains(field: str, text: str) -> MetadataFilter:
        """Full-text match: needs a `text` payload index on `field`."""
        if not text:
            raise errors.ValidationError("`contains` takes non-empty text", field=field)
        return MetadataFilter("contains", _field(field), text)

    @staticmethod
    def and_(*filters: MetadataFilter) -> MetadataFilter:
        return MetadataFilter("and", children=_children(filters))

    @staticmethod
    def or_(*filters: MetadataFilter) -> MetadataFilter:
        return MetadataFilter("or", children=_children(filters))

    @staticmethod
    def not_(inner: MetadataFilter) -> MetadataFilter:
        return MetadataFilter("not", children=(inner,))


def _field(field: str) -> str:
    if not field:
        raise errors.ValidationError("a filter needs a payload field name", field="field")
    return field


def _scalar(field: str, value: object) -> Scalar:
    if not isinstance(value, str | int | float | bool):
        raise errors.ValidationError(
            f"filter values are str, int, float or bool, not {type(value).__name__}", field=field
        )
    return value


def _number(field: str, value: object) -> float:  # value: object, checked at run time
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise errors.ValidationError("range filters compare numbers", field=field)
    return float(value)


def _children(filters: Sequence[MetadataFilter]) -> tuple[MetadataFilter, ...]:
    if not filters:
        raise errors.ValidationError("and/or need at least one filter", field="filter")
    return tuple(filters)


class _Terms:
    """The constructors of one backend's filter tree (the two libraries name them alike)."""

    def __init__(self, module: Any) -> None:
        self.m = module

    def filter(
        self, must: Sequence[Any] = (), should: Sequence[Any] = (), must_not: Sequence[Any] = ()
    ) -> Any:
        return self.m.Filter(
            must=list(must) or None, should=list(should) or None, must_not=list(must_not) or None
        )

    def match_value(self, field: str, value: Scalar) -> Any:
        return self.m.FieldCondition(key=field, match=self.m.MatchValue(value=value))

    def match_any(self, field: str, values: tuple[Scalar, ...]) -> Any:
        return self.m.FieldCondition(key=field, match=self.m.MatchAny(any=list(values)))

    def match_text(self, field: str, text: str) -> Any:
        return self.m.FieldCondition(key=field, match=self.m.MatchText(text=text))

    def range(self, field: str, op: str, value: float) -> Any:
        return self.m.FieldCondition(key=field, range=self.m.Range(**{op: value}))


class _QdrantClientTerms(_Terms):
    pass


class _EdgeTerms(_Terms):
    # qdrant_edge names its range RangeFloat and takes positional match values.
    def match_value(self, field: str, value: Scalar) -> Any:
        return self.m.FieldCondition(field, match=self.m.MatchValue(value))

    def match_any(self, field: str, values: tuple[Scalar, ...]) -> Any:
        return self.m.FieldCondition(field, match=self.m.MatchAny(list(values)))

    def match_text(self, field: str, text: str) -> Any:
        return self.m.FieldCondition(field, match=self.m.MatchText(text))

    def range(self, field: str, op: str, value: float) -> Any:
        return self.m.FieldCondition(field, range=self.m.RangeFloat(**{op: value}))


def _translate(node: MetadataFilter, terms: _Terms) -> Any:
    if node.op in ("and", "or"):
        parts = [_translate(child, terms) for child in node.children]
        return terms.filter(must=parts) if node.op == "and" else terms.filter(should=parts)
    if node.op == "not":
        return terms.filter(must_not=[_translate(node.children[0], terms)])
    assert node.field is not None  # every leaf has one (built by F)
    if node.op in ("eq", "ne"):
        # Exact match takes str, int and bool; a float is matched as the range [v, v].
        if isinstance(node.value, float):
            condition = terms.range(node.field, "gte", node.value)
            condition = terms.filter(must=[condition, terms.range(node.field, "lte", node.value)])
        else:
            condition = terms.match_value(node.field, node.value)
        return (
            terms.filter(must=[condition])
            if node.op == "eq"
            else terms.filter(must_not=[condition])
        )
    if node.op == "in":
        return terms.filter(must=[terms.match_any(node.field, node.value)])
    if node.op == "contains":
        return terms.filter(must=[terms.match_text(node.field, node.value)])
    if node.op in _RANGE_OPS:
        return terms.filter(must=[terms.range(node.field, node.op, node.value)])
    raise errors.ValidationError(f"unknown filter operation {node.op!r}", field="filter")
