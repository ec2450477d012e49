"""Database fixtures: throwaway databases on the embedded server or on DATABASE_URL.

A migrated database a test gets is a copy (CREATE DATABASE ... TEMPLATE) of one prepared
once per session: migrating, or seeding and generating the test site through the CLI, takes
seconds, copying a template a fraction of one.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from seo_engine.db import embedded, migrate
from seo_engine.serve.app import create_app
from seo_engine.settings import Settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and inspect.iscoroutinefunction(item.obj)
            and item.get_closest_marker("anyio") is None
        ):
            item.add_marker(pytest.mark.anyio)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def hypothesis_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis (under schemathesis) keeps its example database and caches in the session's
    temporary folder, not in ./.hypothesis: no test writes into the checkout."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HYPOTHESIS_STORAGE_DIRECTORY", str(tmp_path_factory.mktemp("hypothesis")))
        yield


# No test writes into the checkout: a run that leaves a new untracked or ignored file or
# folder there fails. Python's bytecode caches are the interpreter's own.
CHECKOUT_ENTRIES = ["git", "status", "--porcelain", "-z", "--ignored", "--untracked-files=normal"]
ENTRIES_BEFORE = pytest.StashKey[set[str] | None]()
LEFT_IN_CHECKOUT = pytest.StashKey[list[str]]()


def _untracked_entries(root: Path) -> set[str] | None:
    """Untracked and ignored files and folders in the checkout; None outside a git checkout."""
    try:
        listing = subprocess.run(CHECKOUT_ENTRIES, cwd=root, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    entries = listing.stdout.decode(errors="replace").split("\0")
    return {
        entry[3:]
        for entry in entries
        if entry[:3] in ("?? ", "!! ") and not entry.rstrip("/").endswith("__pycache__")
    }


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[ENTRIES_BEFORE] = _untracked_entries(session.config.rootpath)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    before = session.config.stash.get(ENTRIES_BEFORE, None)
    after = _untracked_entries(session.config.rootpath)
    if before is not None and after is not None and (left := sorted(after - before)):
        session.config.stash[LEFT_IN_CHECKOUT] = left
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    left = terminalreporter.config.stash.get(LEFT_IN_CHECKOUT, [])
    if left:
        terminalreporter.write_line(
            "error: the run left files in the checkout (or another process made them while "
            f"it ran): {', '.join(left)}",
            red=True,
        )


def with_database(dsn: str, name: str) -> str:
    """The same DSN pointing at another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


# The session's embedded server is thrown away at the end, folder and all, so it need
# neither survive a power cut (PostgreSQL's "non-durable settings") nor have its databases
# dropped one by one: each DROP DATABASE forces a checkpoint, and dropping the session's
# databases made the last test's teardown take 20 s. Servers that tests crash on purpose
# are their own (tests/disposable.py) and keep the defaults; a server given by DATABASE_URL
# outlives the session, keeps its settings and gets its databases dropped.
NON_DURABLE = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


async def _make_non_durable(dsn: str) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        for name, value in NON_DURABLE.items():
            await admin.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()


def _configured_server() -> str | None:
    return os.environ.get("DATABASE_URL")


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An administrative DSN: DATABASE_URL when set, else a throwaway embedded server."""
    configured = _configured_server()
    if configured:
        return configured
    folder = tmp_path_factory.mktemp("embedded")
    # Exit handlers run last in, first out: registered before the server starts, this one
    # runs after the server's own has stopped it.
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    dsn = embedded.server_dsn(folder)
    asyncio.run(_make_non_durable(dsn))
    return dsn


class Databases:
    """Creates uniquely named databases on the test server; `drop_all` drops them."""

    def __init__(self, server_dsn: str) -> None:
        self.server_dsn = server_dsn
        self.created: list[str] = []
        self.migrated_template: str | None = None

    async def create(self, *, migrated: bool = True, template: str | None = None) -> str:
        """A new database: empty, migrated, or a copy of `template` (a database name)."""
        if migrated and template is None:
            if self.migrated_template is None:
                self.migrated_template = await self._new(None)
                await _migrate(with_database(self.server_dsn, self.migrated_template))
            template = self.migrated_template
        return with_database(self.server_dsn, await self._new(template))

    async def _new(self, template: str | None) -> str:
        name = f"seo_engine_test_{os.getpid()}_{secrets.token_hex(4)}"
        copy = f' TEMPLATE "{template}"' if template else ""
        admin = await asyncpg.connect(self.server_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"{copy}')
        finally:
            await admin.close()
        self.created.append(name)
        return name

    async def drop_all(self) -> None:
        admin = await asyncpg.connect(self.server_dsn)
        try:
            for name in self.created:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _migrate(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await migrate.migrate(connection)
    finally:
        await connection.close()


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


@pytest.fixture(scope="session")
def databases(server_dsn: str) -> Iterator[Databases]:
    outlives_session = _configured_server() is not None  # else it goes whole (NON_DURABLE)
    registry = Databases(server_dsn)
    yield registry
    if outlives_session:
        asyncio.run(registry.drop_all())


@pytest.fixture(scope="session")
def database_url(databases: Databases) -> str:
    """The session's migrated database."""
    return asyncio.run(databases.create())


def make_settings(dsn: str, **overrides: object) -> Settings:
    """Settings for tests, independent of the SEO_ENGINE_* variables of the machine."""
    values: dict[str, object] = {"database_url": dsn, "pool_min_size": 1, "pool_max_size": 4}
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def tmp_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the real app, inside its lifespan."""
    async for client in _client(create_app(settings)):
        yield client


@pytest.fixture(scope="session")
def site_template(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The name of a database holding the small generated test site, built once through
    the real CLI (`setup_site`) and only ever copied: nothing connects to it afterwards."""
    from tests.seeding import setup_site

    dsn = asyncio.run(databases.create())
    setup_site(dsn, tmp_path_factory.mktemp("site-template"))
    return database_name(dsn)


@pytest.fixture(scope="session")
def shared_site_dsn(databases: Databases, site_template: str) -> str:
    """The generated test site for tests that only read it (see `site_client_dsn`)."""
    return asyncio.run(databases.create(template=site_template))


@pytest.fixture
def fresh_dsn(request: pytest.FixtureRequest, databases: Databases) -> str:
    """A migrated database of this test's own.

    A test has one database of its own: when it also uses `site_dsn` or `site_client`, this
    is that database, holding the small generated test site.
    """
    if {"site_dsn", "site_client"} & set(request.fixturenames):
        template = request.getfixturevalue("site_template")
        return asyncio.run(databases.create(template=template))
    return asyncio.run(databases.create())


@pytest.fixture
def site_dsn(fresh_dsn: str) -> str:
    """The test's own database holding the small generated test site."""
    return fresh_dsn


@pytest.fixture
def site_client_dsn(request: pytest.FixtureRequest) -> str:
    """`site_client`'s database.

    A test that changes the database asks for `fresh_dsn` too, and the app then serves that
    database of its own. The others share one database: they cannot change it, since they
    do not know its DSN and the app writes nothing there but its cursor key, made once.
    """
    name = "fresh_dsn" if "fresh_dsn" in request.fixturenames else "shared_site_dsn"
    return str(request.getfixturevalue(name))


@pytest.fixture
async def site_client(site_client_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app over a database holding the small generated test site."""
    async for client in _client(create_app(make_settings(site_client_dsn))):
        yield client
