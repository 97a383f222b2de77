"""Request validation against the published contract, compiled once per operation.

Parameters (path, query, header) and the JSON body are checked by one compiled JSON
Schema validator per operation, over one instance `{"path", "query", "header", "body"}`,
so a request costs one validator call however many parts it has. openapi-core remains
the oracle in the tests: it agrees with this module on every generated request.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl

import jsonschema_rs
import msgspec

from policies.context import Policy, RequestContext, ValidationMode
from registry.documents import resolve_pointer
from registry.problems import Problem, ProblemType
from registry.schemas import DIALECT_2020_12, components_as_json_schema, convert, is_openapi_30

log = logging.getLogger("govgate.validation")

_INTEGER = re.compile(r"-?\d{1,30}")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_MAX_MESSAGE = 300
_LOCATIONS = ("path", "query", "header")

VALIDATION_FAILED = ProblemType(400, "validation-failed", "Request does not match the contract")
UNSUPPORTED_MEDIA_TYPE = ProblemType(415, "unsupported-media-type", "Unsupported media type")
MALFORMED_JSON = ProblemType(400, "malformed-json", "Malformed JSON body")


class RequestValidationConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How requests are checked against the contract."""

    mode: ValidationMode = "enforce"
    """enforce: reject with 400; report: log and pass through; off: skip."""
    check_formats: bool = True
    """Check `format` (date-time, date, uuid, email, uri, int32, ...) as well as structure."""


class Parameter(msgspec.Struct, frozen=True):
    """One declared parameter and how its raw text becomes a value."""

    name: str  # header names are lower-cased
    location: str
    types: frozenset[str]
    item_types: frozenset[str]
    explode: bool
    allow_empty: bool


class OperationValidator:
    """Everything needed to check one operation's requests, built once."""

    def __init__(self, document: dict[str, Any], path_item: dict[str, Any], operation: dict[str, Any],
                 *, check_formats: bool = True) -> None:
        self.document = document
        openapi_30 = is_openapi_30(document)
        components = components_as_json_schema(document, "request")
        declared = {}
        for raw in [*path_item.get("parameters", []), *operation.get("parameters", [])]:
            param = self._deref(raw)
            if param.get("in") in _LOCATIONS:
                declared[(param["in"], param["name"])] = param  # operation level overrides path level
        properties: dict[str, dict[str, Any]] = {loc: {} for loc in _LOCATIONS}
        required: dict[str, list[str]] = {loc: [] for loc in _LOCATIONS}
        self.parameters: list[Parameter] = []
        for (location, name), param in declared.items():
            key = name.lower() if location == "header" else name
            schema = convert(param.get("schema", {}), openapi_30=openapi_30, direction="request")
            properties[location][key] = schema
            if param.get("required") or location == "path":
                required[location].append(key)
            types = self._types(schema)
            item_types = self._types(self._deref(schema.get("items", {}))) if "array" in types else frozenset()
            explode = param.get("explode", param.get("style", "form") == "form")
            allow_empty = bool(param.get("allowEmptyValue"))
            self.parameters.append(Parameter(key, location, types, item_types, explode, allow_empty))

        body = self._deref(operation.get("requestBody") or {})
        self.body_required = bool(body.get("required"))
        self.media_types = [m.split(";")[0].strip().lower() for m in (body.get("content") or {})]
        self.has_body = bool(self.media_types)
        json_media = next((m for m in self.media_types if _is_json(m)), None)
        root: dict[str, Any] = {
            "$schema": DIALECT_2020_12,
            "type": "object",
            "properties": {loc: {"type": "object", "properties": properties[loc], "required": required[loc]}
                           for loc in _LOCATIONS},
            "components": components,
        }
        if json_media is not None:
            media = body["content"][next(k for k in body["content"] if k.split(";")[0].strip().lower() == json_media)]
            root["properties"]["body"] = convert(media.get("schema", {}), openapi_30=openapi_30, direction="request")
        self.validates_body = json_media is not None
        self.validator = jsonschema_rs.Draft202012Validator(root, validate_formats=check_formats, offline=True)

    def check(self, path_params: dict[str, str], query_string: str, headers: dict[str, str], body: bytes) -> None:
        """Raise a Problem (400, 415) naming every way the request breaks the contract."""
        instance: dict[str, Any] = {"path": {}, "query": {}, "header": {}}
        query = _parse_query(query_string) if query_string else {}
        errors = []
        for param in self.parameters:
            raw = path_params.get(param.name) if param.location == "path" else (
                query.get(param.name) if param.location == "query" else headers.get(param.name))
            if raw is None:
                continue
            if param.location == "query" and raw[-1] == "" and not param.allow_empty:
                errors.append({"in": "query", "pointer": f"/{_escape(param.name)}",
                               "message": f"{param.name!r} is empty; send a value or leave the parameter out"})
                continue
            instance[param.location][param.name] = _deserialize(param, raw)
        content_type = headers.get("content-type", "")
        if body or content_type:
            if self.has_body:
                media_type = content_type.split(";")[0].strip().lower()
                if not any(_media_matches(media_type, declared) for declared in self.media_types):
                    raise UNSUPPORTED_MEDIA_TYPE(
                        f"content type {content_type or '(none)'!r} is not one of {self.media_types}",
                        headers={"Accept-Post": ", ".join(self.media_types)},
                    )
                if self.validates_body and _is_json(media_type):
                    instance["body"] = _decode_json(body)
        if self.body_required and not body:
            errors.append({"in": "body", "pointer": "", "message": "request body is required"})
        for error in self.validator.iter_errors(instance):
            location, *rest = error.instance_path or ["request"]
            if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required):
                rest.append(error.kind.property)  # point at what is missing, not at its parent
            message = error.message if len(error.message) <= _MAX_MESSAGE else error.message[:_MAX_MESSAGE] + "…"
            errors.append({"in": str(location), "pointer": "".join(f"/{_escape(p)}" for p in rest), "message": message})
        if errors:
            raise validation_failed(errors)

    def _deref(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 32:
            node, seen = resolve_pointer(self.document, node["$ref"]), seen + 1
        return node

    def _types(self, schema: Any) -> frozenset[str]:
        schema = self._deref(schema)
        if not isinstance(schema, dict):
            return frozenset()
        declared = schema.get("type")
        types = set(declared) if isinstance(declared, list) else {declared} if declared else set()
        for combinator in ("allOf", "anyOf", "oneOf"):
            for sub in schema.get(combinator, []):
                types |= self._types(sub)
        return frozenset(t for t in types if isinstance(t, str))


class RequestValidationPolicy(Policy):
    """Rejects (or, in report mode, logs) requests that break the contract."""

    reads_body = True

    def __init__(self, config: RequestValidationConfig, validator: OperationValidator) -> None:
        self.mode = config.mode
        self.validator = validator

    def on_request(self, ctx: RequestContext) -> None:
        try:
            self.validator.check(ctx.path_params, ctx.query_string, ctx.headers, ctx.body)
        except Problem as problem:
            if self.mode == "enforce":
                if problem.slug == VALIDATION_FAILED.slug:
                    ctx.request_invalid = "enforce"
                raise
            ctx.request_invalid = "report"
            ctx.request_violations = problem.errors or [{"message": problem.detail}]
            log.warning("contract violation passed in report mode",
                        extra={"correlation_id": ctx.correlation_id, "errors": ctx.request_violations})


def validation_failed(errors: list[dict[str, Any]]) -> Problem:
    """The request breaks the published contract: one entry per violated constraint."""
    count = len(errors)
    return VALIDATION_FAILED(f"{count} validation error{'s' if count != 1 else ''}", errors=errors)


def _parse_query(query_string: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        values.setdefault(name, []).append(value)
    return values


def _deserialize(param: Parameter, raw: str | list[str]) -> Any:
    if "array" in param.types:
        # form + explode (the query default): one value per repetition; otherwise comma-separated
        items = raw if isinstance(raw, list) and param.explode else (raw[-1] if isinstance(raw, list) else raw).split(",")
        return [_cast(param.item_types, item) for item in items]
    value = raw[-1] if isinstance(raw, list) else raw
    return _cast(param.types, value)


def _cast(types: frozenset[str], text: str) -> Any:
    """The typed value a parameter's text stands for; the text itself when it is none."""
    if "integer" in types and _INTEGER.fullmatch(text):
        return int(text)
    if "number" in types and _NUMBER.fullmatch(text):
        return float(text)
    if "boolean" in types and text in ("true", "false"):
        return text == "true"
    if "null" in types and text == "" and "string" not in types:
        return None
    return text


def _decode_json(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        # msgspec raises UnicodeDecodeError for bytes that are not UTF-8 and RecursionError for deep nesting
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise MALFORMED_JSON(f"the body is not valid JSON: {reason}",
                             errors=[{"in": "body", "pointer": "", "message": reason}]) from None


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _media_matches(sent: str, declared: str) -> bool:
    if declared in ("*/*", sent):
        return True
    return declared.endswith("/*") and sent.startswith(declared[:-1])


def _escape(token: Any) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")
