"""Every error leaves the service as JSON {"error": code, "detail": sentence}, never a traceback."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.imaging import ImageError

log = logging.getLogger("app")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


# the HTTP status of each library error (app.imaging.ImageError) that is not a plain 400
IMAGE_STATUS = {"image_too_large": 413, "unsupported_image_type": 415, "unsupported_compression": 415}


class ApiError(HTTPException):
    """An error with its own code, e.g. ApiError(400, "not_an_image", "...")."""

    def __init__(self, status_code: int, error: str, detail: str, headers: dict | None = None) -> None:
        super().__init__(status_code=status_code, detail=detail, headers=headers)
        self.error = error


def error_response(status: int, error: str, detail: str, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status, headers=headers)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    error = getattr(exc, "error", None) or CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, error, str(exc.detail), exc.headers)


def from_image_error(exc: ImageError) -> ApiError:
    """The service's answer to a file the library cannot read."""
    return ApiError(IMAGE_STATUS.get(exc.error, 400), exc.error, exc.detail)


async def _image_error(request: Request, exc: ImageError) -> JSONResponse:
    return await _http_error(request, from_image_error(exc))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
        problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return error_response(422, "invalid_request", "; ".join(problems) or "invalid request")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex[:16]
    log.exception("unhandled error on %s %s (request %s)", request.method, request.url.path, request_id)
    # Starlette sends this response outside the middleware that adds X-Request-ID: add it here
    return error_response(
        500,
        "internal_error",
        "the server failed on this request; it has been logged",
        headers={"X-Request-ID": request_id},
        request_id=request_id,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ImageError, _image_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
