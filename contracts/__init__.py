"""Canonical retail contracts shipped with govgate (OpenAPI 3.1 and JSON Schema 2020-12)."""
