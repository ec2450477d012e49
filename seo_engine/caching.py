"""Conditional requests: whether a client's cached copy is still current."""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

from starlette.requests import Request


def not_modified(request: Request, etag: str, modified: datetime | None) -> bool:
    """If-None-Match (which wins) or If-Modified-Since says the client's copy is current."""
    headers = request.headers
    return is_current(
        headers.get("if-none-match"), headers.get("if-modified-since"), etag, modified
    )


def is_current(
    if_none_match: str | None, if_modified_since: str | None, etag: str, modified: datetime | None
) -> bool:
    """The conditional-request check on raw header values (for the ASGI hot paths too)."""
    if if_none_match is not None:
        return if_none_match.strip() == "*" or etag in [
            part.strip() for part in if_none_match.split(",")
        ]
    if if_modified_since and modified is not None:
        try:
            return modified.replace(microsecond=0) <= parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
    return False
