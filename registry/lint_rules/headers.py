"""Header rules: every operation declares the correlation id header the gateway propagates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from registry.lint_rules.support import Finding, operations, parameters

CORRELATION_HEADER = "X-Correlation-ID"


def correlation_id_header(document: dict[str, Any]) -> Iterator[Finding]:
    """Every operation declares the X-Correlation-ID header parameter (own or path-level, inline or `$ref`)."""
    for op in operations(document):
        declared = any(parameter.get("in") == "header"
                       and str(parameter.get("name", "")).lower() == CORRELATION_HEADER.lower()
                       for parameter, _where in parameters(document, op))
        if not declared:
            yield Finding("correlation-id-header", op.pointer,
                          f"{op.label} does not declare the {CORRELATION_HEADER} header parameter")
