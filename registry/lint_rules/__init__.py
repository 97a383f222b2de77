"""The lint rule table: every rule's stable id and the function that checks it.

One module per rule family; one function per rule, taking the bundled document and yielding
`Finding(rule_id, path, message)` with `path` a JSON pointer into the document. Ids are
kebab-case and never renamed (organisation rulesets and CI refer to them). Rules whose id
starts with `event-` lint event schemas; all others lint OpenAPI documents. Default
severities live in policies/lint-ruleset.yaml, the reference in docs/lint.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from registry.lint_rules import bounds, document, events, headers, naming, operations, responses, security
from registry.lint_rules.support import Finding

Check = Callable[[dict[str, Any]], Iterable[Finding]]

RULES: dict[str, Check] = {
    # OpenAPI
    "operation-id-present": operations.operation_id_present,
    "operation-id-unique": operations.operation_id_unique,
    "operation-security-defined": security.operation_security_defined,
    "security-scheme-defined": security.security_scheme_defined,
    "error-response-problem-json": responses.error_response_problem_json,
    "correlation-id-header": headers.correlation_id_header,
    "info-version-semver": document.info_version_semver,
    "server-https": security.server_https,
    "path-kebab-case": naming.path_kebab_case,
    "path-no-trailing-slash": naming.path_no_trailing_slash,
    "schema-property-camel-case": naming.schema_property_camel_case,
    "request-string-bounded": bounds.request_string_bounded,
    "request-array-bounded": bounds.request_array_bounded,
    "operation-examples": responses.operation_examples,
    "operation-success-response": operations.operation_success_response,
    "operation-tags-defined": operations.operation_tags_defined,
    "operation-description": operations.operation_description,
    "info-contact": document.info_contact,
    "no-unused-components": document.no_unused_components,
    # event schemas (JSON Schema)
    "event-id-declared": events.event_id_declared,
    "event-root-type": events.event_root_type,
    "event-schema-dialect": events.event_schema_dialect,
    "event-property-camel-case": naming.event_property_camel_case,
    "event-string-bounded": bounds.event_string_bounded,
    "event-array-bounded": bounds.event_array_bounded,
    "event-examples": events.event_examples,
    "event-description": events.event_description,
}

__all__ = ["RULES", "Check", "Finding"]
