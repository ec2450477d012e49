"""RFC 9457 problem+json errors and the handlers that turn exceptions into them."""

from __future__ import annotations

import logging
from http import HTTPStatus

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from seo_engine.db.database import CONNECTION_ERRORS, DatabaseUnavailable

PROBLEM_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 1
log = logging.getLogger("seo_engine.problems")


def problem(
    status: int, detail: str, *, headers: dict[str, str] | None = None, title: str | None = None
) -> Response:
    """A problem+json response that no cache keeps."""
    body = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=PROBLEM_TYPE,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def unavailable(detail: str) -> Response:
    """503 with Retry-After: the client may simply try again shortly."""
    return problem(503, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def internal_error() -> Response:
    """500 for a bug: the details go to the log, never to the client."""
    return problem(500, "internal error")


def _describe_validation(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _on_unavailable(request: Request, error: Exception) -> Response:
    reason = error.reason if isinstance(error, DatabaseUnavailable) else type(error).__name__
    log.warning("database unavailable: %s", reason)
    return unavailable("the database is unavailable; try again shortly")


async def _on_validation(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    return problem(400, _describe_validation(error))


async def _on_http(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return problem(error.status_code, str(error.detail), headers=dict(error.headers or {}))


async def _on_bad_data(request: Request, error: Exception) -> Response:
    # e.g. a NUL byte or an out-of-range number that got past validation: the client's fault.
    return problem(400, "the request contains characters or values the database cannot accept")


async def _on_unexpected(request: Request, error: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return internal_error()


def install(app: FastAPI) -> None:
    """Register the handlers that keep every error in problem+json form."""
    app.add_exception_handler(DatabaseUnavailable, _on_unavailable)
    for error_class in CONNECTION_ERRORS:
        app.add_exception_handler(error_class, _on_unavailable)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(asyncpg.DataError, _on_bad_data)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
