"""The `seo-engine` command line: thin commands over the seo_engine library."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from seo_engine import __version__, database, migrate
from seo_engine.embedded import EmbeddedError
from seo_engine.migrate import MigrationError
from seo_engine.server import ServeOptions, serve_app
from seo_engine.settings import Settings, SettingsError, load_settings

# sysexits.h codes, so scripts can tell bad input from an unreachable database.
EXIT_DATA = 65
EXIT_UNAVAILABLE = 69
EXIT_SOFTWARE = 70
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
app.add_typer(db_app, name="db")


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
    except KeyboardInterrupt:
        fail("interrupted; nothing was committed by the interrupted step", EXIT_INTERRUPTED)


def run(coroutine_function: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run one library coroutine the way every command does (SIGTERM exits cleanly)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    return asyncio.run(coroutine_function(*args))


def settings() -> Settings:
    with reported_errors():
        return load_settings()


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
) -> None:
    """One command to a running site: embedded database, migrate, then serve.

    Example: seo-engine demo
    """
    config = settings()
    with reported_errors():
        applied = run(migrate.run_migrations, config)
        typer.echo(f"migrations: {len(applied)} applied, schema at {migrate.head()}")
        typer.echo(f"try: http://{host}:{port}/healthz  http://{host}:{port}/readyz")
        serve_app(config, ServeOptions(host=host, port=port, workers=1))


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
