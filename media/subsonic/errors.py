"""Subsonic errors: each is a `status="failed"` response with a numeric code.

Codes from the Subsonic API 1.16.1 and OpenSubsonic (apiKeyAuthentication):
https://www.subsonic.org/pages/api.jsp and
https://opensubsonic.netlify.app/docs/api-reference/
"""

from __future__ import annotations

GENERIC = 0
MISSING_PARAMETER = 10
CLIENT_TOO_OLD = 20
SERVER_TOO_OLD = 30
WRONG_CREDENTIALS = 40
TOKEN_AUTH_UNSUPPORTED = 41
AUTH_MECHANISM_UNSUPPORTED = 42
CONFLICTING_AUTH = 43
INVALID_API_KEY = 44
NOT_AUTHORIZED = 50
NOT_FOUND = 70


class SubsonicError(Exception):
    """Raised by handlers; the dispatcher turns it into a failed response (HTTP 200)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def missing(name: str) -> SubsonicError:
    return SubsonicError(MISSING_PARAMETER, f"Required parameter '{name}' is missing")


def not_found(what: str = "Requested data") -> SubsonicError:
    return SubsonicError(NOT_FOUND, f"{what} was not found")


def bad_value(name: str, why: str) -> SubsonicError:
    # Subsonic has no "invalid parameter" code; servers answer 0 (generic) with a message.
    return SubsonicError(GENERIC, f"Parameter '{name}' {why}")


def forbidden(message: str = "User is not authorized for the given operation") -> SubsonicError:
    return SubsonicError(NOT_AUTHORIZED, message)
