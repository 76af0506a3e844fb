"""Kubernetes ``Status`` errors: what every failed request of the twin answers."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "status_body"]


class ApiError(Exception):
    """A request the API answers with a ``kind: Status`` failure.

    Attributes:
        code: HTTP status code (4xx for bad requests).
        reason: Kubernetes ``StatusReason`` (NotFound, Conflict, BadRequest, Invalid, ...).
        message: human-readable message, naming the field or object at fault.
        details: optional ``details`` (name, group, kind, causes).
    """

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def unauthorized(cls) -> ApiError:
        return cls(401, "Unauthorized", "Unauthorized")

    @classmethod
    def not_found(cls, resource: str, name: str, group: str = "") -> ApiError:
        qualified = f"{resource}.{group}" if group else resource
        return cls(
            404,
            "NotFound",
            f'{qualified} "{name}" not found',
            {"name": name, "group": group, "kind": resource},
        )

    @classmethod
    def conflict(cls, resource: str, name: str, group: str = "", why: str = "") -> ApiError:
        qualified = f"{resource}.{group}" if group else resource
        why = why or (
            "the object has been modified; please apply your changes to the latest version "
            "and try again"
        )
        return cls(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
            {"name": name, "group": group, "kind": resource},
        )

    @classmethod
    def invalid(cls, kind: str, name: str, field: str, message: str, group: str = "") -> ApiError:
        """422 Invalid naming ``field`` (``spec.replicas: must be an integer >= 0``)."""
        return cls(
            422,
            "Invalid",
            f'{kind} "{name}" is invalid: {field}: {message}',
            {
                "name": name,
                "group": group,
                "kind": kind,
                "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
            },
        )

    @classmethod
    def method_not_allowed(cls, message: str) -> ApiError:
        return cls(405, "MethodNotAllowed", message)

    @classmethod
    def unsupported_media_type(cls, content_type: str, supported: list[str]) -> ApiError:
        return cls(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format {content_type!r}; accepted "
            "media types include: " + ", ".join(supported),
        )

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A ``meta/v1 Status`` object."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body
