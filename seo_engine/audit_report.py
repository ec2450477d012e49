"""The audit as one self-contained HTML file: inline CSS and SVG charts, nothing fetched."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import jinja2

from seo_engine import resources
from seo_engine.generate.audit import BUCKETS, Audit
from seo_engine.generate.quality import BLOCKING, DESCRIPTION_LIMIT, TITLE_LIMIT

CHART_WIDTH, CHART_HEIGHT, CHART_TOP, CHART_BOTTOM = 360, 180, 16, 18
NAMED_BOTTOM, NAMED_LEFT = 58, 64  # room under and left of a chart whose bars are named
RATE_BARS, LABEL = 8, 14  # bars in a pass-rate chart, characters of their names
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
    slanted: bool  # the bars' names are slanted (long), else short and level
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT

    @property
    def baseline(self) -> int:
        """Where the bars end and their names start."""
        return self.height - (NAMED_BOTTOM if self.slanted else CHART_BOTTOM)


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def _compact(count: int) -> str:
    """A count short enough to stand over a narrow bar: 5,437 -> 5.4k, 204,052 -> 204k."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if count >= size:
            value = count / size
            return f"{value:.1f}{suffix}" if value < 10 else f"{value:.0f}{suffix}"
    return str(count)


def _chart(title: str, values: list[tuple[str, float, str, str]], slanted: bool = False) -> Chart:
    """Bars of (label, value, text over the bar, colour), scaled to the largest value."""
    most = max((value for _, value, _, _ in values), default=0) or 1
    room = CHART_HEIGHT - CHART_TOP - (NAMED_BOTTOM if slanted else CHART_BOTTOM)
    left = NAMED_LEFT if slanted else 0  # the first name slants out to the left
    step = (CHART_WIDTH - left) / max(len(values), 1)
    bars = []
    for index, (label, value, text, colour) in enumerate(values):
        height = room * value / most
        y = CHART_TOP + room - height
        bars.append(Bar(left + index * step + 2, y, step - 4, height, colour, label, text))
    return Chart(title, bars, slanted)


def charts(report: Audit) -> list[Chart]:
    scores = [
        (f"{bucket * 10}", float(count), _compact(count), NEUTRAL)
        for bucket, count in enumerate(report.histogram)
    ]
    similarity = [
        (f".{bucket}", float(count), _compact(count), OUT if bucket >= 8 else NEUTRAL)
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
        _chart("Pass rate by service, worst first", services, slanted=True),
        _chart("Pass rate by region, worst first", regions, slanted=True),
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
