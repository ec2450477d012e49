"""Conditional requests: whether a client's cached copy is still current."""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

from starlette.requests import Request


def not_modified(request: Request, etag: str, modified: datetime | None) -> bool:
    """If-None-Match (which wins) or If-Modified-Since says the client's copy is current."""
    match = request.headers.get("if-none-match")
    if match is not None:
        return match.strip() == "*" or etag in [part.strip() for part in match.split(",")]
    since = request.headers.get("if-modified-since")
    if since and modified is not None:
        try:
            return modified.replace(microsecond=0) <= parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
    return False
