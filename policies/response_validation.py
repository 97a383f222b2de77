"""Response validation against the published contract, compiled once per operation.

The upstream's answer is checked before the client sees it: its status must be declared
(exact, then a `2XX` range, then `default`), its declared headers present and well
formed, and a JSON body must match the schema of its media type. As in request
validation, each (status, media type) compiles to one jsonschema-rs validator over one
instance `{"header", "body"}`. openapi-core remains the oracle in the tests.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import jsonschema_rs
import msgspec

from policies.context import Policy, RequestContext, ValidationMode
from policies.request_validation import (
    _MAX_MESSAGE,
    OperationValidator,
    Parameter,
    _deserialize,
    _escape,
    _is_json,
    _media_matches,
)
from registry.problems import ProblemType
from registry.schemas import DIALECT_2020_12, components_as_json_schema, convert, is_openapi_30

log = logging.getLogger("govgate.validation")
UPSTREAM_RESPONSE_INVALID = ProblemType(502, "upstream-response-invalid", "Upstream response does not match the contract")

Error = dict[str, str]


class ResponseValidationConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How upstream responses are checked against the contract."""

    mode: ValidationMode = "report"
    """enforce: an invalid response becomes a 502 `upstream-response-invalid` listing the errors,
    so no client gets an answer that breaks the contract; report: pass it on, log and count it; off: skip."""
    check_formats: bool = True
    """Check `format` (date-time, date, uuid, email, uri-reference, int32, ...) as well as structure."""
    max_body_bytes: Annotated[int, msgspec.Meta(ge=0)] = 1024 * 1024
    """Larger bodies go out unchecked (status and headers still are) and count as skipped."""


class MediaType(msgspec.Struct, frozen=True):
    """One declared media type of one response and the validator for its body."""

    name: str  # lower-case, without parameters
    is_json: bool  # only JSON bodies are parsed and checked against a schema
    validator: Any  # a compiled jsonschema_rs validator over {"header", "body"}


class DeclaredResponse(msgspec.Struct, frozen=True):
    """One entry of an operation's `responses`: its headers and media types."""

    headers: tuple[Parameter, ...]
    media_types: tuple[MediaType, ...]
    headers_only: Any  # the validator for a response whose body is not checked

    def media_type(self, content_type: str) -> MediaType | None:
        """The declared media type a Content-Type falls under: an exact match before a wildcard."""
        sent = content_type.split(";")[0].strip().lower()
        exact = next((m for m in self.media_types if m.name == sent), None)
        return exact or next((m for m in self.media_types if _media_matches(sent, m.name)), None)


class ResponseValidator:
    """Everything needed to check one operation's responses, built once."""

    # the $ref and type helpers of request validation: they only read `self.document`
    _deref = OperationValidator._deref
    _types = OperationValidator._types

    def __init__(self, document: dict[str, Any], operation: dict[str, Any], *, check_formats: bool = True) -> None:
        self.document = document
        self.openapi_30 = is_openapi_30(document)
        self.check_formats = check_formats
        self.components = components_as_json_schema(document, "response")
        self.responses = {_status_key(status): self._compile_response(self._deref(response))
                          for status, response in (operation.get("responses") or {}).items()}
        self.declared = ", ".join(self.responses)

    def find(self, status: int) -> DeclaredResponse | None:
        """The response declared for a status: exact, then its range (`4XX`), then `default`."""
        code = str(status)
        return self.responses.get(code) or self.responses.get(f"{code[0]}XX") or self.responses.get("default")

    def check(self, status: int, headers: dict[str, str], body: bytes | None) -> list[Error]:
        """Every way a response breaks the contract; none when it keeps it.

        Args:
            headers: lower-case names, repeated headers joined with ", ".
            body: None to leave the body unchecked (too large to validate).
        """
        declared = self.find(status)
        if declared is None:
            return [{"in": "status", "pointer": "",
                     "message": f"status {status} is not declared (declared: {self.declared or 'none'})"}]
        errors: list[Error] = []
        instance: dict[str, Any] = {"header": {p.name: _read_header(p, headers[p.name])
                                               for p in declared.headers if p.name in headers}}
        validator = declared.headers_only
        if body is not None and declared.media_types:
            media_type = declared.media_type(headers.get("content-type", ""))
            if not body:
                errors.append({"in": "body", "pointer": "",
                               "message": f"status {status} declares a body but the response has none"})
            elif media_type is None:
                sent, names = headers.get("content-type", "(none)"), [m.name for m in declared.media_types]
                errors.append({"in": "header", "pointer": "/content-type",
                               "message": f"content type {sent!r} is not one of {names}"})
            elif media_type.is_json:
                try:
                    instance["body"] = msgspec.json.decode(body)
                    validator = media_type.validator
                except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
                    errors.append({"in": "body", "pointer": "",
                                   "message": f"the body is not valid JSON: {str(exc)[:200]}"})
        errors.extend(_schema_errors(validator, instance))
        return errors

    def _compile_response(self, response: dict[str, Any]) -> DeclaredResponse:
        properties: dict[str, Any] = {}
        required: list[str] = []
        headers = []
        for name, raw in (response.get("headers") or {}).items():
            key, header = name.lower(), self._deref(raw)
            if key == "content-type":
                continue  # OpenAPI ignores a declared Content-Type header: the media types say it
            schema = convert(header.get("schema", {}), openapi_30=self.openapi_30, direction="response")
            properties[key] = schema
            if header.get("required"):
                required.append(key)
            types = self._types(schema)
            item_types = self._types(self._deref(schema.get("items", {}))) if "array" in types else frozenset()
            headers.append(Parameter(key, "header", types, item_types, explode=bool(header.get("explode")),
                                     allow_empty=False))
        header_schema = {"type": "object", "properties": properties, "required": required}
        headers_only = self._compile(header_schema, None)
        media_types = []
        for name, media in (response.get("content") or {}).items():
            media_type = name.split(";")[0].strip().lower()
            if _is_json(media_type):
                schema = convert((media or {}).get("schema", {}), openapi_30=self.openapi_30, direction="response")
                media_types.append(MediaType(media_type, True, self._compile(header_schema, schema)))
            else:
                media_types.append(MediaType(media_type, False, headers_only))
        return DeclaredResponse(tuple(headers), tuple(media_types), headers_only)

    def _compile(self, header_schema: dict[str, Any], body_schema: Any) -> Any:
        properties = {"header": header_schema}
        if body_schema is not None:
            properties["body"] = body_schema
        root = {"$schema": DIALECT_2020_12, "type": "object", "properties": properties,
                "components": self.components}
        return jsonschema_rs.Draft202012Validator(root, validate_formats=self.check_formats, offline=True)


class ResponseValidationPolicy(Policy):
    """Stops (enforce) or logs (report) upstream responses that break the contract."""

    def __init__(self, config: ResponseValidationConfig, validator: ResponseValidator) -> None:
        self.mode = config.mode
        self.max_body_bytes = config.max_body_bytes
        self.validator = validator

    def on_response(self, ctx: RequestContext) -> None:
        if self.mode == "off" or ctx.answered:
            return  # only the upstream's answers: a replay was checked when it was first answered
        body: bytes | None = ctx.response_body
        if len(ctx.response_body) > self.max_body_bytes:
            body = None  # too large to check: status and headers still are
        headers: dict[str, str] = {}
        for raw_name, value in ctx.response_headers:
            name = raw_name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        errors = self.validator.check(ctx.response_status, headers, body)
        if not errors:
            return
        ctx.response_invalid, ctx.response_violations = self.mode, errors
        log.warning("upstream response breaks the contract (%s mode)", self.mode,
                    extra={"correlation_id": ctx.correlation_id, "status": ctx.response_status, "errors": errors})
        if self.mode == "enforce":
            violations = f"{len(errors)} contract violation{'s' if len(errors) != 1 else ''}"
            ctx.upstream_failure = "upstream-response-invalid"
            raise UPSTREAM_RESPONSE_INVALID(f"the upstream answered {ctx.response_status} with {violations}",
                                            errors=errors)


def _status_key(status: Any) -> str:
    key = str(status)
    return "default" if key.lower() == "default" else key.upper()  # YAML may give 200 as an int


def _read_header(header: Parameter, raw: str) -> Any:
    if "array" in header.types:  # an RFC 9110 list: "1, 2" (or two header lines, joined) is two items
        raw = ",".join(item.strip() for item in raw.split(","))
    return _deserialize(header, raw)


def _schema_errors(validator: Any, instance: dict[str, Any]) -> list[Error]:
    errors = []
    for error in validator.iter_errors(instance):
        location, *rest = error.instance_path or ["response"]
        if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required):
            rest.append(error.kind.property)  # point at what is missing, not at its parent
        message = error.message if len(error.message) <= _MAX_MESSAGE else error.message[:_MAX_MESSAGE] + "…"
        errors.append({"in": location, "pointer": "".join(f"/{_escape(p)}" for p in rest), "message": message})
    return errors
