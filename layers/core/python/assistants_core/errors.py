"""OpenAI-shaped API errors.

Every failure the API reports is one of these, rendered as
``{"error": {"message", "type", "param", "code"}}``. Deterministic failures are always 4xx:
the OpenAI SDK retries 5xx POSTs, which would repeat writes.
"""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    status_code = 400
    error_type = "invalid_request_error"
    headers: dict[str, str] | None = None  # sent with the error's response (a 429's retry-after)

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(APIError):
    status_code = 400


class AuthenticationError(APIError):
    status_code = 401

    def __init__(self, message: str = "Incorrect API key provided.", **kwargs: Any) -> None:
        super().__init__(message, code=kwargs.pop("code", "invalid_api_key"), **kwargs)


class NotFoundError(APIError):
    status_code = 404

    @classmethod
    def for_object(cls, kind: str, object_id: str, param: str | None = None) -> NotFoundError:
        return cls(f"No {kind} found with id '{object_id}'.", param=param)


class PayloadTooLargeError(APIError):
    """A request larger than one Lambda invocation can carry: 413, which the SDK does not retry."""

    status_code = 413


class ServerError(APIError):
    """Our own failure, never the client's input: the one 5xx (the SDK retries it)."""

    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str = "The server had an error while processing your request.") -> None:
        super().__init__(message)


class RateLimitError(APIError):
    """A key over one of its rate limits: 429, with the headers that say when to come back
    (the SDK waits ``retry-after-ms`` before it retries)."""

    status_code = 429

    def __init__(self, message: str, *, error_type: str, headers: dict[str, str]) -> None:
        super().__init__(message, code="rate_limit_exceeded")
        self.error_type = error_type
        self.headers = headers


class ConflictError(APIError):
    """A request that conflicts with the current state of an object (still a 400, as OpenAI does)."""

    status_code = 400


def too_large(what: str, param: str | None = None) -> InvalidRequestError:
    """An object too large to store (an item DynamoDB refuses): bad input, so a 400,
    never the 500 that would make the SDK retry the same write."""
    return InvalidRequestError(f"{what} is too large to store.", param=param, code="invalid_value")
