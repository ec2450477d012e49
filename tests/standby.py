"""A primary and a streaming standby of a test's own on loopback, made with the embedded
wheel's PostgreSQL programs: initdb, `pg_basebackup -R` (which writes the standby's
primary_conninfo and standby.signal), pg_ctl."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from seo_engine.db import embedded

# Not durable (the folder is thrown away), and quick to stop and start.
SERVER_OPTIONS = "-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StandbyPair:
    def __init__(self) -> None:
        # Not under pytest's temporary folder: the wheel's user (when root) must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="seo-engine-replication-"))
        user = embedded.system_user()
        if user is not None:
            shutil.chown(self.root, user)
        self.primary_data = self.root / "primary"
        self.standby_data = self.root / "standby"
        self.primary_port = free_port()
        self.standby_port = free_port()
        embedded.run_program(
            "initdb", ["--auth=trust", "-U", "postgres", "--encoding=utf8"], self.primary_data
        )
        with (self.primary_data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        self._start(self.primary_data, self.primary_port)
        embedded.run_program(
            "pg_basebackup",
            [
                *("-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres"),
                *("-D", str(self.standby_data), "-R", "-X", "stream", "-c", "fast"),
            ],
        )
        self.start_standby()

    @staticmethod
    def url(port: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def standby_url(self) -> str:
        return self.url(self.standby_port)

    @property
    def standby_name(self) -> str:
        return f"127.0.0.1:{self.standby_port}"

    def _start(self, data: Path, port: int) -> None:
        options = f"-p {port} -k {self.root} {SERVER_OPTIONS}"
        log = self.root / f"{data.name}.log"
        embedded.run_program("pg_ctl", ["-w", "-o", options, "-l", str(log), "start"], data)

    def start_standby(self) -> None:
        self._start(self.standby_data, self.standby_port)

    def stop_standby(self) -> None:
        """At once, as a crash or a pulled plug would (`pg_ctl stop -m immediate`)."""
        embedded.run_program("pg_ctl", ["-m", "immediate", "-w", "stop"], self.standby_data)

    async def _on_standby(self, statement: str) -> None:
        connection = await asyncpg.connect(self.standby_url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    async def pause_replay(self) -> None:
        await self._on_standby("SELECT pg_wal_replay_pause()")

    async def resume_replay(self) -> None:
        await self._on_standby("SELECT pg_wal_replay_resume()")

    def close(self) -> None:
        for data in (self.standby_data, self.primary_data):
            with contextlib.suppress(subprocess.CalledProcessError):
                embedded.run_program("pg_ctl", ["-m", "immediate", "-w", "stop"], data)
        shutil.rmtree(self.root, ignore_errors=True)


async def caught_up(pair: StandbyPair, timeout: float = 30.0) -> None:
    """Wait until the standby has replayed everything the primary has written."""
    from seo_engine.db import replicas
    from tests.conftest import make_settings

    settings = make_settings(pair.primary_url, read_database_url=pair.standby_url)
    connection = await asyncpg.connect(pair.primary_url)
    try:
        await replicas.wait_for_replay(connection, settings, timeout)
    finally:
        await connection.close()


def wait_until_caught_up(pair: StandbyPair) -> None:
    asyncio.run(caught_up(pair))
