"""Event schemas only: properties added or removed, judged by the content model they change (Confluent's).

A property added to an open model (additional properties allowed) breaks BACKWARD, since old data
may carry that name with any value; a property removed from a closed model breaks BACKWARD, since
old data still carries it. It runs apart from the other checks, with the mode's options.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from registry.compat.checks import at_places
from registry.compat.model import Finding, Rule
from registry.compat.structure import ApiDiff
from registry.compat.views import closed, properties, required

RULES = [
    Rule("event-required-property-added-open-model", "ERR", "none", "required property {name} added", "INFO"),
    Rule("event-required-property-added-closed-model", "ERR", "none",
         "required property {name} added to a closed content model", "ERR"),
    Rule("event-required-property-with-default-added-open-model", "INFO", "none",
         "required property {name} with a default added", "INFO"),
    Rule("event-required-property-with-default-added-closed-model", "INFO", "none",
         "required property {name} with a default added to a closed content model", "ERR"),
    Rule("event-optional-property-added-open-model", "ERR", "none",
         "optional property {name} added to an open content model", "INFO"),
    Rule("event-optional-property-added-closed-model", "INFO", "none",
         "optional property {name} added to a closed content model", "ERR"),
    Rule("event-property-removed-open-model", "INFO", "none", "property {name} removed from an open content model",
         "ERR"),
    Rule("event-required-property-removed-closed-model", "ERR", "none",
         "required property {name} removed from a closed content model", "ERR"),
    Rule("event-optional-property-removed-closed-model", "ERR", "none",
         "optional property {name} removed from a closed content model", "INFO"),
]
RequiredWithDefault = Literal["compatible", "breaking"]
# the property added -> its rule id in an (open, closed) content model
_ADDED = {
    "optional": ("event-optional-property-added-open-model", "event-optional-property-added-closed-model"),
    "required": ("event-required-property-added-open-model", "event-required-property-added-closed-model"),
    "required with default": ("event-required-property-with-default-added-open-model",
                              "event-required-property-with-default-added-closed-model"),
}


def check(diff: ApiDiff, *, required_with_default: RequiredWithDefault) -> Iterator[Finding]:
    """The event-only property rules, in place of the property rules of the request/response contexts."""
    for pair in diff.schema_pairs:
        old_props, new_props = properties(pair.old), properties(pair.new)
        for name in sorted(new_props.keys() - old_props.keys()):
            if name in required(pair.new):
                has_default = isinstance(new_props[name], dict) and "default" in new_props[name]
                kind = "required with default" if has_default and required_with_default == "compatible" \
                    else "required"
            else:
                kind = "optional"
            yield from at_places(pair, _ADDED[kind][closed(pair.old)], name=name)
        for name in sorted(old_props.keys() - new_props.keys()):
            if not closed(pair.new):
                rule = "event-property-removed-open-model"
            elif name in required(pair.old):
                rule = "event-required-property-removed-closed-model"
            else:
                rule = "event-optional-property-removed-closed-model"
            yield from at_places(pair, rule, name=name)
