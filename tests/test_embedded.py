"""The embedded server, driven from real separate processes as users would."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from seo_engine.db import database, embedded
from seo_engine.settings import Settings
from tests.waiting import until

HOLDER = """
import sys
from pathlib import Path
from seo_engine.db.embedded import server_dsn
print(server_dsn(Path(sys.argv[1])), flush=True)
sys.stdin.readline()
"""


class Holder:
    """A process that starts or attaches to the embedded server and keeps it until told."""

    def __init__(self, data_dir: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.dsn = self.process.stdout.readline().strip()
        assert self.dsn.startswith("postgresql://"), "holder did not print a DSN"

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.communicate("\n", timeout=30)
        assert self.process.returncode == 0

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=10)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "missing-parent" / "data"
    yield path
    pid = embedded.postmaster_pid(path)
    if pid is not None:  # a failed test must not leave its server running
        os.kill(pid, signal.SIGTERM)


def wait_until_stopped(data_dir: Path) -> None:
    until(lambda: embedded.postmaster_pid(data_dir) is None, 15, "the server to stop")


def test_the_server_starts_in_a_new_folder_and_stops_with_its_only_user(data_dir: Path) -> None:
    holder = Holder(data_dir)
    assert embedded.postmaster_pid(data_dir) is not None
    assert holder.dsn.endswith(f"host={data_dir / embedded.PGDATA_NAME}")
    holder.release()
    wait_until_stopped(data_dir)


def test_the_server_is_tuned_for_the_machine_once_and_keeps_its_settings(
    data_dir: Path,
) -> None:
    async def settings(dsn: str) -> dict[str, str]:
        connection = await asyncpg.connect(dsn)
        try:
            rows = await connection.fetch(
                "SELECT name, current_setting(name) AS value FROM pg_settings "
                "WHERE name = ANY($1::text[])",
                ["shared_buffers", "max_wal_size", "checkpoint_timeout"],
            )
            return {row["name"]: row["value"] for row in rows}
        finally:
            await connection.close()

    wanted = embedded.tuning(embedded._memory_bytes())
    holder = Holder(data_dir)
    first = asyncio.run(settings(holder.dsn))
    assert first["max_wal_size"] == "8GB" and first["checkpoint_timeout"] == "15min"
    megabytes = int(wanted["shared_buffers"].removesuffix("MB"))
    assert first["shared_buffers"] in (f"{megabytes}MB", f"{megabytes // 1024}GB")
    holder.release()
    wait_until_stopped(data_dir)
    again = Holder(data_dir)  # a later start: no second restart, same settings
    assert asyncio.run(settings(again.dsn)) == first
    again.release()
    wait_until_stopped(data_dir)


def test_the_tuning_follows_the_memory_within_bounds() -> None:
    gigabyte = 1024**3
    assert embedded.tuning(24 * gigabyte)["shared_buffers"] == "6144MB"
    assert embedded.tuning(64 * gigabyte)["shared_buffers"] == "8192MB"
    assert embedded.tuning(gigabyte // 4)["shared_buffers"] == "128MB"
    assert embedded.tuning(24 * gigabyte)["effective_cache_size"] == "12288MB"


def test_two_processes_share_one_server_until_the_last_exits(data_dir: Path) -> None:
    first = Holder(data_dir)
    second = Holder(data_dir)
    assert second.dsn == first.dsn
    server = embedded.postmaster_pid(data_dir)
    first.release()
    assert embedded.postmaster_pid(data_dir) == server
    second.release()
    wait_until_stopped(data_dir)


def test_a_killed_user_does_not_keep_the_server_alive_forever(data_dir: Path) -> None:
    victim = Holder(data_dir)
    victim_pid = victim.process.pid
    victim.kill()
    assert victim_pid in embedded.handle_pids(data_dir)
    survivor = Holder(data_dir)
    assert victim_pid not in embedded.handle_pids(data_dir)
    survivor.release()
    wait_until_stopped(data_dir)


def test_a_configured_database_url_starts_nothing_embedded(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"database_url": "postgresql://app@127.0.0.1:5432/pages", "data_dir": tmp_path / "data"}
    )
    assert database.resolve_dsn(settings) == "postgresql://app@127.0.0.1:5432/pages"
    assert not (tmp_path / "data").exists()
