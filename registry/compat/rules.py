"""The rule table: every rule's stable id, level, direction and message, merged from the modules that emit them.

Each check module declares its rules (`RULES`) next to its check, with every id written out in
full, so that an id read in a CI report greps to the code that emits it. Ids are kebab-case and
never renamed: CI pipelines and suppressions refer to them. Levels: ERR breaks existing clients,
WARN may break them, INFO is compatible. A message is a format string over the finding's args.
docs/rules.md is generated from this table (`python -m registry.compat.docs`); a meta-test keeps
table, fixtures, tests, docs and the declaring modules in step.
"""

from __future__ import annotations

from registry.compat import semver
from registry.compat.checks import (
    documentation, event_content_model, operation_added, operation_deprecation, operation_id, operation_removed,
    parameters, request_body, response_headers, responses, schema_additional, schema_alternatives, schema_bounds,
    schema_discriminator, schema_enum, schema_flags, schema_pattern, schema_properties, schema_type, security,
    security_schemes, servers,
)
from registry.compat.model import Rule

CHECK_MODULES = (
    operation_added, operation_removed, operation_deprecation, operation_id, servers, parameters, request_body,
    responses, response_headers, security, security_schemes, documentation, schema_type, schema_enum, schema_bounds,
    schema_pattern, schema_properties, schema_additional, schema_alternatives, schema_flags, schema_discriminator,
)
"""The checks every diff runs, in this order (the order of the docs, too)."""

# the event content model runs with the mode's options (registry.compat.events); the semver verdict
# is the engine's, after the checks
RULES_LIST: list[Rule] = [rule for module in (*CHECK_MODULES, event_content_model, semver) for rule in module.RULES]
RULES: dict[str, Rule] = {rule.id: rule for rule in RULES_LIST}
