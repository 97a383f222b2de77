"""Dialect-neutral readings of a schema (OpenAPI 3.0 and JSON Schema 2020-12 alike)."""

from __future__ import annotations

from typing import Any

Bound = tuple[float, bool]  # (value, exclusive)


def types(schema: dict[str, Any]) -> frozenset[str]:
    """Declared types without "null"; empty means any."""
    declared = schema.get("type")
    names = declared if isinstance(declared, list) else [declared] if isinstance(declared, str) else []
    return frozenset(t for t in names if t != "null")


# keywords that only constrain values of one type: a schema using only one type's keywords is used for that type
_TYPE_KEYWORDS = {
    "object": ("properties", "additionalProperties", "patternProperties", "required", "minProperties",
               "maxProperties", "propertyNames", "dependentRequired", "unevaluatedProperties"),
    "array": ("items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains", "unevaluatedItems"),
}
_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"),
               (dict, "object"))


def implied_types(schema: dict[str, Any]) -> frozenset[str]:
    """Declared types; without a `type`, the one type its keywords or enum values can only be about; else any."""
    declared = types(schema)
    if declared or "type" in schema:
        return declared
    hinted = {name for name, keywords in _TYPE_KEYWORDS.items() if any(k in schema for k in keywords)}
    values = enum(schema)
    if values:
        hinted |= {next(name for kind, name in _JSON_TYPES if isinstance(v, kind)) for v in values if v is not None}
        if hinted == {"integer", "number"}:
            hinted = {"number"}
    return frozenset(hinted) if len(hinted) == 1 else frozenset()


def nullable(schema: dict[str, Any], openapi_30: bool) -> bool:
    """Whether null is allowed by type, `nullable` (3.0) or enum."""
    if openapi_30 and schema.get("nullable") is True:
        return True
    declared = schema.get("type")
    if isinstance(declared, list) and "null" in declared or declared == "null":
        return True
    return any(isinstance(alt, dict) and alt.get("type") == "null" for alt in schema.get("oneOf") or [])


def enum(schema: dict[str, Any]) -> list[Any] | None:
    """Allowed values (`enum` or `const`), null excluded; None when unconstrained."""
    if "const" in schema:
        return [schema["const"]]
    values = schema.get("enum")
    return [v for v in values if v is not None] if isinstance(values, list) else None


def upper(schema: dict[str, Any], openapi_30: bool) -> Bound | None:
    """The numeric upper bound."""
    return _bound(schema, "maximum", "exclusiveMaximum", openapi_30, min)


def lower(schema: dict[str, Any], openapi_30: bool) -> Bound | None:
    """The numeric lower bound."""
    return _bound(schema, "minimum", "exclusiveMinimum", openapi_30, max)


def tighter_upper(old: Bound, new: Bound) -> bool:
    """True when `new` admits less than `old` at the top."""
    return new[0] < old[0] or (new[0] == old[0] and new[1] and not old[1])


def tighter_lower(old: Bound, new: Bound) -> bool:
    """True when `new` admits less than `old` at the bottom."""
    return new[0] > old[0] or (new[0] == old[0] and new[1] and not old[1])


def closed(schema: dict[str, Any]) -> bool:
    """Whether properties beyond the declared ones are refused."""
    return schema.get("additionalProperties") is False or schema.get("unevaluatedProperties") is False


def required(schema: dict[str, Any]) -> set[str]:
    """Property names every valid instance has: `required`, plus those all required-only alternatives share."""
    names = _names(schema)
    for combinator in ("anyOf", "oneOf"):
        alternatives = schema.get(combinator)
        if isinstance(alternatives, list) and alternatives and all(
                isinstance(a, dict) and set(a) <= {"required", "description", "title"} and "required" in a
                for a in alternatives):
            names |= set.intersection(*(_names(a) for a in alternatives))
    return names


def _names(schema: dict[str, Any]) -> set[str]:
    names = schema.get("required")
    return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()


def properties(schema: dict[str, Any]) -> dict[str, Any]:
    """Declared properties."""
    props = schema.get("properties")
    return props if isinstance(props, dict) else {}


def number(value: Any) -> float | None:
    """A keyword's numeric value, or None."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, openapi_30: bool, pick: Any) -> Bound | None:
    candidates: list[Bound] = []
    if number(schema.get(inclusive)) is not None:
        flag = schema.get(exclusive) is True if openapi_30 else False
        candidates.append((schema[inclusive], flag))
    if number(schema.get(exclusive)) is not None:  # 3.1, and 3.0 documents written with 3.1's numeric form
        candidates.append((schema[exclusive], True))
    if not candidates:
        return None
    best = pick(value for value, _ in candidates)
    return (best, any(flag for value, flag in candidates if value == best))
