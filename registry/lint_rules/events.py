"""Event schema rules: an identified, typed JSON Schema of a dialect the registry accepts, documented."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from registry.lint_rules.support import Finding

DIALECTS = frozenset({
    "https://json-schema.org/draft/2020-12/schema",
    "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft-07/schema",
})


def event_id_declared(document: dict[str, Any]) -> Iterator[Finding]:
    """The schema declares an absolute `$id` URI: producers and consumers name the schema by it."""
    schema_id = document.get("$id")
    if not isinstance(schema_id, str) or not _absolute(schema_id):
        yield Finding("event-id-declared", "/$id" if "$id" in document else "",
                      "the schema has no `$id`" if schema_id is None else f"`$id` {schema_id!r} is not an absolute URI")


def event_root_type(document: dict[str, Any]) -> Iterator[Finding]:
    """The root of the schema declares its `type` (an event's data is almost always an object)."""
    if "type" not in document:
        yield Finding("event-root-type", "", "the schema does not declare a `type` at its root")


def event_schema_dialect(document: dict[str, Any]) -> Iterator[Finding]:
    """`$schema` is declared and is JSON Schema 2020-12 or draft-07, the dialects the registry validates."""
    dialect = document.get("$schema")
    if dialect not in DIALECTS:
        yield Finding("event-schema-dialect", "/$schema" if "$schema" in document else "",
                      "the schema does not declare `$schema`" if dialect is None else
                      f"`$schema` {dialect!r} is neither JSON Schema 2020-12 nor draft-07")


def event_examples(document: dict[str, Any]) -> Iterator[Finding]:
    """The schema carries at least one example payload in its root `examples`."""
    examples = document.get("examples")
    if not isinstance(examples, list) or not examples:
        yield Finding("event-examples", "/examples" if "examples" in document else "",
                      "the schema has no example payload in `examples`")


def event_description(document: dict[str, Any]) -> Iterator[Finding]:
    """The schema has a `title` and a `description` saying what the event means and who emits it."""
    missing = [key for key in ("title", "description")
               if not (isinstance(document.get(key), str) and document[key].strip())]
    if missing:
        yield Finding("event-description", "", f"the schema has no {' and no '.join(missing)}")


def _absolute(uri: str) -> bool:
    try:
        return bool(urlsplit(uri).scheme)
    except ValueError:
        return False
