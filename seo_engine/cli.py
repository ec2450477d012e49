"""The `seo-engine` command line: thin commands over the seo_engine library."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import asyncpg
import orjson
import typer
from rich.console import Console

from seo_engine import __version__, audit_report, audit_view, jobs, logs, resources, workflows
from seo_engine.db import database, migrate, replicas
from seo_engine.db.embedded import EmbeddedError
from seo_engine.db.migrate import MigrationError
from seo_engine.generate.run import GenerateBusy, GenerateError, GenerateOptions, GenerateReport
from seo_engine.ingest.content import ContentError
from seo_engine.ingest.dimensions import SeedOptions, SeedRejected, SeedReport
from seo_engine.ingest.seedfile import SeedFileError, detect_format
from seo_engine.ingest.sites import SiteError
from seo_engine.publish import indexnow
from seo_engine.publish.indexnow import IndexNowBusy, IndexNowError
from seo_engine.publish.release import PublishBusy, PublishError
from seo_engine.serve.preview import PreviewError
from seo_engine.serve.server import ServeOptions, serve_app
from seo_engine.serve.static_export import ExportError
from seo_engine.settings import Settings, SettingsError, load_settings

# sysexits.h codes, so scripts can tell bad input from an unreachable database.
EXIT_USAGE = 2  # as click's own usage errors
EXIT_DATA = 65
EXIT_UNAVAILABLE = 69
EXIT_SOFTWARE = 70
EXIT_CANTCREATE = 73
EXIT_TEMPORARY = 75
EXIT_CONFIG = 78
EXIT_INTERRUPTED = 130

T = TypeVar("T")

app = typer.Typer(
    help="Generate and serve programmatic-SEO landing pages from PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Database schema: apply and inspect migrations.", no_args_is_help=True)
sites_app = typer.Typer(
    help="Sites: add or update one from a site file, list them.", no_args_is_help=True
)
seed_app = typer.Typer(
    help="Load locations, services or overrides from CSV or NDJSON.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(sites_app, name="sites")
app.add_typer(seed_app, name="seed")
export_app = typer.Typer(
    help="Write the page set to files: a static site or NDJSON.", no_args_is_help=True
)
app.add_typer(export_app, name="export")
overrides_app = typer.Typer(
    help="Hand edits (`seed overrides` loads them): list them, review the stale ones.",
    no_args_is_help=True,
)
app.add_typer(overrides_app, name="overrides")
indexnow_app = typer.Typer(
    help="Tell search engines (IndexNow) which URLs changed or went away.", no_args_is_help=True
)
app.add_typer(indexnow_app, name="indexnow")


def fail(message: str, code: int) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn the library's expected failures into one line and a meaningful exit code."""
    try:
        yield
    except SettingsError as error:
        fail(str(error), EXIT_CONFIG)
    except (database.DatabaseUnavailable, EmbeddedError) as error:
        fail(str(error), EXIT_UNAVAILABLE)
    except MigrationError as error:
        fail(str(error), EXIT_SOFTWARE)
    except (GenerateBusy, PublishBusy, IndexNowBusy) as error:
        fail(str(error), EXIT_TEMPORARY)
    except (
        SiteError,
        SeedFileError,
        ContentError,
        GenerateError,
        ExportError,
        PreviewError,
        IndexNowError,
        PublishError,
    ) as error:
        fail(str(error), EXIT_DATA)
    except SeedRejected as error:
        show_rejections(error.report)
        fail(str(error), EXIT_DATA)
    # Before PostgresError: most connection errors are PostgresErrors too (a terminated
    # backend raises AdminShutdownError), and they mean "unavailable", not "bug".
    except database.CONNECTION_ERRORS as error:
        fail(f"{_connection_failure(error)}; nothing was committed by this step", EXIT_UNAVAILABLE)
    except asyncpg.PostgresError as error:
        fail(f"database error: {error}; nothing was committed by this step", EXIT_SOFTWARE)
    except KeyboardInterrupt:
        fail(
            "interrupted; the stored data is unchanged (each load commits in one transaction)",
            EXIT_INTERRUPTED,
        )


def _connection_failure(error: Exception) -> str:
    if isinstance(error, asyncpg.QueryCanceledError):  # statement_timeout or pg_cancel_backend
        return f"the database cancelled a statement ({error})"
    return f"lost the database connection ({type(error).__name__})"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(coroutine_function: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run one library coroutine the way every command does (SIGTERM exits cleanly)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        # Our own handler, so asyncio does not turn Ctrl-C into a cancellation that the
        # job's cleanup could mask: the interrupt surfaces as KeyboardInterrupt (exit 130).
        signal.signal(signal.SIGINT, _interrupt)
    return asyncio.run(coroutine_function(*args))


def settings() -> Settings:
    with reported_errors():
        config = load_settings()
    # Text for a person stays the commands' own output; JSON lines (jobs, their phases)
    # go to stderr when asked for.
    level = config.log_level if config.log_format == "json" else "warning"
    logs.configure(config.log_format, level)
    return config


def purge_mark(config: Settings) -> str | None:
    """Before a job that changes pages: the snapshot its CDN purge starts from."""
    return run(workflows.purge_mark, config) if config.purge else None


def show_purge(config: Settings, site: str, snapshot: str | None) -> None:
    """After the job committed: print what a CDN must purge, or send it to the webhook."""
    if snapshot is None:
        return
    with reported_errors():
        purge, problem = run(workflows.purge_after, config, site, snapshot)
    if not purge.keys:
        return
    scope = (
        "every page (over SEO_ENGINE_PURGE_MAX_KEYS)"
        if purge.everything
        else (f"{purge.pages:,} page(s)")
    )
    if config.purge == "print":
        typer.echo(f"purge keys ({scope}): " + " ".join(purge.keys))
        if purge.urls:
            typer.echo("purge urls: " + " ".join(purge.urls))
    elif problem:
        typer.secho(f"warning: {problem}; purge by hand: {' '.join(purge.keys)}", err=True)
    else:
        typer.echo(f"purge: {len(purge.keys):,} key(s) for {scope} sent to the webhook")


def show_replay(config: Settings, timeout: float) -> None:
    """After the job committed: wait until every read replica has replayed it."""
    try:
        names = run(workflows.wait_for_replicas, config, timeout)
    except replicas.ReplicasBehind as error:
        fail(f"the change is committed on the primary, but {error}", EXIT_TEMPORARY)
    except database.UNAVAILABLE as error:
        fail(
            "the change is committed; the primary could not be asked how far it has written "
            f"({type(error).__name__})",
            EXIT_UNAVAILABLE,
        )
    typer.echo(f"replayed by {len(names)} read replica(s): {', '.join(names)}")


def job(
    config: Settings, name: str, site: str | None, record: bool = True
) -> AbstractContextManager[jobs.JobRecord]:
    """The job's record in `seo-engine jobs` (none for a dry run, which changes nothing)."""
    return jobs.recorded(config, name, site) if record else nullcontext(jobs.JobRecord())


@app.callback(invoke_without_command=True)
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Generate and serve programmatic-SEO landing pages from PostgreSQL.

    Without DATABASE_URL every command uses the embedded PostgreSQL in ./.seo-engine.
    """
    if version:
        typer.echo(f"seo-engine {__version__}")
        raise typer.Exit()


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations (safe to run again; concurrent runs wait for each other).

    Example: seo-engine db migrate
    """
    config = settings()
    with reported_errors():
        applied = run(migrate.run_migrations, config)
    if applied:
        for migration in applied:
            typer.echo(f"applied {migration.version}_{migration.name}")
    else:
        typer.echo("schema is up to date")


@app.command("jobs")
def jobs_command(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, latest first.")] = 20,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")] = False,
) -> None:
    """The latest seed, generate and publish runs: when, how long, how they ended, what
    they changed.

    Example: seo-engine jobs --limit 5
    """
    config = settings()
    with reported_errors():
        found = run(jobs.recent, config, limit)
    if json_output:
        typer.echo(orjson.dumps([dataclasses.asdict(run) for run in found]).decode())
        return
    if not found:
        typer.echo("no jobs recorded yet")
    for done in found:
        seconds = (
            f"{(done.finished_at - done.started_at).total_seconds():.1f} s"
            if done.finished_at
            else "running"
        )
        started = done.started_at.isoformat(timespec="seconds")
        typer.echo(
            f"{done.id}\t{started}\t{done.job}\t{done.site or '-'}\t{done.outcome}\t"
            f"{seconds}\t{done.summary}"
        )


@db_app.command("status")
def db_status() -> None:
    """List every migration as applied (with its time) or pending.

    Example: seo-engine db status
    """
    config = settings()
    with reported_errors():
        rows = run(migrate.run_status, config)
    pending = 0
    for row in rows:
        name = f"{row.migration.version}_{row.migration.name}"
        if row.applied_at is None:
            pending += 1
            typer.echo(f"pending  {name}")
        else:
            typer.echo(f"applied  {name}  {row.applied_at.isoformat(timespec='seconds')}")
    typer.echo(f"{len(rows) - pending} applied, {pending} pending")


def show_rejections(report: SeedReport) -> None:
    for rejected in report.errors:
        typer.echo(f"  line {rejected.line}: {'; '.join(rejected.reasons)}", err=True)
    hidden = report.rejected - len(report.errors)
    if hidden > 0:
        typer.echo(f"  ... and {hidden:,} more (use --rejects FILE to get them all)", err=True)


def seed_summary(report: SeedReport, dry_run: bool) -> str:
    skipped = f", {report.skipped:,} skipped by --country" if report.skipped else ""
    return (
        f"{report.kind}: {report.rows:,} rows read{skipped}, {report.rejected:,} rejected; "
        f"{report.inserted:,} inserted, {report.updated:,} updated, "
        f"{report.unchanged:,} unchanged, {report.removed:,} removed"
        + (" (dry run: nothing written)" if dry_run else "")
    )


def show_seed(report: SeedReport, dry_run: bool) -> None:
    if report.rejected:
        typer.echo(f"{report.rejected:,} bad row(s) skipped:", err=True)
        show_rejections(report)
    typer.echo(seed_summary(report, dry_run))


def generate_summary(report: GenerateReport) -> str:
    return (
        f"{report.site}: {report.pages:,} pages; {report.inserted:,} inserted, "
        f"{report.updated:,} updated, {report.unchanged:,} unchanged, {report.removed:,} removed; "
        f"{report.redirects:,} redirects added "
        f"(render {report.render_seconds:.1f}s, compare {report.compare_seconds:.1f}s, "
        f"build and insert {report.build_seconds:.1f}s, merge {report.merge_seconds:.1f}s)"
    )


def show_generate(report: GenerateReport) -> None:
    typer.echo(generate_summary(report))
    if report.rendered < report.pages:
        typer.echo(
            f"{report.pages - report.rendered:,} of {report.pages:,} pages not rendered: "
            "built from unchanged inputs (--force renders them)"
        )
    review = report.review
    if review is not None and review.stale:
        typer.echo(
            f"{review.stale:,} overridden field(s) whose template text changed since the "
            "override was set (`seo-engine overrides stale` shows them), e.g.:"
        )
        for example in review.examples:
            typer.echo(f"  {example}")
    lengths = report.lengths
    if lengths.long_titles or lengths.long_descriptions:
        typer.echo(
            f"over the limit with every variant: {lengths.long_titles:,} titles > 60 characters, "
            f"{lengths.long_descriptions:,} descriptions > 160 characters, e.g.:"
        )
        for example in lengths.examples:
            typer.echo(f"  {example}")


SiteOption = Annotated[
    str | None, typer.Option("--site", help="Site slug; may be omitted when there is one site.")
]


@sites_app.command("add")
def sites_add(
    file: Annotated[Path, typer.Argument(help="Site file (TOML), e.g. seeds/site.toml.")],
) -> None:
    """Add a site from its site file, or update the site with the same slug.

    Example: seo-engine sites add seeds/site.toml
    """
    config = settings()
    with reported_errors():
        site, outcome = run(workflows.add_site, config, file)
    typer.echo(f"site '{site.slug}' {outcome}: {site.name} at {site.base_url}")


@sites_app.command("list")
def sites_list() -> None:
    """List every site (the first is the default site).

    Example: seo-engine sites list
    """
    config = settings()
    with reported_errors():
        found = run(workflows.list_sites, config)
    if not found:
        typer.echo("no sites yet; add one with `seo-engine sites add seeds/site.toml`")
    for site in found:
        typer.echo(f"{site.slug}\t{site.name}\t{site.base_url}\t{site.path_pattern}")


def _seed(
    kind: str,
    file: Path,
    site: str | None,
    fmt: str | None,
    max_errors: int,
    rejects: Path | None,
    dry_run: bool,
    prune: bool,
    country: str | None,
) -> None:
    config = settings()
    with reported_errors():
        options = SeedOptions(
            fmt=detect_format(file, fmt),
            max_errors=max_errors,
            rejects=rejects,
            dry_run=dry_run,
            prune=prune,
            country=country.upper() if country else None,
        )
        with job(config, f"seed {kind}", site, record=not dry_run) as record:
            report = run(workflows.seed_file, config, site, kind, file, options)
            record.summary = seed_summary(report, dry_run)
    show_seed(report, dry_run)


FileArgument = Annotated[Path, typer.Argument(help="CSV or NDJSON file.")]
FormatOption = Annotated[
    str | None, typer.Option("--format", help="csv or ndjson (default: from the file name).")
]
MaxErrorsOption = Annotated[
    int, typer.Option(min=0, help="Load the good rows if there are at most this many bad ones.")
]
RejectsOption = Annotated[
    Path | None, typer.Option(help="Write bad rows, with their reasons, to this file.")
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Validate and report only.")]
PruneOption = Annotated[
    bool, typer.Option("--prune", help="Remove stored rows absent from the file.")
]


@seed_app.command("locations")
def seed_locations(
    file: FileArgument,
    site: SiteOption = None,
    fmt: FormatOption = None,
    max_errors: MaxErrorsOption = 0,
    rejects: RejectsOption = None,
    dry_run: DryRunOption = False,
    prune: PruneOption = False,
    country: Annotated[
        str | None, typer.Option(help="Load only rows of this country code, e.g. US.")
    ] = None,
) -> None:
    """Load locations; every row is checked before anything is written.

    Example: seo-engine seed locations seeds/locations.csv --country US
    """
    _seed("locations", file, site, fmt, max_errors, rejects, dry_run, prune, country)


@seed_app.command("services")
def seed_services(
    file: FileArgument,
    site: SiteOption = None,
    fmt: FormatOption = None,
    max_errors: MaxErrorsOption = 0,
    rejects: RejectsOption = None,
    dry_run: DryRunOption = False,
    prune: PruneOption = False,
) -> None:
    """Load services; every row is checked before anything is written.

    Example: seo-engine seed services seeds/services.csv --max-errors 10 --rejects bad.csv
    """
    _seed("services", file, site, fmt, max_errors, rejects, dry_run, prune, None)


@seed_app.command("overrides")
def seed_overrides(
    file: FileArgument,
    site: SiteOption = None,
    fmt: FormatOption = None,
    max_errors: MaxErrorsOption = 0,
    rejects: RejectsOption = None,
    dry_run: DryRunOption = False,
    prune: PruneOption = False,
) -> None:
    """Load hand edits of generated pages (columns service, location, field, value; `*`
    for every service or every location). They apply at the next `generate` and survive
    every later one.

    Example: seo-engine seed overrides edits.csv --dry-run
    """
    _seed("overrides", file, site, fmt, max_errors, rejects, dry_run, prune, None)
    if not dry_run:
        typer.echo("the pages change at the next `seo-engine generate`")


@overrides_app.command("list")
def overrides_list(
    site: SiteOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """List the stored overrides (`*`: every service or location).

    Example: seo-engine overrides list
    """
    config = settings()
    with reported_errors():
        rows = run(workflows.list_overrides, config, site)
    for row in rows:
        if json_output:
            typer.echo(orjson.dumps(row).decode())
        else:
            typer.echo(f"{row['service']}\t{row['location']}\t{row['field']}\t{row['value']}")
    if not rows and not json_output:
        typer.echo("no overrides; load some with `seo-engine seed overrides FILE`")


@overrides_app.command("stale")
def overrides_stale(
    site: SiteOption = None,
    service: Annotated[str | None, typer.Option(help="Only this service's pages.")] = None,
    location: Annotated[str | None, typer.Option(help="Only this location's pages.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many fields.")] = 100,
    accept: Annotated[
        bool,
        typer.Option("--accept", help="Mark them reviewed: the current template text is the base."),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Overridden fields whose template text changed since the override was set: what the
    templates wrote then and now, and the hand edit that replaces both.

    Example: seo-engine overrides stale --service drain-cleaning
    """
    config = settings()
    with reported_errors():
        rows, accepted = run(
            workflows.stale_overrides, config, site, service, location, limit, accept
        )
    for row in rows:
        if json_output:
            typer.echo(orjson.dumps(row).decode())
            continue
        typer.echo(f"{row['path']}  {row['field']}")
        typer.echo(f"  template then: {row['template']}")
        typer.echo(f"  template now:  {row['current']}")
        typer.echo(f"  override:      {row['value']}")
    if accept:
        typer.echo(f"{accepted:,} field(s) marked reviewed", err=json_output)
    elif not rows and not json_output:
        typer.echo("no overridden field's template text changed since its override was set")


@indexnow_app.command("push")
def indexnow_push(
    site: SiteOption = None,
    batch: Annotated[
        int, typer.Option(min=1, max=indexnow.MAX_URLS, help="URLs per request (at most 10,000).")
    ] = indexnow.MAX_URLS,
) -> None:
    """Submit every URL that changed, appeared or went away since it was last accepted;
    an unchanged page is never submitted again.

    Example: seo-engine indexnow push
    """
    config = settings()
    with reported_errors():
        report = run(workflows.push_indexnow, config, site, batch)
    typer.echo(
        f"{report.site}: {report.submitted:,} URLs accepted ({report.gone:,} gone or out of "
        f"the index) in {len(report.batches):,} batch(es); {report.requests:,} requests, "
        f"{report.retries:,} retried"
    )


@indexnow_app.command("status")
def indexnow_status(
    site: SiteOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")] = False,
) -> None:
    """What the ledger holds: URLs submitted, failing, pending, and the last submission.

    Example: seo-engine indexnow status
    """
    config = settings()
    with reported_errors():
        found = run(workflows.indexnow_status, config, site)
    if json_output:
        typer.echo(orjson.dumps(dataclasses.asdict(found)).decode())
        return
    if found.key is None:
        typer.echo(f"{found.site}: no [indexnow] key in the site file")
    last = found.last_submitted.isoformat(timespec="seconds") if found.last_submitted else "never"
    typer.echo(
        f"{found.site}: {found.submitted:,} URLs accepted ({found.gone:,} as gone), "
        f"{found.failing:,} failing, {found.pending:,} pending; last accepted {last}"
        + (f"; endpoint {found.endpoint}" if found.endpoint else "")
    )


@app.command()
def generate(
    site: SiteOption = None,
    service: Annotated[
        list[str] | None, typer.Option("--service", help="Only this service slug (repeatable).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Render processes (default: one per core).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Render every page, also those built from unchanged inputs."),
    ] = False,
    wait_for_replicas: Annotated[
        float | None,
        typer.Option(
            "--wait-for-replicas",
            metavar="SECONDS",
            min=0.1,
            max=86400,
            help="Then wait up to SECONDS until every read replica "
            "(SEO_ENGINE_READ_DATABASE_URL) has replayed the change; exit 75 if one has not.",
        ),
    ] = None,
) -> None:
    """Render every service x location page and merge changes into the page set. A page
    whose inputs (code, site file, its service and the services it links to, its location,
    region and neighbours) are unchanged since it was last built is not rendered again.

    Example: seo-engine generate --site localpros --service roof-repair
    """
    config = settings()
    if wait_for_replicas is not None and config.read_database_url is None:
        fail(
            "--wait-for-replicas: no read replicas are configured (SEO_ENGINE_READ_DATABASE_URL)",
            EXIT_USAGE,
        )
    options = GenerateOptions(
        site=site, services=tuple(service or ()), workers=workers, force=force
    )
    with reported_errors(), job(config, "generate", site) as record:
        snapshot = purge_mark(config)
        report = run(workflows.generate_pages, config, options)
        record.summary = generate_summary(report)
    show_generate(report)
    show_purge(config, report.site, snapshot)
    if wait_for_replicas is not None:
        show_replay(config, wait_for_replicas)


@app.command()
def audit(
    site: SiteOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Machine-readable JSON (docs/quality.md).")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows in each list.")] = 10,
    html_file: Annotated[
        Path | None,
        typer.Option("--html", help="Also write the report as one self-contained HTML file."),
    ] = None,
    links: Annotated[
        bool,
        typer.Option(
            "--links",
            help="Also check internal links: reads every stored document "
            "(about a minute per 400,000 pages).",
        ),
    ] = False,
) -> None:
    """Report what the quality gate decided: pass rate, scores, reasons, the worst pages,
    services and regions, the most similar pairs, duplicate titles and descriptions, pages
    over the length limits; with --links, links that lead nowhere and pages none lead to.

    Example: seo-engine audit --limit 20 --links --html audit.html
    """
    config = settings()
    with reported_errors():
        report = run(workflows.audit_site, config, site, limit, links)
    if json_output:
        sys.stdout.buffer.write(report.as_json() + b"\n")
        sys.stdout.flush()
    else:
        audit_view.show(report, Console())
    if html_file is not None:
        try:
            html_file.write_text(audit_report.render(report, limit), encoding="utf-8")
        except OSError as error:
            fail(f"{html_file}: {error.strerror}", EXIT_CANTCREATE)
        typer.echo(f"report written to {html_file}", err=json_output)


@app.command()
def preview(
    service: Annotated[str | None, typer.Argument(help="Service slug, e.g. roof-repair.")] = None,
    location: Annotated[str | None, typer.Argument(help="Location slug, e.g. austin-tx.")] = None,
    site: SiteOption = None,
    site_file: Annotated[
        Path | None,
        typer.Option("--site-file", help="Preview with this site file (not stored) instead."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Write the JSON document instead of the HTML.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(
            min=1, max=100_000, help="Instead: audit a sample of about N pages (no arguments)."
        ),
    ] = None,
) -> None:
    """Render one page exactly as generate would store it and the server send it, with its
    quality score and reasons; or, with --sample N, render and judge a sample of pages
    across services and regions and print the audit of it. Nothing is written.

    Example: seo-engine preview roof-repair austin-tx --site-file seeds/site.toml -o page.html
    Example: seo-engine preview --sample 500 --site-file seeds/site.toml
    """
    config = settings()
    if sample is not None:
        if service is not None or location is not None:
            fail("--sample takes no service or location", EXIT_USAGE)
        with reported_errors():
            report = run(workflows.preview_sample, config, site, site_file, sample)
        audit_view.show(report, Console(), sample=True)
        return
    if service is None or location is None:
        fail("give a service and a location slug (or --sample N)", EXIT_USAGE)
    with reported_errors():
        page = run(workflows.preview_page, config, site, site_file, service, location)
    body = page.document if json_output else page.html
    verdict = page.quality
    state = "indexable" if verdict["indexable"] else "not indexable (noindex, not in sitemaps)"
    typer.echo(
        f"{page.path}: score {verdict['score']:g}, {state}; "
        f"compared with the {page.family - 1:,} other pages of its service",
        err=output is None,
    )
    for reason in verdict["reasons"]:
        typer.echo(f"  {reason['code']}: {reason['message']}", err=output is None)
    if output is None:
        sys.stdout.buffer.write(body + b"\n")
        sys.stdout.flush()
        return
    try:
        output.write_bytes(body)
    except OSError as error:
        fail(f"{output}: {error.strerror}", EXIT_CANTCREATE)
    typer.echo(f"written to {output}")


@export_app.command("static")
def export_static(
    folder: Annotated[Path, typer.Argument(help="Folder to write the site into.")],
    site: SiteOption = None,
) -> None:
    """Write every page, hub, the 404 page, sitemaps and robots.txt as static files.

    Pages become PATH.html and hubs PATH/index.html (serve with e.g. nginx
    `try_files $uri $uri.html $uri/index.html =404`).

    Example: seo-engine export static public/
    """
    config = settings()
    with reported_errors():
        report = run(workflows.export_static, config, site, folder)
    typer.echo(
        f"{report.site}: {report.pages:,} pages, {report.hubs:,} hubs and "
        f"{report.sitemaps:,} sitemaps written to {report.target}"
    )


@export_app.command("ndjson")
def export_ndjson(
    file: Annotated[Path, typer.Argument(help="File to write, one page document per line.")],
    site: SiteOption = None,
    updated_since: Annotated[
        datetime | None,
        typer.Option(help="Only pages changed since (ISO 8601), with tombstones."),
    ] = None,
) -> None:
    """Write every page document as NDJSON (the same documents the API serves).

    Example: seo-engine export ndjson pages.ndjson --updated-since 2026-11-01T00:00:00Z
    """
    config = settings()
    since = updated_since.replace(tzinfo=updated_since.tzinfo or UTC) if updated_since else None
    with reported_errors():
        report = run(workflows.export_ndjson, config, site, file, since)
    typer.echo(f"{report.site}: {report.pages:,} documents written to {report.target}")


HostOption = Annotated[str, typer.Option(help="Interface to listen on.")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")]
WorkersOption = Annotated[
    int | None,
    typer.Option(min=1, max=256, help="Worker processes (default: one per CPU core)."),
]


@app.command()
def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    workers: WorkersOption = None,
) -> None:
    """Serve the HTML pages, sitemaps and JSON API with uvicorn.

    Example: seo-engine serve --host 0.0.0.0 --port 8000 --workers 2
    """
    config = settings()
    with reported_errors():
        serve_app(config, ServeOptions(host=host, port=port, workers=workers))


@app.command()
def demo(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    full: Annotated[
        bool, typer.Option("--full", help="All ~34,000 locations (4 million pages), not the US.")
    ] = False,
) -> None:
    """One command to a running site: migrate, load the bundled seeds, generate, serve.

    Example: seo-engine demo            (US subset, about 400,000 pages)
    """
    config = settings()
    seeds = resources.seeds_dir()
    with reported_errors():
        applied = run(migrate.run_migrations, config)
        typer.echo(f"migrations: {len(applied)} applied, schema at {migrate.head()}")
        site, outcome = run(workflows.add_site, config, seeds / "site.toml")
        typer.echo(f"site '{site.slug}' {outcome}")
        country = None if full else "US"
        for kind in ("locations", "services"):
            options = SeedOptions(
                fmt="csv", country=country if kind == "locations" else None, prune=True
            )
            report = run(
                workflows.seed_file, config, site.slug, kind, seeds / f"{kind}.csv", options
            )
            show_seed(report, dry_run=False)
        show_generate(run(workflows.generate_pages, config, GenerateOptions(site=site.slug)))
        typer.echo(f"serving {site.name}: http://{host}:{port}/readyz  http://{host}:{port}/docs")
        serve_app(config, ServeOptions(host=host, port=port, workers=1))


def _add_publishing() -> None:
    """`seo-engine publish …` lives in its own module, which uses this one's helpers."""
    from seo_engine.cli_publish import publish_app

    app.add_typer(publish_app, name="publish")


_add_publishing()
