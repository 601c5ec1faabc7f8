"""The FastAPI application factory shared by every HTTP function.

It turns every failure into OpenAI's error shape: our own :class:`APIError`, request
validation (400, never 422), unknown routes (404) and, for real bugs only, a 500.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..blobs import Download
from ..errors import APIError, InvalidRequestError, ServerError, too_large
from ..repository import ItemTooLarge
from .idempotency import IdempotencyMiddleware
from .rate_limits import RequestRateLimit

logger = Logger()


def create_app(*routers: APIRouter, title: str = "Serverless Assistants") -> FastAPI:
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    for router in routers:
        app.include_router(router)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ItemTooLarge, _item_too_large)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(IdempotencyMiddleware)
    # Added last, so outermost: every request counts, a replayed one too.
    app.add_middleware(RequestRateLimit)  # every route: the key's requests per second
    return app


def download_response(download: Download, media_type: str) -> Response:
    """Content inline, or a 307 to a short-lived S3 URL when it is larger than a buffered Lambda
    response may be (the SDKs follow it)."""
    if download.redirect_url is not None:
        return RedirectResponse(download.redirect_url, status_code=307)
    return Response(download.data, media_type=media_type)


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


async def _api_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, APIError)
    return error_response(error)


async def _item_too_large(_: Request, error: Exception) -> JSONResponse:
    """A write the services did not map to a param: still the client's input, so a 400."""
    return error_response(too_large("The request"))


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return error_response(validation_error(error.errors()))


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    elif error.status_code == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}"
    else:
        message = str(error.detail)
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}},
        status_code=error.status_code,
    )


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    logger.exception("unhandled error", extra={"path": request.url.path})
    return error_response(ServerError())


def _param_path(location: Any) -> str | None:
    """A validation error's location as OpenAI names a param (``tools[0].function.name``).

    FastAPI starts the location with where the value came from (``body``, ``query``...): only
    that first part is dropped, since a body may have a field named ``query``. pydantic puts the
    name of the union branch it tried into the location, right after a list index or a
    union-valued field, and names the branches of a plain union by type (``str``,
    ``CompoundFilter``); OpenAI's ``param`` has no such part, so it is dropped.
    """
    parts = list(location)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    text = ""
    previous: Any = None
    for part in parts:
        is_branch = isinstance(part, str) and (
            "[" in part
            or "(" in part
            or part in _TYPE_BRANCHES
            or part[:1].isupper()  # a model's name: OpenAI's params are all lower case
            or (part in _UNION_BRANCHES and (isinstance(previous, int) or previous in _UNION_FIELDS))
        )
        if isinstance(part, int):
            text += f"[{part}]"
        elif not is_branch:
            text += f".{part}" if text else str(part)
        previous = part
    return text or None


_UNION_FIELDS = {"content", "response_format", "tool_choice", "tools", "chunking_strategy", "filters"}
# How pydantic names the branches of a union of plain types (an attribute's value, a query).
_TYPE_BRANCHES = {"str", "int", "float", "bool", "constrained-str", "constrained-int", "constrained-float"}
_UNION_BRANCHES = {
    "auto",
    "static",
    "comparison",
    "compound",
    "str",
    "function",
    "file_search",
    "code_interpreter",
    "text",
    "image_url",
    "image_file",
    "json_object",
    "json_schema",
    "NamedToolChoice",
}


def validation_error(errors: Any) -> InvalidRequestError:
    """The first pydantic/FastAPI validation error as OpenAI would word it."""
    # For a union (content as a string or a list of parts), the deepest error is the one that
    # names what is actually wrong, not "Input should be a valid string".
    ranked = sorted(errors, key=lambda e: len(e.get("loc", ())), reverse=True)
    first = dict(ranked[0]) if ranked else {"type": "value_error", "loc": (), "msg": "Invalid request"}
    kind = first.get("type", "")
    param = _param_path(first.get("loc", ()))
    if kind == "json_invalid":
        return InvalidRequestError(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
            "library correctly. The OpenAI API expects a JSON payload.)"
        )
    if kind == "missing":
        if param is None:
            return InvalidRequestError(
                "The request body is required and must be a JSON object.", code="missing_required_parameter"
            )
        return InvalidRequestError(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    if kind == "extra_forbidden":
        return InvalidRequestError(
            f"Unrecognized request argument supplied: {param}", param=param, code="unknown_parameter"
        )
    message = str(first.get("msg", "Invalid value")).removeprefix("Value error, ")
    shown = json.dumps(first.get("input"), default=str)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return InvalidRequestError(
        f"Invalid value for '{param}': {message} (got {shown}).", param=param, code="invalid_value"
    )
