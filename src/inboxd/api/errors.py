"""Every error answers ``{"error": {"code", "message"}}`` with a fitting HTTP status."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from inboxd.errors import (
    Forbidden,
    InboxdError,
    InvalidField,
    InvalidParams,
    InvalidRequest,
    InvalidState,
    NotFound,
    UnknownJobKind,
)

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """An error with its HTTP status, code and optional headers."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def unauthorized(message: str = "authentication required") -> ApiError:
    """401 with the Bearer challenge."""
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def rate_limited(retry_after: float) -> ApiError:
    """429 with Retry-After (whole seconds, at least 1)."""
    seconds = max(1, int(retry_after + 0.999))
    return ApiError(
        429,
        "rate_limited",
        f"too many requests; retry in {seconds}s",
        {"Retry-After": str(seconds)},
    )


def error_body(code: str, message: str) -> dict[str, Any]:
    """The one error shape."""
    return {"error": {"code": code, "message": message}}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path. Starlette answers a 405 with the
    methods of the first route whose path matched, and FastAPI makes one route per method."""
    scope = dict(request.scope)
    found: set[str] = set()
    for route in request.app.router.routes:
        methods = getattr(route, "methods", None)
        if not methods:
            continue
        scope["method"] = next(iter(methods))
        match, _child = route.matches(scope)
        if match != Match.NONE:
            found |= set(methods)
    return sorted(found)


def _status_of(exc: InboxdError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, InvalidState):
        return 409
    if isinstance(exc, InvalidParams | InvalidField | UnknownJobKind):
        return 422
    if isinstance(exc, InvalidRequest):
        return 400
    return 500


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=exc.headers)


async def _domain_error(_request: Request, exc: InboxdError) -> JSONResponse:
    status = _status_of(exc)
    if status == 500:
        log.error("request failed: %s", exc.message)
        return JSONResponse(error_body("internal", "internal server error"), status)
    # The documented code of the status (docs/api.md), not the domain's own finer code
    # (invalid_state, invalid_params, ...): clients switch on a small, stable set.
    return JSONResponse(error_body(_HTTP_CODES[status], exc.message), status)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "error")
    headers = exc.headers
    if exc.status_code == 405:
        headers = dict(headers or {}) | {"Allow": ", ".join(allowed_methods(request))}
    return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=headers)


async def _unstorable(_request: Request, exc: DataError) -> JSONResponse:
    # A value of the request the database cannot take (PostgreSQL: a NUL character in a
    # path, query or body): the request is wrong, the server is fine.
    log.info("request refused by the database: %s", exc.orig or exc)
    return JSONResponse(
        error_body(
            "invalid_request", "the request holds a value that cannot be stored or searched"
        ),
        400,
    )


async def _database_down(_request: Request, exc: OperationalError) -> JSONResponse:
    return _unavailable(exc)


async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
    if exc.connection_invalidated:
        return _unavailable(exc)
    return await _unexpected(request, exc)


async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for item in exc.errors()[:5]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        problems.append(f"{where}: {item.get('msg', 'invalid')}" if where else item["msg"])
    return JSONResponse(error_body("invalid_request", "; ".join(problems)), 422)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return JSONResponse(error_body("internal", "internal server error"), 500)


#: Exception type -> the handler that answers it (the most specific type wins).
_HANDLERS: dict[type[Exception], Callable[[Request, Any], Awaitable[JSONResponse]]] = {
    ApiError: _api_error,
    InboxdError: _domain_error,
    HTTPException: _http_error,
    DataError: _unstorable,
    OperationalError: _database_down,
    DBAPIError: _database_error,
    RequestValidationError: _invalid,
    Exception: _unexpected,
}


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into the error shape."""
    for exc_type, handler in _HANDLERS.items():
        app.add_exception_handler(exc_type, handler)


#: Seconds a client is asked to wait while the database cannot be reached.
DATABASE_RETRY_AFTER = 5


def _unavailable(exc: DBAPIError) -> JSONResponse:
    """The database is down or restarting: the request may well work again soon."""
    log.warning("database unavailable: %s", str(exc.orig or exc).strip().splitlines()[0])
    return JSONResponse(
        error_body("unavailable", "the database is unavailable; retry shortly"),
        503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
    )
