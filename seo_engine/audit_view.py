"""The audit as a person reads it in a terminal (rich tables)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from seo_engine.generate.audit import BUCKETS, Audit, Duplicate, Links
from seo_engine.generate.quality import BLOCKING, DESCRIPTION_LIMIT, TITLE_LIMIT

BAR_WIDTH = 40


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def _duplicates(title: str, found: list[Duplicate], groups: int) -> Table | str:
    if not groups:
        return f"{title}: none"
    table = Table(
        title=f"{title}: {groups:,} texts used by more than one page", title_justify="left"
    )
    table.add_column("pages", justify="right")
    table.add_column("text")
    table.add_column("e.g.")
    for duplicate in found:
        table.add_row(f"{duplicate.pages:,}", duplicate.text, "\n".join(duplicate.paths))
    return table


def _over_limits(console: Console, report: Audit) -> None:
    console.print(
        f"Pages over the length limits (title {TITLE_LIMIT}, description "
        f"{DESCRIPTION_LIMIT} characters): {report.over_limits:,}"
    )
    if report.over_limit_pages:
        table = Table()
        table.add_column("page")
        table.add_column("title", justify="right")
        table.add_column("description", justify="right")
        for page in report.over_limit_pages:
            table.add_row(page.path, str(page.title_length), str(page.description_length))
        console.print(table)


def _links(console: Console, links: Links | None) -> None:
    """Headlines on their own lines: a table's title wraps at the table's width."""
    if links is None:
        console.print("Internal links: not checked (add --links; it reads every stored page)")
        return
    console.print(
        f"Internal links: {links.links:,} between pages, {links.dangling_links:,} lead nowhere"
    )
    if links.dangling:
        table = Table()
        table.add_column("missing page")
        table.add_column("links to it", justify="right")
        table.add_column("e.g. from")
        for link in links.dangling:
            table.add_row(link.target, f"{link.links:,}", link.example)
        console.print(table)
    console.print(f"Pages only the hubs link to: {links.orphans:,}")
    if links.orphan_paths:
        table = Table()
        table.add_column("page")
        for path in links.orphan_paths:
            table.add_row(path)
        console.print(table)


def show(report: Audit, console: Console, *, sample: bool = False) -> None:
    if sample:
        console.print(
            f"[bold]{report.site}[/], a sample rendered now: {report.passing:,} of "
            f"{report.pages:,} pages would pass ({_share(report.passing, report.pages)}). "
            "They are compared with each other only, so similarity is understated: "
            "generate and audit give the verdict."
        )
    else:
        console.print(
            f"[bold]{report.site}[/]: {report.passing:,} of {report.pages:,} live pages pass "
            f"the quality gate ({_share(report.passing, report.pages)}); the others are served "
            "noindex and left out of the sitemaps"
        )
    if not report.pages:
        return
    histogram = Table(title="Score distribution", title_justify="left")
    histogram.add_column("score")
    histogram.add_column("pages", justify="right")
    histogram.add_column("")
    most = max(report.histogram) or 1
    for bucket, count in enumerate(report.histogram):
        upper = 100 if bucket == BUCKETS - 1 else bucket * 10 + 9
        bar = "█" * round(BAR_WIDTH * count / most)
        histogram.add_row(f"{bucket * 10}-{upper}", f"{count:,}", bar)
    console.print(histogram)

    reasons = Table(title="Reasons (a page can have several)", title_justify="left")
    reasons.add_column("code")
    reasons.add_column("pages", justify="right")
    reasons.add_column("share", justify="right")
    reasons.add_column("keeps pages out")
    for code, count in sorted(report.reasons.items(), key=lambda item: -item[1]):
        if count:
            blocking = "yes" if code in BLOCKING else ""
            reasons.add_row(code, f"{count:,}", _share(count, report.pages), blocking)
    console.print(reasons)

    families = Table(title="Services, worst pass rate first", title_justify="left")
    for name in ("service", "pages", "passing", "mean score"):
        families.add_column(name, justify="left" if name == "service" else "right")
    for family in report.families[: len(report.worst_pages)]:
        families.add_row(
            family.service,
            f"{family.pages:,}",
            f"{family.passing:,} ({_share(family.passing, family.pages)})",
            f"{family.mean_score:.1f}",
        )
    console.print(families)

    regions = Table(title="Regions, worst pass rate first", title_justify="left")
    for name in ("region", "pages", "passing"):
        regions.add_column(name, justify="left" if name == "region" else "right")
    for region in report.regions:
        regions.add_row(
            f"{region.region_name or '-'} ({region.country_code})",
            f"{region.pages:,}",
            f"{region.passing:,} ({_share(region.passing, region.pages)})",
        )
    console.print(regions)

    worst = Table(title="Lowest scores", title_justify="left")
    worst.add_column("score", justify="right")
    worst.add_column("page")
    worst.add_column("why")
    for page in report.worst_pages:
        why = "\n".join(reason["message"] for reason in page.reasons)
        worst.add_row(f"{page.score:g}", page.path, why)
    console.print(worst)

    pairs = Table(title="Most similar pairs", title_justify="left")
    pairs.add_column("similarity", justify="right")
    pairs.add_column("page")
    pairs.add_column("nearest sibling")
    for pair in report.nearest_pairs:
        pairs.add_row(f"{pair.similarity:.0%}", pair.path, pair.nearest_path)
    console.print(pairs)

    console.print(
        _duplicates("Duplicate titles", report.duplicate_titles, report.duplicate_title_groups)
    )
    console.print(
        _duplicates(
            "Duplicate descriptions",
            report.duplicate_descriptions,
            report.duplicate_description_groups,
        )
    )
    _over_limits(console, report)
    if not sample:
        _links(console, report.links)
