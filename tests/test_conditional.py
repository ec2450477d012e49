"""Conditional requests and the HTTP dates pages carry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

from seo_engine import etags
from seo_engine.serve import conditional


def test_http_dates_read_exactly_like_the_standard_librarys() -> None:
    moments = [
        datetime(2026, 12, 1, 9, 5, 7, 123456, tzinfo=UTC),
        datetime(2024, 2, 29, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
        datetime(1999, 1, 3, 0, 0, tzinfo=timezone(timedelta(hours=9, minutes=30))),
    ]
    moments += [moments[0] + timedelta(days=n, hours=n) for n in range(1, 400, 7)]
    for moment in moments:
        assert conditional.http_date(moment) == format_datetime(moment.astimezone(UTC), usegmt=True)


def test_a_stored_version_is_current_for_its_own_validators() -> None:
    modified = datetime(2026, 12, 1, 9, 5, 7, 123456, tzinfo=UTC)
    date = conditional.http_date(modified)
    assert conditional.is_current('"a", "b"', None, '"b"', modified)
    assert conditional.is_current("*", None, '"b"', modified)
    assert not conditional.is_current('"a"', date, '"b"', modified), "If-None-Match wins"
    assert conditional.is_current(None, date, '"b"', modified)
    assert not conditional.is_current(None, "not a date", '"b"', modified)
    assert not conditional.is_current(
        None, conditional.http_date(modified - timedelta(seconds=1)), '"b"', modified
    )


def test_if_none_match_compares_weakly() -> None:
    assert conditional.is_current('W/"b"', None, '"b"', None)
    assert conditional.is_current(' "a" , W/"b"', None, '"b"', None)
    assert not conditional.is_current('W/"bb"', None, '"b"', None)
    assert etags.listed('W/"a", "b",') == ['"a"', '"b"', ""]
