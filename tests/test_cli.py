from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest
from typer.testing import CliRunner

from seo_engine.cli import app
from seo_engine.db import migrate
from tests.conftest import Databases
from tests.waiting import until

runner = CliRunner()


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == "seo-engine 0.1.0\n"


def test_db_migrate_then_status_shows_everything_applied(databases: Databases) -> None:
    dsn = asyncio.run(databases.create(migrated=False))
    env = {"DATABASE_URL": dsn}
    pending = runner.invoke(app, ["db", "status"], env=env)
    assert pending.exit_code == 0
    assert pending.output.endswith(f"0 applied, {len(migrate.available())} pending\n")
    first = runner.invoke(app, ["db", "migrate"], env=env)
    assert first.exit_code == 0
    assert first.output == "".join(f"applied {m.version}_{m.name}\n" for m in migrate.available())
    second = runner.invoke(app, ["db", "migrate"], env=env)
    assert second.exit_code == 0
    assert second.output == "schema is up to date\n"
    status = runner.invoke(app, ["db", "status"], env=env)
    assert status.output.endswith(f"{len(migrate.available())} applied, 0 pending\n")


def test_a_bad_setting_exits_78_naming_it() -> None:
    result = runner.invoke(app, ["db", "status"], env={"SEO_ENGINE_POOL_MAX_SIZE": "-3"})
    assert result.exit_code == 78
    assert "SEO_ENGINE_POOL_MAX_SIZE" in result.output
    assert "Traceback" not in result.output


def test_an_unreachable_database_exits_69_without_a_traceback() -> None:
    env = {"DATABASE_URL": "postgresql://postgres:secret@127.0.0.1:9/nothing"}
    result = runner.invoke(app, ["db", "migrate"], env=env)
    assert result.exit_code == 69
    assert result.output.startswith("error: cannot connect to PostgreSQL")
    assert "secret" not in result.output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_answers_health_and_readiness_then_stops_on_sigterm(
    database_url: str, workers: str
) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url}
    with subprocess.Popen(
        [sys.executable, "-m", "seo_engine", "serve", "--port", str(port), "--workers", workers],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            answers: list[httpx.Response] = []

            def answered() -> bool:
                try:
                    answers.append(httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2))
                except httpx.TransportError:
                    assert server.poll() is None, server.communicate()[1]
                return bool(answers)

            until(answered, 30, "the server to answer")
            assert answers[0].status_code == 200
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        finally:
            server.send_signal(signal.SIGTERM)
            _, errors = server.communicate(timeout=20)
        assert server.returncode == 0, errors
