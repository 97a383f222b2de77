"""What every lint rule shares: the Finding it yields, JSON pointers, `$ref`s, operations, schemas.

Rules read a bundled document (local `$ref`s only) and must not crash on a malformed one:
anything of an unexpected type is skipped, never trusted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import msgspec

from registry.documents import resolve_pointer

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
CAMEL_CASE = re.compile(r"[a-z][a-zA-Z0-9]*")
# formats whose valid values have a small length ceiling of their own: a full-date is 10
# characters, a uuid 36, an IPv6 address at most 45. `email`, `uri`, `hostname` and friends are
# not here: validators check their shape, not their length, so they still need a maxLength.
BOUNDED_FORMATS = frozenset({"date", "date-time", "time", "uuid", "ipv4", "ipv6"})
# keywords whose value is one subschema, a list of them, or a map of name -> subschema
_ONE = ("additionalProperties", "items", "contains", "not", "if", "then", "else", "propertyNames",
        "unevaluatedItems", "unevaluatedProperties", "additionalItems")
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems")
_NAMED = ("properties", "patternProperties", "dependentSchemas")
_DEFINITIONS = ("$defs", "definitions")
_MAX_REF_HOPS = 64


class Finding(msgspec.Struct, frozen=True):
    """What a rule yields: its id, a JSON pointer into the document, and what is wrong there."""

    rule_id: str
    path: str
    message: str


class Operation(NamedTuple):
    """One operation of `paths`, with its path item and where it sits."""

    path: str
    method: str
    node: dict[str, Any]
    path_item: dict[str, Any]
    pointer: str

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"


def pointer(*tokens: object) -> str:
    """A JSON pointer (RFC 6901) from unescaped tokens: pointer("paths", "/orders") == "/paths/~1orders"."""
    return "".join("/" + escape(str(t)) for t in tokens)


def resolve(document: dict[str, Any], node: Any, where: str) -> tuple[Any, str]:
    """Follow local `$ref`s from a node: (target, its pointer); a dangling ref gives (None, where)."""
    for _ in range(_MAX_REF_HOPS):
        ref = node.get("$ref") if isinstance(node, dict) else None
        if not isinstance(ref, str) or not ref.startswith("#"):
            return node, where
        try:
            node, where = resolve_pointer(document, ref), ref[1:]
        except KeyError:
            return None, where
    return None, where


def mapping(node: Any, key: str) -> dict[str, Any]:
    """node[key] when it is a mapping, else an empty one."""
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, dict) else {}


def sequence(node: Any, key: str) -> list[Any]:
    """node[key] when it is a list, else an empty one."""
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, list) else []


def operations(document: dict[str, Any]) -> Iterator[Operation]:
    """Every operation under `paths` (path items behind a local `$ref` followed)."""
    for path, item in mapping(document, "paths").items():
        item, item_pointer = resolve(document, item, pointer("paths", path))
        if not isinstance(item, dict):
            continue
        for method in HTTP_METHODS:
            if isinstance(item.get(method), dict):
                yield Operation(path, method, item[method], item, f"{item_pointer}/{method}")


def parameters(document: dict[str, Any], op: Operation) -> Iterator[tuple[dict[str, Any], str]]:
    """The resolved parameters of an operation, path-level ones first, each with its pointer."""
    item_pointer = op.pointer.rsplit("/", 1)[0]
    for owner, where in ((op.path_item, item_pointer), (op.node, op.pointer)):
        for index, parameter in enumerate(sequence(owner, "parameters")):
            parameter, at = resolve(document, parameter, f"{where}/parameters/{index}")
            if isinstance(parameter, dict):
                yield parameter, at


def media_types(document: dict[str, Any], node: Any, where: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(media type, media type object, pointer) of a request body or response, resolved."""
    node, where = resolve(document, node, where)
    for name, media in mapping(node, "content").items():
        if isinstance(media, dict):
            yield str(name), media, f"{where}/content/{escape(str(name))}"


def responses(document: dict[str, Any], op: Operation) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(status key, resolved response, its pointer) of an operation."""
    for status, response in mapping(op.node, "responses").items():
        response, where = resolve(document, response, f"{op.pointer}/responses/{escape(str(status))}")
        if isinstance(response, dict):
            yield str(status), response, where


def schema_roots(document: dict[str, Any]) -> Iterator[tuple[Any, str]]:
    """Every schema written outside another schema: `components.schemas` and each `schema` member."""
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        node, where = stack.pop()
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in children:
            at = f"{where}/{escape(str(key))}"
            if isinstance(key, str) and (key in ("example", "examples") or key.startswith("x-")):
                continue  # free-form values, not the document's structure
            if where == "/components" and key == "schemas":
                yield from ((schema, f"{at}/{escape(str(name))}") for name, schema in mapping(node, key).items())
            elif key == "schema" and isinstance(node, dict):
                yield value, at
            else:
                stack.append((value, at))


def subschemas(schema: dict[str, Any], where: str, *, definitions: bool) -> Iterator[tuple[Any, str]]:
    """The direct subschemas of a schema with their pointers ($defs only when asked)."""
    for key in _ONE:
        if isinstance(schema.get(key), dict):
            yield schema[key], f"{where}/{key}"
    for key in _MANY + (("items",) if isinstance(schema.get("items"), list) else ()):
        for index, child in enumerate(sequence(schema, key)):
            yield child, f"{where}/{key}/{index}"
    for key in _NAMED + (_DEFINITIONS if definitions else ()):
        for name, child in mapping(schema, key).items():
            yield child, f"{where}/{key}/{escape(str(name))}"


def walk_schemas(document: dict[str, Any], roots: Iterable[tuple[Any, str]], *,
                 follow_refs: bool) -> Iterator[tuple[dict[str, Any], str]]:
    """Every schema under the roots, once each, with its pointer.

    With follow_refs, `$ref`s are followed into their targets and `$defs` are reached only that
    way (what a validator would apply); without, every schema written under the roots is visited
    in place, `$defs` included (what an author wrote).
    """
    seen: set[str] = set()
    stack = list(roots)[::-1]
    while stack:
        schema, where = stack.pop()
        if not isinstance(schema, dict) or where in seen:
            continue
        seen.add(where)
        yield schema, where
        children = list(subschemas(schema, where, definitions=not follow_refs))
        ref = schema.get("$ref")
        if follow_refs and isinstance(ref, str) and ref.startswith("#"):
            target, target_where = resolve(document, schema, where)
            if target is not None:
                children.insert(0, (target, target_where))
        stack.extend(reversed(children))


def types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a schema names in `type` (a string or a list)."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    return {t for t in declared if isinstance(t, str)} if isinstance(declared, list) else set()


def string_unbounded(schema: dict[str, Any]) -> bool:
    """A string schema with no maxLength, enum, const or length-bounding format."""
    bounded_format = isinstance(schema.get("format"), str) and schema["format"] in BOUNDED_FORMATS
    return ("string" in types(schema) and "maxLength" not in schema and "enum" not in schema
            and "const" not in schema and not bounded_format)


def array_unbounded(schema: dict[str, Any]) -> bool:
    """An array schema with no maxItems (a closed tuple, `items: false`, is bounded)."""
    return "array" in types(schema) and "maxItems" not in schema and schema.get("items") is not False


def camel_case_violations(schemas: Iterable[tuple[dict[str, Any], str]], rule_id: str) -> Iterator[Finding]:
    """A finding for every property name that is not camelCase."""
    for schema, where in schemas:
        for name in mapping(schema, "properties"):
            if not CAMEL_CASE.fullmatch(str(name)):
                yield Finding(rule_id, f"{where}/properties/{escape(str(name))}",
                              f"property {name!r} is not camelCase")


def escape(token: str) -> str:
    """One JSON pointer token, escaped."""
    return token.replace("~", "~0").replace("/", "~1")
