"""OpenAPI schema objects as plain JSON Schema 2020-12.

OpenAPI 3.1 schemas already are JSON Schema 2020-12. OpenAPI 3.0 has its own dialect:
`nullable`, boolean `exclusiveMinimum` / `exclusiveMaximum`, and `readOnly` /
`writeOnly` properties that are required only in one direction.
"""

from __future__ import annotations

from typing import Any, Literal

Direction = Literal["request", "response"]
DIALECT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

_INTEGER_FORMATS = {
    "int32": {"minimum": -(2**31), "maximum": 2**31 - 1},
    "int64": {"minimum": -(2**63), "maximum": 2**63 - 1},
}
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "if", "then", "else", "contains",
                  "propertyNames", "unevaluatedItems", "unevaluatedProperties", "additionalItems")


def is_openapi_30(document: dict[str, Any]) -> bool:
    """True for an OpenAPI 3.0.x document."""
    return str(document.get("openapi", "")).startswith("3.0.")


def convert(schema: Any, *, openapi_30: bool, direction: Direction) -> Any:
    """A copy of `schema` in JSON Schema 2020-12 for validating one direction.

    OpenAPI 3.0.3: `nullable` widens `type` only (an `enum` must list null itself), and
    readOnly / writeOnly properties must not appear in requests / responses respectively.
    """
    if not isinstance(schema, dict):
        return schema
    out = {key: _convert_child(key, value, openapi_30, direction) for key, value in schema.items()}
    hidden = "readOnly" if direction == "request" else "writeOnly"
    if isinstance(out.get("required"), list) and isinstance(out.get("properties"), dict):
        # a readOnly property is required in responses only, a writeOnly one in requests only
        out["required"] = [n for n in out["required"]
                           if not (isinstance(out["properties"].get(n), dict) and out["properties"][n].get(hidden))]
    if openapi_30:
        _convert_30_keywords(out)
        if isinstance(out.get("properties"), dict):
            # 3.0: a readOnly property may not be sent in a request, a writeOnly one not in a response
            out["properties"] = {name: False if isinstance(prop, dict) and prop.get(hidden) is True else prop
                                 for name, prop in out["properties"].items()}
    if out.get("format") in _INTEGER_FORMATS:
        # int32 / int64 bound integers; JSON Schema formats only constrain strings
        out["allOf"] = [*out.get("allOf", []), _INTEGER_FORMATS[out["format"]]]
    return out


def _convert_child(key: str, value: Any, openapi_30: bool, direction: Direction) -> Any:
    if key in _SCHEMA_MAPS and isinstance(value, dict):
        return {k: convert(v, openapi_30=openapi_30, direction=direction) for k, v in value.items()}
    if key in _SCHEMA_LISTS and isinstance(value, list):
        return [convert(v, openapi_30=openapi_30, direction=direction) for v in value]
    if key in _SCHEMA_VALUES:
        if isinstance(value, list):  # draft-04 style tuple items
            return [convert(v, openapi_30=openapi_30, direction=direction) for v in value]
        return convert(value, openapi_30=openapi_30, direction=direction)
    return value


def _convert_30_keywords(out: dict[str, Any]) -> None:
    for bound, exclusive in (("maximum", "exclusiveMaximum"), ("minimum", "exclusiveMinimum")):
        if out.get(exclusive) is True and bound in out:
            out[exclusive] = out.pop(bound)
        elif exclusive in out and isinstance(out[exclusive], bool):
            del out[exclusive]
    if out.pop("nullable", False) is True:
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
        for combinator in ("oneOf", "anyOf"):
            if combinator in out:
                out[combinator] = [*out[combinator], {"type": "null"}]
    for annotation in ("example", "discriminator", "xml", "externalDocs"):
        out.pop(annotation, None)


def components_as_json_schema(document: dict[str, Any], direction: Direction) -> dict[str, Any]:
    """The document's `components` with every schema converted, for `$ref`s to resolve against."""
    openapi_30 = is_openapi_30(document)
    components = dict(document.get("components") or {})
    schemas = components.get("schemas") or {}
    components["schemas"] = {name: convert(s, openapi_30=openapi_30, direction=direction)
                             for name, s in schemas.items()}
    return components
