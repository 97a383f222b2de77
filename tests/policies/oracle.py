"""What openapi-core (the oracle of the differential tests) said, as one readable line."""

from __future__ import annotations


def describe(error: BaseException) -> str:
    """The error, its schema errors (on it or on its cause) and its cause."""
    details = [_text(error)]
    for holder in (error, error.__cause__):
        for inner in getattr(holder, "schema_errors", None) or []:
            details.append(getattr(inner, "message", str(inner)))
    if error.__cause__ is not None:
        details.append(_text(error.__cause__))
    return " / ".join(details)


def _text(error: BaseException) -> str:
    try:
        return str(error)
    except UnicodeDecodeError:  # openapi-core formats a non-UTF-8 body into its message
        return type(error).__name__
