"""Exception handlers shared by every steadypay service: one error body, one status map."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from steadypay.errors import (
    AuthenticationError,
    NotFound,
    PermissionDenied,
    SteadypayError,
    ValidationError,
)
from steadypay.http.context import request_id
from steadypay.http.responses import error_response, json_response


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SteadypayError)
    async def _ours(_: Request, exc: SteadypayError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        return error_response(validation_error_from(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        error: SteadypayError
        if exc.status_code == 404:
            error = NotFound("no such route")
        elif exc.status_code == 401:
            error = AuthenticationError()
        elif exc.status_code == 403:
            error = PermissionDenied()
        else:
            return json_response(
                {
                    "error": {
                        "code": "http_error",
                        "message": str(exc.detail),
                        "param": None,
                        "request_id": request_id(),
                    }
                },
                exc.status_code,
                headers=dict(exc.headers or {}),
            )
        return error_response(error)


def validation_error_from(exc: RequestValidationError) -> ValidationError:
    """The first problem of a pydantic validation failure, as our 400 error."""
    problems = exc.errors()
    if not problems:
        return ValidationError()
    first = problems[0]
    location = [
        str(part)
        for part in first.get("loc", ())
        if part not in ("body", "query", "path", "header")
    ]
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return ValidationError("the request body is not valid JSON")
    if first.get("type") == "string_type" and location and location[-1] == "amount":
        message = 'amount must be a string such as "12.34" (JSON numbers lose cents)'
    if first.get("type") == "missing" and not location:
        message = "a JSON object body is required"
    param = ".".join(location) or None
    return ValidationError(message, param=param)
