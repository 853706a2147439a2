"""JSON responses and our error body, for every steadypay service."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from steadypay import errors as e
from steadypay.http.context import request_id
from steadypay.http.errors import headers_for, render_error, status_for

JSON = "application/json"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status, headers=headers, media_type=JSON
    )


def error_response(error: e.SteadypayError) -> Response:
    return Response(
        render_error(error, request_id()),
        status_for(error),
        headers=headers_for(error),
        media_type=JSON,
    )
