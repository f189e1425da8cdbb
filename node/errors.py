"""Every error the node raises on purpose, rooted at one `NodeError`.

Each class maps to one RFC 9457 problem type, so the API, the console and
the CLI can all report it the same way: the API as problem+json, the CLI as
one line and a non-zero exit.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://nycmg.org/problems/"


class NodeError(Exception):
    """Base of all expected failures; carries its HTTP status and problem type."""

    status = 500
    type_slug = "node-error"
    title = "Node error"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.type_slug

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class ConfigError(NodeError):
    status = 500
    type_slug = "config"
    title = "Invalid configuration"


class BadRequest(NodeError):
    status = 400
    type_slug = "bad-request"
    title = "Bad request"


class ValidationFailed(NodeError):
    """Input failed validation; `errors` lists every problem, not just the first."""

    status = 422
    type_slug = "validation"
    title = "Validation failed"

    def __init__(self, errors: list[dict[str, str]], detail: str = "") -> None:
        if not detail:
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        super().__init__(detail, errors=errors)
        self.errors = errors


class Unauthorized(NodeError):
    status = 401
    type_slug = "unauthorized"
    title = "Authentication required"


class Forbidden(NodeError):
    status = 403
    type_slug = "forbidden"
    title = "Forbidden"


class NotFound(NodeError):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class Conflict(NodeError):
    status = 409
    type_slug = "conflict"
    title = "Conflict"


class PayloadTooLarge(NodeError):
    status = 413
    type_slug = "too-large"
    title = "Payload too large"


class UnsupportedMediaType(NodeError):
    status = 415
    type_slug = "unsupported-media-type"
    title = "Unsupported media type"


class RateLimited(NodeError):
    status = 429
    type_slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str = "", retry_after: int = 60) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after
