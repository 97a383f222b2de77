"""Registry errors: problems (registry.problems) with the status and slug each becomes at the API edge.

    RegistryError      400
    ├── InvalidDocument   422  the document is not a valid contract document
    ├── InvalidRequest    400  a name, version or field is malformed
    ├── Forbidden         403  the caller's role or team may not do this
    ├── NotFound          404  no such contract or version
    ├── Conflict          409  exists with other content, or an illegal transition
    ├── PreconditionFailed 412 If-Match names an older row version
    └── StoreUnavailable  503  the database cannot be reached; nothing was changed
"""

from __future__ import annotations

from registry.problems import Problem


class RegistryError(Problem):
    """Base of every error the registry raises on purpose."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, errors: list[str] | None = None) -> None:
        super().__init__(detail, errors=errors)


class InvalidDocument(RegistryError):
    status = 422
    slug = "invalid-document"
    title = "Invalid contract document"


class InvalidRequest(RegistryError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class NotFound(RegistryError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(RegistryError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class Forbidden(RegistryError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class PreconditionFailed(RegistryError):
    status = 412
    slug = "precondition-failed"
    title = "Precondition failed"


class StoreUnavailable(RegistryError):
    status = 503
    slug = "store-unavailable"
    title = "Registry store unavailable"

    def __init__(self, detail: str = "the registry's database cannot be reached; nothing was changed, "
                                     "try again shortly") -> None:
        super().__init__(detail)
        self.headers["Retry-After"] = "5"
