"""Document rules: a semver version, an owner to contact, no dead weight in `components`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from registry.documents import iter_refs, resolve_pointer
from registry.lint_rules.support import Finding, escape, mapping, operations, sequence

# semver.org 2.0.0, the recommended regular expression
SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?")


def info_version_semver(document: dict[str, Any]) -> Iterator[Finding]:
    """info.version is a semantic version (MAJOR.MINOR.PATCH): the registry orders and routes versions by it."""
    version = mapping(document, "info").get("version")
    if not isinstance(version, str) or not SEMVER.fullmatch(version):
        yield Finding("info-version-semver", "/info/version" if "version" in mapping(document, "info") else "/info",
                      f"info.version {version!r} is not a semantic version like 1.2.3")


def info_contact(document: dict[str, Any]) -> Iterator[Finding]:
    """info.contact names the owner and gives an email or URL to reach them."""
    contact = mapping(mapping(document, "info"), "contact")
    if not contact.get("name") or not (contact.get("email") or contact.get("url")):
        yield Finding("info-contact", "/info/contact" if contact else "/info",
                      "info.contact needs a name and an email or url of the owning team")


def no_unused_components(document: dict[str, Any]) -> Iterator[Finding]:
    """Every component is used: reached by `$ref` from the paths (or a discriminator mapping), or a scheme in use."""
    components = mapping(document, "components")
    used = _reachable_refs(document)
    used |= {f"/components/securitySchemes/{escape(str(name))}" for name in _security_scheme_names(document)}
    for section, entries in components.items():
        for name in entries if isinstance(entries, dict) else ():
            where = f"/components/{escape(str(section))}/{escape(str(name))}"
            if where not in used:
                yield Finding("no-unused-components", where, f"component {section}.{name} is never used")


def _reachable_refs(document: dict[str, Any]) -> set[str]:
    """Pointers of everything `$ref`'d from outside `components`, followed transitively."""
    outside = {key: value for key, value in document.items() if key != "components"}
    pending = list(_refs(outside))
    used: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in used:
            continue
        used.add(ref)
        try:
            pending.extend(_refs(resolve_pointer(document, ref)))
        except KeyError:
            continue  # a dangling ref is the document check's business
    # a ref into a component's inside (`#/components/schemas/A/properties/b`) uses the component
    return used | {"/".join(ref.split("/")[:4]) for ref in used if ref.startswith("/components/")}


def _refs(node: Any) -> Iterator[str]:
    for _location, ref in iter_refs(node):
        if ref.startswith("#"):
            yield ref[1:]
    stack = [node]
    while stack:  # discriminator mappings name schemas by reference too
        node = stack.pop()
        if isinstance(node, dict):
            for value in mapping(mapping(node, "discriminator"), "mapping").values():
                if isinstance(value, str) and value.startswith("#"):
                    yield value[1:]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _security_scheme_names(document: dict[str, Any]) -> set[str]:
    owners = [document] + [op.node for op in operations(document)]
    return {name for owner in owners for requirement in sequence(owner, "security")
            if isinstance(requirement, dict) for name in requirement}
