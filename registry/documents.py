"""Contract documents: parse, bundle relative-file `$ref`s, check, canonicalise.

A document reaches the store only as canonical JSON (sorted keys, no spaces) with the
sha256 of that text, so the same content is the same version whatever its key order
or whether it came as YAML or JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from registry.errors import InvalidDocument

MAX_DEPTH = 200
_OPENAPI_VERSIONS = ("3.0.", "3.1.")
_EVENT_DIALECTS = {
    "https://json-schema.org/draft/2020-12/schema",
    "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft-07/schema",
}


def parse(text: str | bytes, *, source: str = "document") -> Any:
    """Parse YAML or JSON text (JSON is YAML); refuse anything but a mapping, and YAML aliases."""
    try:
        document = _parse(text)
    except (yaml.YAMLError, ValueError) as exc:
        if isinstance(exc, UnicodeDecodeError):
            raise InvalidDocument(f"{source} is not UTF-8 text") from None
        raise InvalidDocument(f"{source} is not valid YAML or JSON", [str(exc)[:500]]) from None
    except RecursionError:
        raise InvalidDocument(f"{source} nests deeper than {MAX_DEPTH} levels") from None
    if not isinstance(document, dict):
        raise InvalidDocument(f"{source} must be a mapping at the top level")
    _check_depth(document)
    return document


def _parse(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if text.lstrip().startswith("{"):
        try:  # the fast path for JSON documents (a 12 MB spec parses in well under a second)
            return json.loads(text)
        except json.JSONDecodeError:
            pass  # JSON-looking YAML (flow style) still parses below
    if _FAST_YAML:
        # libyaml's C parser, after a scan of its events for aliases (billion-laughs bombs)
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise yaml.YAMLError("YAML aliases are not accepted")
        return yaml.load(text, Loader=yaml.CSafeLoader)  # noqa: S506 - the C safe loader
    return yaml.load(text, Loader=_SafeNoAliasLoader)  # noqa: S506 - safe loader subclass


_FAST_YAML = getattr(yaml, "__with_libyaml__", False)


def load_file(path: Path) -> Any:
    """Read and parse one document from disk, bundling its relative-file `$ref`s."""
    return bundle(_read(path), path)


def canonical_json(document: Any) -> str:
    """The canonical text a document is stored and hashed as."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256(canonical: str) -> str:
    """Hex sha256 of canonical text."""
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_openapi(document: dict[str, Any]) -> None:
    """Raise InvalidDocument listing every problem of an OpenAPI 3.0 / 3.1 document."""
    from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator
    from openapi_spec_validator.schemas import openapi_v30_schema_validator, openapi_v31_schema_validator

    version = document.get("openapi")
    if not isinstance(version, str) or not version.startswith(_OPENAPI_VERSIONS):
        raise InvalidDocument("only OpenAPI 3.0 and 3.1 documents are accepted", [f"openapi: {version!r}"])
    v31 = version.startswith("3.1.")
    # the structural check first: it reports every error, where the full validator may stop at one
    structural = openapi_v31_schema_validator if v31 else openapi_v30_schema_validator
    errors = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}"[:500]
              for e in structural.iter_errors(document)]
    if errors:
        raise InvalidDocument("document is not a valid OpenAPI document", errors)
    _check_refs(document)
    validator_cls = OpenAPIV31SpecValidator if v31 else OpenAPIV30SpecValidator
    try:
        errors = [_spec_error(e) for e in validator_cls(document).iter_errors()]
    except Exception as exc:  # the validator raises on some malformed shapes instead of yielding
        errors = [f"{type(exc).__name__}: {exc}"[:500]]
    if errors:
        raise InvalidDocument("document is not a valid OpenAPI document", errors)


def check_event_schema(document: dict[str, Any]) -> None:
    """Raise InvalidDocument unless the document is a JSON Schema (2020-12 or draft-07)."""
    from jsonschema import validators

    dialect = document.get("$schema", "https://json-schema.org/draft/2020-12/schema")
    if dialect not in _EVENT_DIALECTS:
        raise InvalidDocument("event schemas must use JSON Schema 2020-12 or draft-07", [f"$schema: {dialect!r}"])
    _check_refs(document)
    validator_cls = validators.validator_for(document)
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator_cls(
        validator_cls.META_SCHEMA).iter_errors(document)]
    if errors:
        raise InvalidDocument("document is not a valid JSON Schema", errors)


def iter_refs(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """Yield (location, ref) for every `$ref` string in a document."""
    stack = [(node, path)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                yield path, ref
            stack.extend((v, (*path, str(k))) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, (*path, str(i))) for i, v in enumerate(node))


def resolve_pointer(document: Any, pointer: str) -> Any:
    """Resolve a JSON pointer (`#/a/b` or `/a/b`); KeyError when it leads nowhere."""
    node = document
    for token in pointer.lstrip("#").split("/")[1:] if pointer.strip("#") else []:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            if not token.isdigit() or int(token) >= len(node):
                raise KeyError(pointer)
            node = node[int(token)]
        elif isinstance(node, dict) and token in node:
            node = node[token]
        else:
            raise KeyError(pointer)
    return node


def bundle(document: dict[str, Any], path: Path) -> dict[str, Any]:
    """Copy what relative-file `$ref`s point at into `components` and point the refs there.

    Remote (http, https, ...) refs are refused: the registry never fetches a URL.
    """
    bundler = _Bundler(path.resolve(), document)
    return bundler.run()


class _SafeNoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases: they are what a billion-laughs bomb is made of."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not accepted", event.start_mark)
        return super().compose_node(parent, index)


def _read(path: Path) -> dict[str, Any]:
    try:
        return parse(path.read_bytes(), source=str(path))
    except OSError as exc:
        raise InvalidDocument(f"cannot read {path}: {exc.strerror}") from None


def _check_depth(document: Any) -> None:
    stack = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidDocument(f"document nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def _check_refs(document: dict[str, Any]) -> None:
    errors = []
    for location, ref in iter_refs(document):
        where = "/" + "/".join(location)
        if not ref.startswith("#"):
            errors.append(f"{where}: $ref {ref!r} is not local (remote refs are never fetched)")
            continue
        try:
            resolve_pointer(document, ref)
        except KeyError:
            errors.append(f"{where}: $ref {ref!r} points nowhere")
    if errors:
        raise InvalidDocument("document has unresolvable $refs", errors)


def _spec_error(error: Any) -> str:
    path = getattr(error, "json_path", None) or "$"
    return f"{path}: {getattr(error, 'message', str(error))}"


class _Bundler:
    """One pass over a root document and the files it refers to."""

    def __init__(self, root: Path, document: dict[str, Any]) -> None:
        self.root = root
        self.document = document
        self.files: dict[Path, dict[str, Any]] = {root: document}
        self.imported: dict[tuple[Path, str], str] = {}

    def run(self) -> dict[str, Any]:
        self._rewrite(self.document, self.root)
        return self.document

    def _rewrite(self, node: Any, file: Path) -> None:
        stack = [node]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str):
                    node["$ref"] = self._local_ref(ref, file)
                stack.extend(v for k, v in node.items() if k != "$ref")
            elif isinstance(node, list):
                stack.extend(node)

    def _local_ref(self, ref: str, file: Path) -> str:
        target, _, pointer = ref.partition("#")
        if "://" in target or target.startswith("//"):
            raise InvalidDocument("remote $refs are not accepted (the registry never fetches URLs)", [ref])
        target_file = (file.parent / target).resolve() if target else file
        if target_file == self.root:
            return "#" + pointer
        key = (target_file, pointer)
        if key not in self.imported:
            self.imported[key] = self._import(target_file, pointer)
        return self.imported[key]

    def _import(self, file: Path, pointer: str) -> str:
        if file not in self.files:
            self.files[file] = _read(file)
        try:
            fragment = json.loads(json.dumps(resolve_pointer(self.files[file], pointer)))
        except KeyError:
            raise InvalidDocument(f"$ref {file.name}#{pointer} points nowhere") from None
        parts = [p for p in pointer.split("/") if p]
        section, name = (parts[1], parts[-1]) if len(parts) >= 3 and parts[0] == "components" else (
            "schemas", parts[-1] if parts else file.stem.split(".")[0])
        components = self.document.setdefault("components", {}).setdefault(section, {})
        unique, n = name, 1
        while unique in components:
            n += 1
            unique = f"{name}{n}"
        components[unique] = fragment
        local = f"#/components/{section}/{unique}"
        self.imported[(file, pointer)] = local  # before recursing: circular refs terminate
        self._rewrite(fragment, file)
        return local
