"""FastAPI's exception handlers: every error a route raises becomes problem+json through
`problems.for_error`, the mapping the hot path uses too."""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from seo_engine.db.database import CONNECTION_ERRORS, DatabaseUnavailable
from seo_engine.serve import problems
from seo_engine.serve.cursors import CursorError
from seo_engine.serve.directory import AmbiguousSite, UnknownSite
from seo_engine.serve.sync import SyncExpired

MAPPED: tuple[type[Exception], ...] = (
    DatabaseUnavailable,
    *CONNECTION_ERRORS,
    UnknownSite,
    AmbiguousSite,
    CursorError,
    SyncExpired,
    asyncpg.DataError,
    Exception,
)


def _describe_validation(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _on_error(request: Request, error: Exception) -> Response:
    status, detail, headers = problems.for_error(error, f"{request.method} {request.url.path}")
    return problems.problem(status, detail, headers=headers)


async def _on_validation(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    return problems.problem(400, _describe_validation(error))


async def _on_http(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return problems.problem(error.status_code, str(error.detail), headers=dict(error.headers or {}))


def install(app: FastAPI) -> None:
    """Register the handlers that keep every error in problem+json form."""
    for error_class in MAPPED:
        app.add_exception_handler(error_class, _on_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)
