"""The structured diff of two OpenAPI documents, computed once and read by every check.

Operations are matched by method and path template (parameter names ignored), parameters
by location and name, responses by status, media types by name. Schemas are compared by
structure with `$ref`s resolved, so a schema moved into `components` or a component
renamed with its refs is no change. Documentation (descriptions, summaries, examples,
titles, unknown `x-` extensions) never counts. Cycles are followed once. The schema pairs
under each operation are registry.compat.schemas'.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from registry.compat.schemas import COMBINATORS, DiffTooLarge, Limits, SchemaPair, SchemaWalk, numbers, required_only

__all__ = ["COMBINATORS", "ApiDiff", "DiffTooLarge", "Document", "Limits", "OperationPair", "SchemaPair",
           "required_only"]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DOC_KEYS = frozenset({"description", "summary", "example", "examples", "title", "externalDocs", "$comment", "xml"})
KNOWN_EXTENSIONS = frozenset({"x-sunset"})
# maps whose keys are names chosen by the author, not keywords: nothing in them is documentation
NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "paths", "responses", "content",
                       "headers", "schemas", "securitySchemes", "scopes", "mapping", "dependentSchemas",
                       "parameters", "requestBodies", "links", "callbacks", "encoding", "variables"})
VALUE_KEYS = frozenset({"enum", "const", "default", "required"})
_TEMPLATE = re.compile(r"\{[^}/]*\}")
_TEMPLATE_NAMES = re.compile(r"\{([^}/]*)\}")


class Document:
    """One side of the comparison: the document and `$ref` resolution over it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.root = document
        self.openapi_30 = str(document.get("openapi", "")).startswith("3.0.")
        self._cache: dict[str, Any] = {}

    def deref(self, node: Any) -> Any:
        """The node a local `$ref` points at (followed through chains); the node itself otherwise."""
        hops = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and hops < 64:
            ref = node["$ref"]
            if ref not in self._cache:
                self._cache[ref] = _pointer(self.root, ref)
            node, hops = self._cache[ref], hops + 1
        return node


class OperationPair:
    """One operation present in both documents."""

    __slots__ = ("key", "method", "path", "old_path", "old", "new", "old_item", "new_item")

    def __init__(self, key: str, method: str, path: str, old: dict[str, Any], new: dict[str, Any],
                 old_item: dict[str, Any], new_item: dict[str, Any], old_path: str = "") -> None:
        self.key = key
        self.method = method
        self.path = path
        self.old_path = old_path or path
        self.old = old
        self.new = new
        self.old_item = old_item
        self.new_item = new_item


class ApiDiff(SchemaWalk):
    """Everything the checks read."""

    def __init__(self, old: dict[str, Any], new: dict[str, Any], *, today: date | None = None,
                 limits: Limits = Limits()) -> None:
        self.old = Document(old)
        self.new = Document(new)
        self.today = today or date.today()
        self.limits = limits
        self._same: dict[tuple[int, int], bool] = {}
        self._tentative: list[tuple[int, int]] = []  # equalities that rest on an open comparison
        self._open = 0
        self._synthetic: dict[Any, tuple[Any]] = {}
        self._pairs: dict[tuple[str, int, int], SchemaPair | None] = {}
        self._places = 0
        self.schema_pairs: list[SchemaPair] = []  # every differing pair, once, in the order first found
        old_ops, new_ops = _operations(self.old), _operations(self.new)
        self.removed = [old_ops[k] for k in old_ops if k not in new_ops]
        self.added = [new_ops[k] for k in new_ops if k not in old_ops]
        self.operations = [
            OperationPair(new_ops[k][0], new_ops[k][1], new_ops[k][2], old_ops[k][3], new_ops[k][3],
                          old_ops[k][4], new_ops[k][4], old_path=old_ops[k][2])
            for k in new_ops if k in old_ops
        ]
        for pair in self.operations:
            self._pair_operation_schemas(pair)

    # -- equality ------------------------------------------------------------------------
    def same(self, old: Any, new: Any, *, names: bool = False) -> bool:
        """Structural equality with refs resolved and documentation ignored."""
        old, new = self.old.deref(old), self.new.deref(new)
        if isinstance(old, dict) and isinstance(new, dict):
            key = (id(old), id(new))
            known = self._same.get(key)
            if known is not None:
                return known
            # a cycle compares equal unless something else differs (the greatest fixed point): an
            # equality found while a comparison is open may rest on that assumption, so it stays
            # tentative until the outermost comparison ends, and is forgotten if an open one fails
            self._same[key] = True
            start = len(self._tentative)
            self._open += 1
            keys_old, keys_new = _keys(old, names), _keys(new, names)
            # inside a name map every value is an object again; elsewhere a key says what its value is
            result = keys_old == keys_new and all(
                self.same(old[k], new[k]) if names else
                old[k] == new[k] if k in VALUE_KEYS else self.same(old[k], new[k], names=k in NAME_MAPS)
                for k in keys_old)
            self._open -= 1
            self._same[key] = result
            if not result:  # a difference found under optimistic assumptions is certain
                for assumed in self._tentative[start:]:
                    self._same.pop(assumed, None)
                del self._tentative[start:]
            elif self._open:
                self._tentative.append(key)
            else:
                self._tentative.clear()
            return result
        if isinstance(old, list) and isinstance(new, list):
            return len(old) == len(new) and all(self.same(a, b) for a, b in zip(old, new))
        return type(old) is type(new) and old == new if not numbers(old, new) else old == new

    def _pair_operation_schemas(self, pair: OperationPair) -> None:
        for key, (old_param, new_param) in parameter_pairs(self, pair).items():
            if "schema" in old_param and "schema" in new_param:
                self.pair_schemas("request-parameter", pair.key, f"{key[0]} parameter {key[1]}",
                                  old_param["schema"], new_param["schema"])
        old_body, new_body = self.old.deref(pair.old.get("requestBody")), self.new.deref(pair.new.get("requestBody"))
        for media, (old_media, new_media) in media_pairs(self, old_body, new_body).items():
            self.pair_schemas("request-body", pair.key, f"request body {media}", old_media.get("schema"),
                              new_media.get("schema"))
        old_responses, new_responses = responses(pair.old), responses(pair.new)
        for status in old_responses:
            if status not in new_responses:
                continue
            old_response, new_response = self.old.deref(old_responses[status]), self.new.deref(new_responses[status])
            for media, (old_media, new_media) in media_pairs(self, old_response, new_response).items():
                self.pair_schemas("response-body", pair.key, f"response {status} {media}", old_media.get("schema"),
                                  new_media.get("schema"), _media_examples(self.old, old_media))


def responses(operation: dict[str, Any]) -> dict[str, Any]:
    """An operation's responses keyed by status as text (YAML reads an unquoted `200:` as an integer)."""
    found = operation.get("responses")
    return {str(status): response for status, response in found.items()} if isinstance(found, dict) else {}


def parameter_pairs(diff: ApiDiff, pair: OperationPair) -> dict[tuple[str, str], tuple[dict, dict]]:
    """Parameters present in both versions of an operation, keyed by (in, name)."""
    old, new = both_parameters(diff, pair)
    return {key: (old[key], new[key]) for key in old if key in new}


def both_parameters(diff: ApiDiff, pair: OperationPair) -> tuple[dict[tuple[str, str], dict],
                                                                   dict[tuple[str, str], dict]]:
    """Both versions' parameters, keyed by (in, name), with a renamed path parameter under its new name.

    Path parameters are matched by their position in the template: `/books/{bookId}` and
    `/books/{id}` are the same operation, and `bookId` and `id` the same parameter.
    """
    old, new = parameters(diff.old, pair.old_item, pair.old), parameters(diff.new, pair.new_item, pair.new)
    renamed = {("path", a): ("path", b) for a, b in zip(_TEMPLATE_NAMES.findall(pair.old_path),
                                                         _TEMPLATE_NAMES.findall(pair.path)) if a != b}
    return {renamed.get(key, key): param for key, param in old.items()}, new


def parameters(document: Document, path_item: dict[str, Any], operation: dict[str, Any]) -> dict[tuple[str, str], dict]:
    """An operation's effective parameters (operation level overrides path level)."""
    out = {}
    for raw in [*(path_item.get("parameters") or []), *(operation.get("parameters") or [])]:
        param = document.deref(raw)
        if isinstance(param, dict) and "name" in param and "in" in param:
            name = param["name"].lower() if param["in"] == "header" else param["name"]
            out[(param["in"], name)] = param
    return out


def media_pairs(diff: ApiDiff, old: Any, new: Any) -> dict[str, tuple[dict, dict]]:
    """Media types present in both contents."""
    old_content = (old or {}).get("content") or {} if isinstance(old, dict) else {}
    new_content = (new or {}).get("content") or {} if isinstance(new, dict) else {}
    return {media: (diff.old.deref(old_content[media]), diff.new.deref(new_content[media]))
            for media in old_content if media in new_content}


def _operations(document: Document) -> dict[tuple[str, str], tuple[str, str, str, dict, dict]]:
    out = {}
    for path, raw_item in (document.root.get("paths") or {}).items():
        item = document.deref(raw_item)
        if not isinstance(item, dict):
            continue
        for method in HTTP_METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                key = (method, _TEMPLATE.sub("{}", path))
                out[key] = (f"{method.upper()} {path}", method, path, operation, item)
    return out


def _media_examples(document: Document, media: dict[str, Any]) -> list[Any]:
    """The example values of a media type object (`example`, or each of `examples` with its `value`)."""
    found = [media["example"]] if "example" in media else []
    named = media.get("examples")
    if isinstance(named, dict):
        found += [example["value"] for example in map(document.deref, named.values())
                  if isinstance(example, dict) and "value" in example]
    return found


def _keys(node: dict[str, Any], names: bool) -> set[str]:
    if names:
        return set(node)
    return {k for k in node if k not in DOC_KEYS and (not k.startswith("x-") or k in KNOWN_EXTENSIONS)}


def _pointer(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        return {}  # remote and relative-file refs are bundled or refused before a diff
    node = root
    for token in ref[1:].split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        elif isinstance(node, dict) and token in node:
            node = node[token]
        else:
            return {}
    return node
