"""Conditional requests: whether a client's cached copy is still current."""

from __future__ import annotations

from datetime import UTC, datetime
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
        return if_none_match.strip() == "*" or etag in listed_tags(if_none_match)
    if if_modified_since and modified is not None:
        try:
            return modified.replace(microsecond=0) <= parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
    return False


def listed_tags(if_none_match: str) -> list[str]:
    """The entity tags If-None-Match lists, weak ones as their strong form: it compares
    them weakly (RFC 9110 13.1.2), so W/"x" matches "x" (a proxy that compresses may
    have weakened the tag the client holds)."""
    return [part.strip().removeprefix("W/") for part in if_none_match.split(",")]


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
