"""One compatibility check per module. Each reads the structured diff and yields findings."""

from __future__ import annotations

import json
from typing import Any

from registry.compat.model import Finding
from registry.compat.structure import SchemaPair


def schema_finding(pair: SchemaPair, aspect: str, **args: Any) -> Finding:
    """A finding for a schema rule: its id is the pair's context (request-body, ...) plus the aspect."""
    return Finding(f"{pair.context}-{aspect}", pair.operation, pair.location, args)


def show(value: Any) -> str:
    """A short, stable rendering of a value for messages."""
    if isinstance(value, (set, frozenset)):
        value = sorted(value, key=repr)
    text = json.dumps(value, ensure_ascii=False, default=str)  # JSON, so true and "true" read differently
    return text if len(text) <= 80 else text[:77] + "..."
