"""Schema pairs: every pair of schemas that differ under two roots, each found and compared once.

A pair is keyed by the identity of both schemas (after `$ref`s are followed and one-sided
combinators aligned) and its context, so a schema shared by many places (Stripe's objects,
reachable through exponentially many paths) is compared once; a breadth-first walk from each
root records the places, at their shortest path, where the pair sits. Limits bound what one
diff may hold: past them the diff is refused (DiffTooLarge), never half-reported.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from registry.compat.structure import Document

COMBINATORS = ("oneOf", "anyOf", "allOf")
_ENUM_ONLY = frozenset({"enum", "const", "type", "description", "title"})
# keys a schema that is only a union of alternatives may carry besides its combinator
_UNION_KEYS = frozenset({"oneOf", "anyOf", "allOf", "discriminator", "nullable", "description", "title", "example",
                         "examples", "externalDocs", "deprecated", "readOnly", "writeOnly", "default"})
# limits that every allOf member imposes at once: the tightest one is the schema's
_TIGHTEST = {**dict.fromkeys(("maximum", "maxLength", "maxItems", "maxProperties"), min),
             **dict.fromkeys(("minimum", "minLength", "minItems", "minProperties"), max)}


def required_only(schema: Any) -> bool:
    """A schema that only lists required properties (`anyOf: [{required: [a]}, {required: [b]}]`)."""
    return isinstance(schema, dict) and set(schema) <= {"required", "description", "title"} and "required" in schema


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


class SchemaWalk:
    """The schema-pair half of ApiDiff (registry.compat.structure), which provides what is declared here."""

    old: Document
    new: Document
    limits: Limits
    schema_pairs: list[SchemaPair]
    _pairs: dict[tuple[str, int, int], SchemaPair | None]
    _places: int
    _synthetic: dict[Any, tuple[Any]]

    def same(self, old: Any, new: Any, *, names: bool = False) -> bool:
        raise NotImplementedError

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
                    elif keyword in _TIGHTEST and numbers(value, merged.get(keyword, value)):
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


def numbers(a: Any, b: Any) -> bool:
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
