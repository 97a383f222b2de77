"""The structured diff of two OpenAPI documents, computed once and read by every check.

Operations are matched by method and path template (parameter names ignored), parameters
by location and name, responses by status, media types by name. Schemas are compared by
structure with `$ref`s resolved, so a schema moved into `components` or a component
renamed with its refs is no change. Documentation (descriptions, summaries, examples,
titles, unknown `x-` extensions) never counts. Cycles are followed once.
"""

from __future__ import annotations

import re
from collections import deque
from datetime import date
from typing import Any, NamedTuple

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DOC_KEYS = frozenset({"description", "summary", "example", "examples", "title", "externalDocs", "$comment", "xml"})
KNOWN_EXTENSIONS = frozenset({"x-sunset"})
# maps whose keys are names chosen by the author, not keywords: nothing in them is documentation
NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "paths", "responses", "content",
                       "headers", "schemas", "securitySchemes", "scopes", "mapping", "dependentSchemas",
                       "parameters", "requestBodies", "links", "callbacks", "encoding", "variables"})
VALUE_KEYS = frozenset({"enum", "const", "default", "required"})
COMBINATORS = ("oneOf", "anyOf", "allOf")
_ENUM_ONLY = frozenset({"enum", "const", "type", "description", "title"})
# keys a schema that is only a union of alternatives may carry besides its combinator
_UNION_KEYS = frozenset({"oneOf", "anyOf", "allOf", "discriminator", "nullable", "description", "title", "example",
                         "examples", "externalDocs", "deprecated", "readOnly", "writeOnly", "default"})


def required_only(schema: Any) -> bool:
    """A schema that only lists required properties (`anyOf: [{required: [a]}, {required: [b]}]`)."""
    return isinstance(schema, dict) and set(schema) <= {"required", "description", "title"} and "required" in schema
# limits that every allOf member imposes at once: the tightest one is the schema's
_TIGHTEST = {**dict.fromkeys(("maximum", "maxLength", "maxItems", "maxProperties"), min),
             **dict.fromkeys(("minimum", "minLength", "minItems", "minProperties"), max)}
_TEMPLATE = re.compile(r"\{[^}/]*\}")
_TEMPLATE_NAMES = re.compile(r"\{([^}/]*)\}")


class DiffTooLarge(Exception):
    """The documents would take more than the diff's limits to compare: refused, never half-reported."""


class Limits(NamedTuple):
    """What one diff may hold at most, so that no pair of documents can exhaust the process."""

    pairs: int = 200_000
    """Distinct differing schema pairs (each compared once)."""
    places: int = 1_000_000
    """Places those pairs sit at, over every operation (each becomes a finding per rule that fires)."""
    findings: int = 1_000_000
    """Findings before deduplication."""


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


class SchemaPair:
    """Two schemas at the same place in both documents that are not the same, compared once per diff.

    A pair is keyed by the identity of both (dereferenced) schemas and its context, so a schema
    shared by many places is compared once; `places` lists every (operation, location) it sits at.
    """

    __slots__ = ("context", "old", "new", "old_30", "new_30", "alternatives", "children", "places", "shown")

    def __init__(self, context: str, old: dict[str, Any], new: dict[str, Any], old_30: bool, new_30: bool) -> None:
        self.context = context  # request-body | request-parameter | response-body | event
        self.old = old
        self.new = new
        self.old_30 = old_30
        self.new_30 = new_30
        # combinator -> (indices removed from old, indices added in new)
        self.alternatives: dict[str, tuple[list[int], list[int]]] = {}
        self.children: list[tuple[str, SchemaPair]] | None = None  # (path step, pair), made on first use
        self.places: list[tuple[str, str]] = []  # (operation, location)
        self.shown: set[str] = set()  # property names the old document's examples show at one of the places

    @property
    def operation(self) -> str:
        """The operation of the first place the pair was found at."""
        return self.places[0][0]

    @property
    def location(self) -> str:
        """The location of the first place the pair was found at."""
        return self.places[0][1]


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


class ApiDiff:
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
        return type(old) is type(new) and old == new if not _numbers(old, new) else old == new

    # -- schema pairs --------------------------------------------------------------------
    def pair_schemas(self, context: str, operation: str, location: str, old: Any, new: Any,
                     examples: list[Any] | None = None) -> list[SchemaPair]:
        """Every differing schema pair under (old, new), breadth first, each once with its shortest path.

        A pair already compared (under another operation, or elsewhere under this one) is not
        compared again: it gains this place. `examples` are the old document's example values of
        the root, followed down the same path. Raises DiffTooLarge past `limits`.
        """
        root = self._pair(context, old, new)
        if root is None:
            return []
        out: list[SchemaPair] = []
        seen = {id(root)}
        queue: deque[tuple[str, SchemaPair, list[Any]]] = deque([("", root, examples or [])])
        while queue:
            path, pair, shown = queue.popleft()
            self._places += 1
            if self._places > self.limits.places:
                raise DiffTooLarge(f"more than {self.limits.places:,} places where schemas differ")
            pair.places.append((operation, f"{location} {path or '/'}"))
            shown = [*shown, *_own_examples(pair.old)]
            pair.shown.update(name for value in shown if isinstance(value, dict) for name in value)
            out.append(pair)
            for step, child in self._children(pair):
                if id(child) not in seen:
                    seen.add(id(child))
                    queue.append((f"{path}/{step}", child, _examples_below(shown, step) if shown else shown))
        return out

    def _children(self, pair: SchemaPair) -> list[tuple[str, SchemaPair]]:
        """The differing pairs directly under a pair, made on first use."""
        if pair.children is None:
            found = ((step, self._pair(pair.context, old, new)) for step, old, new in self._child_schemas(pair))
            pair.children = [(step, child) for step, child in found if child is not None]
        return pair.children

    def _pair(self, context: str, old_ref: Any, new_ref: Any) -> SchemaPair | None:
        """The pair of two schemas in a context (made and compared once), or None when they are the same."""
        old, new = self.old.deref(old_ref), self.new.deref(new_ref)
        if not isinstance(old, dict) or not isinstance(new, dict):
            return None
        old, new = self._align(old, new)
        key = (context, id(old), id(new))
        if key in self._pairs:
            return self._pairs[key]
        if self.same(old, new):
            self._pairs[key] = None
            return None
        if len(self.schema_pairs) >= self.limits.pairs:
            raise DiffTooLarge(f"more than {self.limits.pairs:,} differing schema pairs")
        pair = self._pairs[key] = SchemaPair(context, old, new, self.old.openapi_30, self.new.openapi_30)
        self.schema_pairs.append(pair)
        return pair

    def _child_schemas(self, pair: SchemaPair) -> list[tuple[str, Any, Any]]:
        """(path step, old subschema, new subschema) for every place a pair's schemas nest one."""
        old, new = pair.old, pair.new
        children = []
        old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
        if isinstance(old_props, dict) and isinstance(new_props, dict):
            children += [(name, old_props[name], new_props[name]) for name in old_props if name in new_props]
        for keyword, step in (("items", "[]"), ("additionalProperties", "{*}"), ("not", "!")):
            if isinstance(old.get(keyword), dict) and isinstance(new.get(keyword), dict):
                children.append((step, old[keyword], new[keyword]))
        for combinator in COMBINATORS:
            old_alts, new_alts = old.get(combinator) or [], new.get(combinator) or []
            if not old_alts and not new_alts or not isinstance(old_alts, list) or not isinstance(new_alts, list):
                continue
            if all(required_only(self.old.deref(a)) for a in old_alts) and \
                    all(required_only(self.new.deref(a)) for a in new_alts):
                continue  # alternatives of required properties only: read as required-ness (views.required)
            matched, removed, added = self._match_alternatives(old_alts, new_alts)
            pair.alternatives[combinator] = (removed, added)
            children += [(f"{combinator}[{j}]", old_alts[i], new_alts[j]) for i, j in matched]
        return children

    def _align(self, old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Rewrite one side when only it uses a combinator, so equal meanings compare equal.

        `$ref X` → `allOf: [$ref X, {…}]` is X plus whatever the other members add; an enum split
        into `oneOf` const alternatives is still that enum; `S` → `oneOf: [S, T]` adds T.
        """
        if ("allOf" in old) != ("allOf" in new):
            old = self._flat(self.old, old) if "allOf" in old else old
            new = self._flat(self.new, new) if "allOf" in new else new
        for combinator in ("oneOf", "anyOf"):
            if (combinator in old) == (combinator in new) or any(c in old or c in new for c in COMBINATORS
                                                                 if c != combinator and c != "allOf"):
                continue
            side, document, other = (old, self.old, new) if combinator in old else (new, self.new, old)
            if set(side) - _UNION_KEYS:
                continue  # the combinator constrains a schema of its own: compared keyword by keyword
            collapsed = self._enum_of(document, side, combinator)
            if collapsed is not None:
                old, new = (collapsed, new) if side is old else (old, collapsed)
            else:
                wrapped = self._memo(("wrap", id(other), combinator), lambda: {combinator: [other]})
                old, new = (old, wrapped) if side is old else (wrapped, new)
        return old, new

    def merged(self, pair: SchemaPair) -> tuple[dict[str, Any], dict[str, Any]]:
        """Both schemas of a pair with their `allOf` members merged in (the tightest of each limit)."""
        old = self._flat(self.old, pair.old) if "allOf" in pair.old else pair.old
        new = self._flat(self.new, pair.new) if "allOf" in pair.new else pair.new
        return old, new

    def _memo(self, key: Any, make: Any) -> Any:
        # synthetic schemas are made once, so that identity-based memos and cycle checks hold
        if key not in self._synthetic:
            self._synthetic[key] = (make(),)
        return self._synthetic[key][0]

    def _flat(self, document: Document, schema: dict[str, Any]) -> dict[str, Any]:
        def merge() -> dict[str, Any]:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for raw in schema.get("allOf") or []:
                member = document.deref(raw)
                if not isinstance(member, dict):
                    continue
                if "allOf" in member:
                    member = self._flat(document, member)
                for keyword, value in member.items():
                    if keyword == "properties" and isinstance(value, dict):
                        merged["properties"] = {**value, **merged.get("properties", {})}
                    elif keyword == "required" and isinstance(value, list):
                        merged["required"] = sorted(set(merged.get("required", [])) | set(value))
                    elif keyword == "additionalProperties" and value is False:
                        merged[keyword] = False
                    elif keyword in _TIGHTEST and _numbers(value, merged.get(keyword, value)):
                        merged[keyword] = _TIGHTEST[keyword](value, merged.get(keyword, value))  # both apply
                    else:
                        merged.setdefault(keyword, value)
            return merged

        return self._memo(("flat", id(schema)), merge)

    def _enum_of(self, document: Document, schema: dict[str, Any], combinator: str) -> dict[str, Any] | None:
        alternatives = [document.deref(a) for a in schema.get(combinator) or []]
        if not alternatives or not all(isinstance(a, dict) and ("enum" in a or "const" in a)
                                       and set(a) <= _ENUM_ONLY for a in alternatives):
            return None
        types = {a.get("type") for a in alternatives if "type" in a} | ({schema["type"]} if "type" in schema else set())
        values = [v for a in alternatives for v in (a["enum"] if "enum" in a else [a["const"]])]

        def make() -> dict[str, Any]:
            rest = {k: v for k, v in schema.items() if k != combinator}
            return {**rest, **({"type": types.pop()} if len(types) == 1 else {}), "enum": values}

        return self._memo(("enum", id(schema), combinator), make)

    def _match_alternatives(self, old: list[Any], new: list[Any]) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        left, right = list(range(len(old))), list(range(len(new)))
        matched: list[tuple[int, int]] = []

        def take(predicate: Any) -> None:
            for i in list(left):
                for j in right:
                    if predicate(old[i], new[j]):
                        matched.append((i, j))
                        left.remove(i)
                        right.remove(j)
                        break

        take(lambda a, b: self.same(a, b))
        take(lambda a, b: _ref_name(a) is not None and _ref_name(a) == _ref_name(b))
        take(lambda a, b: _tag(self.old.deref(a)) is not None and _tag(self.old.deref(a)) == _tag(self.new.deref(b)))
        if len(left) == 1 and len(right) == 1:  # one changed alternative in place
            matched.append((left.pop(), right.pop()))
        # the rest pair up by likeness: most shared property names and types first
        scored = sorted(((_likeness(self.old.deref(old[i]), self.new.deref(new[j])), i, j) for i in left for j in right),
                        reverse=True)
        for score, i, j in scored:
            if score >= 0.5 and i in left and j in right:
                matched.append((i, j))
                left.remove(i)
                right.remove(j)
        return matched, left, right

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


def _own_examples(schema: dict[str, Any]) -> list[Any]:
    examples = schema.get("examples")
    return ([schema["example"]] if "example" in schema else []) + (examples if isinstance(examples, list) else [])


def _examples_below(examples: list[Any], step: str) -> list[Any]:
    """The example values one path step below (a property name, `[]`, `{*}`, a combinator alternative)."""
    if step == "[]":
        return [item for value in examples if isinstance(value, list) for item in value]
    if step == "{*}":
        return [item for value in examples if isinstance(value, dict) for item in value.values()]
    if step == "!":
        return []
    if step.endswith("]") and step.startswith(COMBINATORS):
        return examples
    return [value[step] for value in examples if isinstance(value, dict) and step in value]


def _keys(node: dict[str, Any], names: bool) -> set[str]:
    if names:
        return set(node)
    return {k for k in node if k not in DOC_KEYS and (not k.startswith("x-") or k in KNOWN_EXTENSIONS)}


def _numbers(a: Any, b: Any) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
        and not isinstance(b, bool)


def _likeness(old: Any, new: Any) -> float:
    """Jaccard similarity of two schemas' property names and types."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return 0.0
    def features(schema: dict[str, Any]) -> set[str]:
        declared = schema.get("type")
        types = declared if isinstance(declared, list) else [declared] if declared else []
        return {f"p:{name}" for name in schema.get("properties") or {}} | {f"t:{t}" for t in types}
    a, b = features(old), features(new)
    return len(a & b) / len(a | b) if a | b else 0.0


def _ref_name(node: Any) -> str | None:
    if isinstance(node, dict) and isinstance(node.get("$ref"), str):
        return node["$ref"].rsplit("/", 1)[-1]
    return None


def _tag(schema: Any) -> Any:
    """A value that names an alternative: a `const` or single-value enum of one of its properties."""
    if not isinstance(schema, dict):
        return None
    for name, prop in sorted((schema.get("properties") or {}).items()):
        if isinstance(prop, dict):
            if "const" in prop:
                return (name, repr(prop["const"]))
            if isinstance(prop.get("enum"), list) and len(prop["enum"]) == 1:
                return (name, repr(prop["enum"][0]))
    return None


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
