"""The embedded server, driven from real separate processes as users would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seo_engine import database, embedded
from seo_engine.settings import Settings

HOLDER = """
import sys
from pathlib import Path
from seo_engine.embedded import server_dsn
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


def wait_until_stopped(data_dir: Path, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if embedded.postmaster_pid(data_dir) is None:
            return True
        time.sleep(0.1)
    return False


def test_the_server_starts_in_a_new_folder_and_stops_with_its_only_user(data_dir: Path) -> None:
    holder = Holder(data_dir)
    assert embedded.postmaster_pid(data_dir) is not None
    assert holder.dsn.endswith(f"host={data_dir / embedded.PGDATA_NAME}")
    holder.release()
    assert wait_until_stopped(data_dir)


def test_two_processes_share_one_server_until_the_last_exits(data_dir: Path) -> None:
    first = Holder(data_dir)
    second = Holder(data_dir)
    assert second.dsn == first.dsn
    server = embedded.postmaster_pid(data_dir)
    first.release()
    assert embedded.postmaster_pid(data_dir) == server
    second.release()
    assert wait_until_stopped(data_dir)


def test_a_killed_user_does_not_keep_the_server_alive_forever(data_dir: Path) -> None:
    victim = Holder(data_dir)
    victim_pid = victim.process.pid
    victim.kill()
    assert victim_pid in embedded.handle_pids(data_dir)
    survivor = Holder(data_dir)
    assert victim_pid not in embedded.handle_pids(data_dir)
    survivor.release()
    assert wait_until_stopped(data_dir)


def test_a_configured_database_url_starts_nothing_embedded(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"database_url": "postgresql://app@127.0.0.1:5432/pages", "data_dir": tmp_path / "data"}
    )
    assert database.resolve_dsn(settings) == "postgresql://app@127.0.0.1:5432/pages"
    assert not (tmp_path / "data").exists()
