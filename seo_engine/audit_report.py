"""The audit as one self-contained HTML file: inline CSS and SVG charts, nothing fetched."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import jinja2

from seo_engine import resources
from seo_engine.generate.audit import BUCKETS, Audit
from seo_engine.generate.quality import BLOCKING, DESCRIPTION_LIMIT, TITLE_LIMIT

CHART_WIDTH, CHART_HEIGHT, CHART_TOP, CHART_BOTTOM = 360, 180, 16, 18
RATE_BARS, LABEL = 8, 7  # bars in a pass-rate chart, characters of their labels
PASS, OUT, NEUTRAL = "#2f8f57", "#c4453c", "#5470c6"


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    colour: str
    label: str
    text: str


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def _chart(title: str, values: list[tuple[str, float, str, str]]) -> Chart:
    """Bars of (label, value, text over the bar, colour), scaled to the largest value."""
    most = max((value for _, value, _, _ in values), default=0) or 1
    room = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    step = CHART_WIDTH / max(len(values), 1)
    bars = []
    for index, (label, value, text, colour) in enumerate(values):
        height = room * value / most
        y = CHART_TOP + room - height
        bars.append(Bar(index * step + 2, y, step - 4, height, colour, label, text))
    return Chart(title, bars)


def charts(report: Audit) -> list[Chart]:
    scores = [
        (f"{bucket * 10}", float(count), f"{count:,}", NEUTRAL)
        for bucket, count in enumerate(report.histogram)
    ]
    similarity = [
        (f".{bucket}", float(count), f"{count:,}", OUT if bucket >= 8 else NEUTRAL)
        for bucket, count in enumerate(report.similarity_histogram)
    ]
    services = [
        (
            family.service[:LABEL],
            family.passing / family.pages,
            _share(family.passing, family.pages),
            PASS,
        )
        for family in report.families[:RATE_BARS]
        if family.pages
    ]
    regions = [
        (
            region.region_name[:LABEL] or region.country_code,
            region.passing / region.pages,
            _share(region.passing, region.pages),
            PASS,
        )
        for region in report.regions[:RATE_BARS]
        if region.pages
    ]
    return [
        _chart("Score distribution (pages per 10 points)", scores),
        _chart("Similarity to the nearest sibling (pages per tenth)", similarity),
        _chart("Pass rate by service, worst first", services),
        _chart("Pass rate by region, worst first", regions),
    ]


def render(report: Audit, limit: int) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(resources.templates_dir() / "reports"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    reasons = sorted(
        ((code, count) for code, count in report.reasons.items() if count), key=lambda r: -r[1]
    )
    return environment.get_template("audit.html").render(
        report=report,
        charts=charts(report),
        reasons=reasons,
        blocking=BLOCKING,
        share=_share,
        limit=limit,
        buckets=BUCKETS,
        title_limit=TITLE_LIMIT,
        description_limit=DESCRIPTION_LIMIT,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        duplicates=[
            ("Duplicate titles", report.duplicate_titles, report.duplicate_title_groups),
            (
                "Duplicate descriptions",
                report.duplicate_descriptions,
                report.duplicate_description_groups,
            ),
        ],
    )
