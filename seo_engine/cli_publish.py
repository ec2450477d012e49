"""`seo-engine publish …`: the backlog and schedule, publishing steps on a selection, and
what the next days will publish (docs/publishing.md)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated

import orjson
import typer

from seo_engine import workflows
from seo_engine.cli import (
    EXIT_USAGE,
    SiteOption,
    fail,
    job,
    purge_mark,
    reported_errors,
    run,
    settings,
    show_purge,
)
from seo_engine.publish import release

publish_app = typer.Typer(
    help="Publishing: drafts, schedules and the drip; what goes live when.", no_args_is_help=True
)

ServiceFilter = Annotated[
    list[str] | None, typer.Option("--service", help="Pages of this service slug (repeatable).")
]
LocationFilter = Annotated[
    list[str] | None, typer.Option("--location", help="Pages of this location slug (repeatable).")
]
RegionFilter = Annotated[
    list[str] | None,
    typer.Option("--region", help="Pages in this region code, e.g. TX (repeatable)."),
]
MinScore = Annotated[
    float | None, typer.Option(min=0, max=100, help="Pages scoring at least this (0-100).")
]
MaxScore = Annotated[
    float | None, typer.Option(min=0, max=100, help="Pages scoring at most this (0-100).")
]
IndexableOnly = Annotated[
    bool, typer.Option("--indexable", help="Only pages the quality gate lets into the index.")
]
StateFilter = Annotated[
    list[str] | None,
    typer.Option("--state", help="Only pages now in this state (repeatable; default: see above)."),
]
Limit = Annotated[int | None, typer.Option(min=1, help="Only the best this many.")]
Everything = Annotated[
    bool, typer.Option("--all", help="Every page of the site (when no filter is given).")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Count the pages; change nothing.")]
JsonOutput = Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")]


def _selection(
    services: list[str] | None,
    locations: list[str] | None,
    regions: list[str] | None,
    min_score: float | None,
    max_score: float | None,
    indexable: bool,
    states: list[str] | None,
    default_states: tuple[str, ...],
    limit: int | None,
    everything: bool,
) -> release.Selection:
    unknown = sorted(set(states or ()) - set(release.STATES))
    if unknown:
        fail(f"--state {unknown[0]}: must be one of {', '.join(release.STATES)}", EXIT_USAGE)
    selection = release.Selection(
        services=tuple(services or ()),
        locations=tuple(locations or ()),
        regions=tuple(regions or ()),
        min_score=min_score,
        max_score=max_score,
        indexable_only=indexable,
        states=tuple(states or default_states),
        limit=limit,
    )
    filtered = services or locations or regions or indexable or limit
    if not (filtered or min_score is not None or max_score is not None or everything):
        fail("choose pages (--service, --region, --min-score, --limit …) or pass --all", EXIT_USAGE)
    return selection


def _step(
    selection: release.Selection, state: str, at: datetime | None, site: str | None, dry_run: bool
) -> None:
    config = settings()
    with reported_errors(), job(config, f"publish {state}", site, record=not dry_run) as record:
        snapshot = None if dry_run else purge_mark(config)
        report, chosen = run(workflows.publish_change, config, site, selection, state, at, dry_run)
        record.summary = (
            f"{report.site}: {report.pages:,} page(s) now {state}"
            + (f" for {at.isoformat(timespec='minutes')}" if at else "")
            + f" ({chosen - report.pages:,} already were); {report.went_live:,} went live, "
            f"{report.went_away:,} went away (tombstoned); links of {report.relinked:,} other "
            f"page(s) rewritten; {report.seconds:.1f} s"
        )
    if dry_run:
        typer.echo(f"{report.site}: {chosen:,} page(s) selected; nothing changed (--dry-run)")
        return
    typer.echo(record.summary)
    show_purge(config, report.site, snapshot)


@publish_app.command("live")
def publish_live(
    site: SiteOption = None,
    service: ServiceFilter = None,
    location: LocationFilter = None,
    region: RegionFilter = None,
    min_score: MinScore = None,
    max_score: MaxScore = None,
    indexable: IndexableOnly = False,
    state: StateFilter = None,
    limit: Limit = None,
    everything: Everything = False,
    dry_run: DryRun = False,
) -> None:
    """Publish the selected pages now (by default those scheduled, queued or drafts).

    Example: seo-engine publish live --service plumbing --region TX --min-score 70
    """
    selection = _selection(
        service,
        location,
        region,
        min_score,
        max_score,
        indexable,
        state,
        ("scheduled", "queued", "draft"),
        limit,
        everything,
    )
    _step(selection, "live", None, site, dry_run)


@publish_app.command("schedule")
def publish_schedule(
    at: Annotated[
        datetime, typer.Option("--at", help="When they go live (ISO 8601; UTC if no offset).")
    ],
    site: SiteOption = None,
    service: ServiceFilter = None,
    location: LocationFilter = None,
    region: RegionFilter = None,
    min_score: MinScore = None,
    max_score: MaxScore = None,
    indexable: IndexableOnly = False,
    state: StateFilter = None,
    limit: Limit = None,
    everything: Everything = False,
    dry_run: DryRun = False,
) -> None:
    """Schedule the selected pages (by default queued, drafts or scheduled) to go live at a
    time; the server publishes them then, without any command.

    Example: seo-engine publish schedule --at 2026-12-24T09:00 --service plumbing --limit 10
    """
    when = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    selection = _selection(
        service,
        location,
        region,
        min_score,
        max_score,
        indexable,
        state,
        ("queued", "draft", "scheduled"),
        limit,
        everything,
    )
    _step(selection, "scheduled", when, site, dry_run)


@publish_app.command("queue")
def publish_queue(
    site: SiteOption = None,
    service: ServiceFilter = None,
    location: LocationFilter = None,
    region: RegionFilter = None,
    min_score: MinScore = None,
    max_score: MaxScore = None,
    indexable: IndexableOnly = False,
    state: StateFilter = None,
    limit: Limit = None,
    everything: Everything = False,
    dry_run: DryRun = False,
) -> None:
    """Put the selected pages (by default drafts and scheduled ones) into the drip backlog:
    per_day of them go live each day, best quality first.

    Example: seo-engine publish queue --all
    """
    selection = _selection(
        service,
        location,
        region,
        min_score,
        max_score,
        indexable,
        state,
        ("draft", "scheduled"),
        limit,
        everything,
    )
    _step(selection, "queued", None, site, dry_run)


@publish_app.command("draft")
def publish_draft(
    site: SiteOption = None,
    service: ServiceFilter = None,
    location: LocationFilter = None,
    region: RegionFilter = None,
    min_score: MinScore = None,
    max_score: MaxScore = None,
    indexable: IndexableOnly = False,
    state: StateFilter = None,
    limit: Limit = None,
    everything: Everything = False,
    dry_run: DryRun = False,
) -> None:
    """Unpublish the selected pages (by default live, scheduled or queued ones): they become
    drafts, are served no more, and consumers of the change feed get a tombstone.

    Example: seo-engine publish draft --max-score 40
    """
    selection = _selection(
        service,
        location,
        region,
        min_score,
        max_score,
        indexable,
        state,
        ("live", "scheduled", "queued"),
        limit,
        everything,
    )
    _step(selection, "draft", None, site, dry_run)


@publish_app.command("release")
def publish_release(site: SiteOption = None) -> None:
    """Publish what is due now: scheduled pages whose time came and the drip's share. The
    server does this on its own every SEO_ENGINE_PUBLISH_INTERVAL seconds.

    Example: seo-engine publish release
    """
    config = settings()
    with reported_errors(), job(config, "publish release", site) as record:
        snapshot = purge_mark(config)
        report = run(workflows.publish_release, config, site)
        scheduled = report.scheduled.went_live if report.scheduled else 0
        drip = report.drip.went_live if report.drip else 0
        record.summary = (
            f"{report.site}: {report.went_live:,} page(s) went live ({scheduled:,} scheduled, "
            f"{drip:,} from the drip backlog in {len(report.slots)} daily release(s))"
        )
    typer.echo(record.summary)
    show_purge(config, report.site, snapshot)


@publish_app.command("status")
def publish_status(site: SiteOption = None, json_output: JsonOutput = False) -> None:
    """Pages by state, the drip, the next release, and the last publishing steps.

    Example: seo-engine publish status
    """
    config = settings()
    with reported_errors():
        found = run(workflows.publish_status, config, site)
    if json_output:
        typer.echo(orjson.dumps(dataclasses.asdict(found)).decode())
        return
    typer.echo(f"{found.site}: new pages start {found.new_pages}")
    for name, count in found.states.items():
        typer.echo(f"  {name:<10}{count.pages:>12,} pages  ({count.indexable:,} indexable)")
    if found.next_scheduled:
        typer.echo(f"  next scheduled page goes live {found.next_scheduled:%Y-%m-%d %H:%M} UTC")
    if found.per_day:
        queued = found.states["queued"].pages
        days = -(-queued // found.per_day)
        when = (
            f"next release {found.next_release:%Y-%m-%d %H:%M} UTC; the backlog lasts "
            f"{days:,} day(s)"
            if found.next_release and queued
            else "the backlog is empty"
        )
        typer.echo(f"  drip: {found.per_day:,} a day at {found.at} UTC, best quality first; {when}")
    for entry in found.recent:
        typer.echo(
            f"  {entry['at']:%Y-%m-%d %H:%M}  {entry['action']:<9}{entry['pages']:>9,} page(s), "
            f"{entry['relinked']:,} relinked  {entry['detail']}"
        )


@publish_app.command("preview")
def publish_preview(
    site: SiteOption = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="Days ahead.")] = 7,
    json_output: JsonOutput = False,
) -> None:
    """What the next days publish: scheduled pages and the drip's share, day by day (UTC).

    Example: seo-engine publish preview --days 14
    """
    config = settings()
    with reported_errors():
        ahead = run(workflows.publish_preview, config, site, days)
    if json_output:
        typer.echo(orjson.dumps([dataclasses.asdict(day) for day in ahead]).decode())
        return
    if not ahead:
        typer.echo(f"nothing goes live in the next {days} day(s)")
    for day in ahead:
        scores = "" if day.low is None else f"  scores {day.low:.0f}-{day.high:.0f}"
        typer.echo(
            f"{day.day}  {day.scheduled + day.drip:>8,} page(s) ({day.drip:,} drip, "
            f"{day.scheduled:,} scheduled; {day.indexable:,} indexable){scores}  "
            + ", ".join(day.examples)
        )
