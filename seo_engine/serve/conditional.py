"""Conditional requests: whether a client's cached copy is still current."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from starlette.requests import Request

from seo_engine import etags


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
        return etags.none_match(if_none_match, etag)
    if if_modified_since and modified is not None:
        try:
            return modified.replace(microsecond=0) <= parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
    return False


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(moment: datetime) -> str:
    """`moment` as an HTTP date (Last-Modified), as `email.utils.format_datetime(…,
    usegmt=True)` writes it, in a third of the time (it is on every page response)."""
    t = moment.astimezone(UTC)
    return (
        f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT"
    )
