"""RFC 9457 problem+json errors, and the one mapping of an exception to a problem."""

from __future__ import annotations

import logging
from http import HTTPStatus

import asyncpg
import orjson
from starlette.responses import Response

from seo_engine import paths
from seo_engine.db.database import UNAVAILABLE, DatabaseUnavailable
from seo_engine.serve.cursors import CursorError
from seo_engine.serve.directory import AmbiguousSite, UnknownSite
from seo_engine.serve.sync import SyncExpired

PROBLEM_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 1
UNAVAILABLE_DETAIL = "the database is unavailable; try again shortly"
BAD_DATA_DETAIL = "the request contains characters or values the database cannot accept"
log = logging.getLogger(__name__)


def content(status: int, detail: str, title: str | None = None) -> bytes:
    """A problem's body."""
    body = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    return orjson.dumps(body)


def header_fields(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A problem's headers: its type, and no cache keeps it."""
    return {"Content-Type": PROBLEM_TYPE, "Cache-Control": "no-store", **(extra or {})}


def problem(
    status: int, detail: str, *, headers: dict[str, str] | None = None, title: str | None = None
) -> Response:
    """A problem+json response that no cache keeps."""
    return Response(
        content(status, detail, title), status_code=status, headers=header_fields(headers)
    )


def unavailable(detail: str) -> Response:
    """503 with Retry-After: the client may simply try again shortly."""
    return problem(503, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def for_error(error: Exception, where: str) -> tuple[int, str, dict[str, str]]:
    """The status, detail and headers of the problem an exception means (and its log line).

    A database that cannot be reached or is too busy is a 503 with Retry-After whose
    detail names nothing internal; a bug is a 500 whose details go to the log only.
    """
    if isinstance(error, UNAVAILABLE):
        reason = error.reason if isinstance(error, DatabaseUnavailable) else type(error).__name__
        log.warning("database unavailable on %s: %s", where, reason)
        return 503, UNAVAILABLE_DETAIL, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if isinstance(error, UnknownSite):
        return 404, str(error), {}
    if isinstance(error, AmbiguousSite | CursorError):
        return 400, str(error), {}
    if isinstance(error, SyncExpired):
        return 410, str(error), {}
    if isinstance(error, asyncpg.DataError):
        # e.g. a NUL byte or an out-of-range number that got past validation
        return 400, BAD_DATA_DETAIL, {}
    log.error("unexpected error on %s", where, exc_info=error)
    return 500, "internal error", {}


def no_page_detail(service: str, location: str) -> str:
    """A missing page's detail, which repeats the request only when it is a plain slug pair."""
    if (
        paths.SLUG_RE.fullmatch(service)
        and paths.SLUG_RE.fullmatch(location)
        and len(service) <= paths.MAX_SLUG
        and len(location) <= paths.MAX_SLUG
    ):
        return f"no page {service}/{location}"
    return "no such page"
