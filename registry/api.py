"""The /registry REST API: contracts, versions, documents, publishing."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, Router, delete, get, post
from litestar.di import Provide

from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import Parameter

from registry import documents
from registry.errors import InvalidRequest, RegistryError
from registry.audit import AuditRecord
from registry.audit import Verification as ChainVerification
from registry.webhooks import Delivery, NewWebhook, Webhook
from registry.auth import ADMINS, AUDITORS, BOARD, INTEGRATORS, READERS, VERIFIER, identity
from registry.model import (
    ChangeRequest,
    Consumer,
    Contract,
    Deprecation,
    NewConsumer,
    NewContract,
    NewVerification,
    Plan,
    Retirement,
    Subscription,
    Usage,
    Verification,
    Version,
    VoteRequest,
)
from registry.service import Registry
from registry.tokens import JwtVerifier

DOCUMENT_MEDIA_TYPES = {
    "application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml",
    "application/openapi+json", "application/openapi+yaml", "application/schema+json",
}
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024

ContractPath = Annotated[str, Parameter(description="contract name, e.g. erp.sales-orders", max_length=100)]
VersionPath = Annotated[str, Parameter(description="semantic version, e.g. 1.2.0", max_length=64)]


class ProblemDetail(msgspec.Struct, frozen=True, kw_only=True):
    """One violated constraint."""

    pointer: str
    message: str
    in_: str | None = msgspec.field(default=None, name="in")


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9457 problem details, as every registry error is answered."""

    type: str
    title: str
    status: int
    detail: str
    correlationId: str  # noqa: N815 - the wire name
    instance: str | None = None
    errors: list[Any] | None = None


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=Problem, media_type="application/problem+json", description=description,
                        generate_examples=False)


# what any registry endpoint may answer besides its success, documented for clients and schemathesis
PROBLEMS = {
    400: _problem("The request is malformed: a field, a parameter or the body"),
    401: _problem("No valid bearer token"),
    403: _problem("The token's role or team may not do this"),
    404: _problem("No such contract, version, consumer, change request or webhook"),
    409: _problem("Exists with other content, or an illegal state transition"),
    503: _problem("The registry's database cannot be reached; nothing was changed"),
}
UPLOAD_PROBLEMS = {**PROBLEMS, 413: _problem("The document is too large"),
                   415: _problem("The document's media type is not YAML or JSON"),
                   422: _problem("The document is not a valid contract document, or has lint errors")}
VOTE_PROBLEMS = {**PROBLEMS, 412: _problem("If-Match names an older row version")}


class UnsupportedMediaType(RegistryError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class PayloadTooLarge(RegistryError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class VersionAdded(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to adding (proposing) a version: its metadata, whether it was new, its change request."""

    version: Version
    created: bool
    change_request: ChangeRequest | None = None


class CanIPublish(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to can-i-publish (after Pact Broker's can-i-deploy)."""

    ok: bool
    required: list[str]
    missing: list[str]


class ContractDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A contract with its versions."""

    contract: Contract
    versions: list[Version]


async def read_document(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The uploaded document, parsed from YAML or JSON after media type and size checks."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in DOCUMENT_MEDIA_TYPES:
        raise UnsupportedMediaType(f"send the document as one of {sorted(DOCUMENT_MEDIA_TYPES)}")
    declared = request.headers.get("content-length", "0")
    if declared.isdigit() and int(declared) > MAX_DOCUMENT_BYTES:
        raise PayloadTooLarge(f"documents are limited to {MAX_DOCUMENT_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_DOCUMENT_BYTES:
            raise PayloadTooLarge(f"documents are limited to {MAX_DOCUMENT_BYTES} bytes")
    if not body.strip():
        raise InvalidRequest("the request body is empty: send the document")
    return documents.parse(bytes(body), source="request body")


@dataclass
class DocumentUpload(Operation):
    """OpenAPI operation for the upload: the body is a document, YAML or JSON."""

    def __post_init__(self) -> None:
        schema = Schema(type=OpenAPIType.OBJECT, description="an OpenAPI 3.0 / 3.1 document or a JSON Schema")
        self.request_body = RequestBody(
            required=True,
            content={media: OpenAPIMediaType(schema=schema) for media in sorted(DOCUMENT_MEDIA_TYPES)},
        )


WebhookSecret = Callable[[str], str]
"""A webhook's signing secret from its id (derived from the gateway's key, never stored)."""


class ContractController(Controller):
    """Contracts and their versions."""

    path = "/contracts"
    tags = ["contracts"]
    guards = [READERS]

    @post("/", summary="Register a contract", guards=[INTEGRATORS], responses=PROBLEMS)
    async def create(self, registry: Registry, request: Request[Any, Any, Any], data: NewContract) -> Response[Contract]:
        contract, created = await registry.create_contract(data, actor=(await identity(request)).subject)
        return Response(contract, status_code=201 if created else 200)

    @get("/", summary="List contracts", responses=PROBLEMS)
    async def list(self, registry: Registry) -> list[Contract]:
        return await registry.store.list_contracts()

    @get("/{name:str}", summary="Get a contract with its versions", responses=PROBLEMS)
    async def detail(self, registry: Registry, name: ContractPath) -> ContractDetail:
        return ContractDetail(contract=await registry.contract(name), versions=await registry.versions(name))

    @post(
        "/{name:str}/versions",
        summary="Add a version (OpenAPI 3.0 / 3.1 or JSON Schema, as YAML or JSON)",
        guards=[INTEGRATORS],
        operation_class=DocumentUpload,
        description="Same content under the same version is a no-op (200); other content is 409.",
        responses=UPLOAD_PROBLEMS,
    )
    async def add_version(
        self,
        registry: Registry,
        request: Request[Any, Any, Any],
        name: ContractPath,
        version: Annotated[str | None, Parameter(query="version", max_length=64)] = None,
    ) -> Response[VersionAdded]:
        document = await read_document(request)
        caller = await identity(request)
        added, created, change = await registry.add_version(name, document, version=version, actor=caller.subject,
                                                            team=caller.team)
        headers = {"Location": f"/registry/changes/{change.id}"} if change and created else {}
        return Response(VersionAdded(version=added, created=created, change_request=change),
                        status_code=201 if created else 200, headers=headers)

    @get("/{name:str}/versions", summary="List a contract's versions", responses=PROBLEMS)
    async def versions(self, registry: Registry, name: ContractPath) -> builtins.list[Version]:
        return await registry.versions(name)

    @get("/{name:str}/versions/{version:str}", summary="Get a version", responses=PROBLEMS)
    async def version(self, registry: Registry, name: ContractPath, version: VersionPath) -> Version:
        return await registry.version(name, version)

    @get("/{name:str}/versions/{version:str}/document", summary="Get a version's canonical document",
         media_type="application/json", responses=PROBLEMS)
    async def document(self, registry: Registry, name: ContractPath, version: VersionPath) -> Response[bytes]:
        text = await registry.document(name, version)
        return Response(text.encode(), media_type="application/json")

    @get("/{name:str}/versions/{version:str}/changes", media_type="application/json",
         summary="Get what a version changes against the version it replaces",
         description="The report of the compatibility engine (`govgate diff --format json`), computed when the "
                     "version was added; `null` for a contract's first version.", responses=PROBLEMS)
    async def changes(self, registry: Registry, name: ContractPath, version: VersionPath) -> Response[bytes]:
        return Response(await registry.changes(name, version), media_type="application/json")

    @post("/{name:str}/versions/{version:str}/deprecate", summary="Deprecate a published version", status_code=200,
          guards=[ADMINS], responses=PROBLEMS)
    async def deprecate(self, registry: Registry, request: Request[Any, Any, Any], name: ContractPath,
                        version: VersionPath, data: Deprecation) -> Version:
        return await registry.deprecate(name, version, data, actor=(await identity(request)).subject)

    @post("/{name:str}/versions/{version:str}/retire", summary="Retire a deprecated version", status_code=200,
          guards=[ADMINS], responses=PROBLEMS)
    async def retire(self, registry: Registry, request: Request[Any, Any, Any], name: ContractPath,
                     version: VersionPath, data: Retirement) -> Version:
        caller = await identity(request)
        return await registry.retire(name, version, data, actor=caller.subject, admin="admin" in caller.roles)

    @post("/{name:str}/versions/{version:str}/verifications", summary="Record a provider verification (CI)",
          guards=[INTEGRATORS], responses=PROBLEMS)
    async def verify(self, registry: Registry, request: Request[Any, Any, Any], name: ContractPath,
                     version: VersionPath, data: NewVerification) -> Verification:
        return await registry.record_verification(name, version, data, actor=(await identity(request)).subject)

    @get("/{name:str}/versions/{version:str}/verifications", summary="A version's verifications, newest first",
         responses=PROBLEMS)
    async def verifications(self, registry: Registry, name: ContractPath, version: VersionPath) -> builtins.list[Verification]:
        await registry.version(name, version)
        return await registry.store.list_verifications(name, version)

    @get("/{name:str}/versions/{version:str}/can-i-publish",
         summary="Whether the publish policy's verifications are all passing", responses=PROBLEMS)
    async def can_i_publish(self, registry: Registry, name: ContractPath, version: VersionPath) -> CanIPublish:
        await registry.version(name, version)
        missing = await registry.can_i_publish(name, version)
        return CanIPublish(ok=not missing, required=list(registry.publish_requires_verification), missing=missing)

    @get("/{name:str}/usage", summary="Who called which operation of this contract (from gateway traffic)", responses=PROBLEMS)
    async def usage(self, registry: Registry, name: ContractPath) -> builtins.list[Usage]:
        await registry.contract(name)
        return await registry.store.list_usage(name)

    @post("/{name:str}/versions/{version:str}/publish", summary="Publish a version", status_code=200,
          guards=[ADMINS], responses=PROBLEMS)
    async def publish(self, registry: Registry, request: Request[Any, Any, Any], name: ContractPath,
                      version: VersionPath) -> Version:
        return await registry.publish(name, version, actor=(await identity(request)).subject)


@get("/published", summary="List published versions", tags=["contracts"], guards=[READERS], responses=PROBLEMS)
async def list_published(registry: Registry) -> list[Version]:
    """Every version the gateway serves."""
    return [version for _, version, _ in await registry.store.list_published()]


class ConsumerCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new consumer and its client secret, shown this once."""

    consumer: Consumer
    client_secret: str


class ApiKeyIssued(msgspec.Struct, frozen=True, kw_only=True):
    """A new API key, shown this once."""

    consumer: str
    api_key: str


class ConsumerController(Controller):
    """Channels that call governed APIs: identities, API keys, subscriptions (admins only)."""

    path = "/consumers"
    tags = ["consumers"]
    guards = [ADMINS]

    @post("/", summary="Register a consumer; the client secret is in the answer, once", responses=PROBLEMS)
    async def create(self, registry: Registry, request: Request[Any, Any, Any], data: NewConsumer) -> ConsumerCreated:
        consumer, secret = await registry.create_consumer(data, actor=(await identity(request)).subject)
        return ConsumerCreated(consumer=consumer, client_secret=secret)

    @get("/", summary="List consumers", responses=PROBLEMS)
    async def list(self, registry: Registry) -> list[Consumer]:
        return await registry.store.list_consumers()

    @get("/{consumer_id:str}", summary="Get a consumer", responses=PROBLEMS)
    async def detail(self, registry: Registry, consumer_id: str) -> Consumer:
        return await registry.consumer(consumer_id)

    @post("/{consumer_id:str}/api-keys", summary="Issue an API key; it is in the answer, once", responses=PROBLEMS)
    async def api_key(self, registry: Registry, request: Request[Any, Any, Any], consumer_id: str) -> ApiKeyIssued:
        key = await registry.issue_api_key(consumer_id, actor=(await identity(request)).subject)
        return ApiKeyIssued(consumer=consumer_id, api_key=key)

    @post("/{consumer_id:str}/subscriptions", summary="Subscribe a consumer to a contract major", status_code=200, responses=PROBLEMS)
    async def subscribe(self, registry: Registry, request: Request[Any, Any, Any], consumer_id: str,
                        data: Subscription) -> Consumer:
        return await registry.subscribe(consumer_id, data, actor=(await identity(request)).subject)

    @delete("/{consumer_id:str}/subscriptions/{contract:str}/{major:int}", summary="End a subscription",
            status_code=200, responses=PROBLEMS)
    async def unsubscribe(self, registry: Registry, request: Request[Any, Any, Any], consumer_id: str, contract: str,
                          major: Annotated[int, Parameter(ge=0, le=999_999)]) -> Consumer:
        return await registry.subscribe(consumer_id, Subscription(contract=contract, major=major), subscribed=False,
                                        actor=(await identity(request)).subject)


class ChangeController(Controller):
    """Change requests: what a proposed version changes, and the board's votes on it."""

    path = "/changes"
    tags = ["changes"]
    guards = [READERS]

    @get("/", summary="List change requests", responses=PROBLEMS)
    async def list(self, registry: Registry,
                   contract: Annotated[str | None, Parameter(query="contract", max_length=100)] = None,
                   status: Annotated[str | None, Parameter(query="state", max_length=20)] = None
                   ) -> list[ChangeRequest]:
        return await registry.store.list_changes(contract=contract, state=status)

    @get("/{change_id:str}", summary="Get a change request (its ETag is its row version)", responses=PROBLEMS)
    async def detail(self, registry: Registry, change_id: str) -> Response[ChangeRequest]:
        change = await registry.change(change_id)
        return Response(change, headers={"ETag": f'"{change.row_version}"'})

    @post("/{change_id:str}/approve", summary="Approve (board)", status_code=200, guards=[BOARD], responses=VOTE_PROBLEMS)
    async def approve(self, registry: Registry, request: Request[Any, Any, Any], change_id: str,
                      data: VoteRequest) -> Response[ChangeRequest]:
        return await _vote(registry, request, change_id, "approve", data)

    @post("/{change_id:str}/reject", summary="Reject (board); one rejection closes the request", status_code=200,
          guards=[BOARD], responses=VOTE_PROBLEMS)
    async def reject(self, registry: Registry, request: Request[Any, Any, Any], change_id: str,
                     data: VoteRequest) -> Response[ChangeRequest]:
        return await _vote(registry, request, change_id, "reject", data)

    @post("/{change_id:str}/withdraw", summary="Withdraw (the proposer or an admin)", status_code=200,
          guards=[INTEGRATORS], responses=PROBLEMS)
    async def withdraw(self, registry: Registry, request: Request[Any, Any, Any], change_id: str,
                       data: VoteRequest) -> ChangeRequest:
        caller = await identity(request)
        return await registry.withdraw(change_id, actor=caller.subject, admin="admin" in caller.roles,
                                       reason=data.comment)


async def _vote(registry: Registry, request: Request[Any, Any, Any], change_id: str, decision: str,
                data: VoteRequest) -> Response[ChangeRequest]:
    caller = await identity(request)
    if_match = request.headers.get("if-match", "").strip().strip('"').removeprefix("W/").strip('"')
    expected = int(if_match) if if_match.isdigit() else None
    if if_match and expected is None:
        raise InvalidRequest("If-Match must be the ETag of the change request, e.g. \"3\"")
    change = await registry.vote(change_id, decision, data.comment, voter=caller.subject, team=caller.team,
                                 expected_row_version=expected)
    return Response(change, headers={"ETag": f'"{change.row_version}"'})


@get("/audit", summary="The audit log, oldest first", tags=["audit"], guards=[AUDITORS], responses=PROBLEMS)
async def audit_log(registry: Registry,
                    target: Annotated[str | None, Parameter(query="target", max_length=200)] = None,
                    actor: Annotated[str | None, Parameter(query="actor", max_length=200)] = None,
                    action: Annotated[str | None, Parameter(query="action", max_length=100)] = None,
                    after: Annotated[int, Parameter(query="after", ge=0, le=2**62)] = 0,
                    limit: Annotated[int, Parameter(query="limit", ge=1, le=5000)] = 1000) -> list[AuditRecord]:
    """Every recorded state change, filtered."""
    return await registry.audit(target=target, actor=actor, action=action, after_seq=after, limit=limit)


@get("/audit/verify", summary="Check the audit log's hash chain", tags=["audit"], guards=[AUDITORS], responses=PROBLEMS)
async def audit_verify(registry: Registry) -> ChainVerification:
    """Whether any record was edited or deleted."""
    return await registry.verify_audit()


class WebhookCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new webhook and its signing secret, shown this once."""

    webhook: Webhook
    secret: str


class WebhookController(Controller):
    """CloudEvents notifications of workflow events, HMAC-signed (admins only)."""

    path = "/webhooks"
    tags = ["webhooks"]
    guards = [ADMINS]

    @post("/", summary="Subscribe a URL to events; the signing secret is in the answer, once", responses=PROBLEMS)
    async def create(self, registry: Registry, request: Request[Any, Any, Any], data: NewWebhook,
                     webhook_secret: WebhookSecret) -> WebhookCreated:
        webhook = await registry.create_webhook(data, actor=(await identity(request)).subject)
        return WebhookCreated(webhook=webhook, secret=webhook_secret(webhook.id))

    @get("/", summary="List webhooks", responses=PROBLEMS)
    async def list(self, registry: Registry) -> list[Webhook]:
        return await registry.store.list_webhooks()

    @get("/{webhook_id:str}/deliveries", summary="The delivery log of a webhook, newest first", responses=PROBLEMS)
    async def deliveries(self, registry: Registry, webhook_id: str) -> builtins.list[Delivery]:
        return await registry.deliveries(webhook_id)

    @delete("/{webhook_id:str}", summary="Delete a webhook", status_code=204, responses=PROBLEMS)
    async def remove(self, registry: Registry, request: Request[Any, Any, Any], webhook_id: str) -> None:
        await registry.delete_webhook(webhook_id, actor=(await identity(request)).subject)


class PlanController(Controller):
    """Rates, quotas and priority classes (admins only)."""

    path = "/plans"
    tags = ["consumers"]
    guards = [ADMINS]

    @post("/", summary="Create or replace a plan", status_code=200, responses=PROBLEMS)
    async def put(self, registry: Registry, request: Request[Any, Any, Any], data: Plan) -> Plan:
        return await registry.put_plan(data, actor=(await identity(request)).subject)

    @get("/", summary="List plans", responses=PROBLEMS)
    async def list(self, registry: Registry) -> list[Plan]:
        return await registry.store.list_plans()


def registry_router(registry: Registry, verifier: JwtVerifier, webhook_secret: WebhookSecret) -> Router:
    """The /registry API over `registry`; callers' tokens are checked by `verifier` (audience: the registry)."""
    return Router(
        path="/registry",
        route_handlers=[ContractController, ChangeController, ConsumerController, PlanController, WebhookController,
                        list_published, audit_log, audit_verify],
        dependencies={"registry": Provide(lambda: registry, use_cache=True, sync_to_thread=False),
                      "webhook_secret": Provide(lambda: webhook_secret, use_cache=True, sync_to_thread=False)},
        opt={VERIFIER: verifier},
    )
