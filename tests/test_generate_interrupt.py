"""Ctrl-C during `generate`: its render workers stop at once, not after their service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.seeding import (
    DATA,
    SERVICE_HEADER,
    SERVICES,
    cli,
    fetch,
    subset_of_bundled_locations,
    write,
)
from tests.waiting import until

# Two loops of a million empty steps: 0.1-0.4 s a page, well under the 2 s limit of one
# page, so that a service of 100 locations keeps its worker busy for 10-40 s.
MILLION_STEPS = "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}"
SLOW_ANSWER = MILLION_STEPS * 2 + "Yes."
EXIT_INTERRUPTED = 130
PROMPTLY_SECONDS = 5.0


def render_workers(parent: psutil.Process) -> list[psutil.Process]:
    """The CLI's spawned multiprocessing children (not its resource tracker)."""
    workers = []
    for child in parent.children():
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                workers.append(child)
        except psutil.NoSuchProcess:
            pass
    return workers


def backends(dsn: str) -> int:
    """The database's connections that `generate` and its workers opened."""
    rows = fetch(
        dsn,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'seo-engine'",
    )
    return int(rows[0]["n"])


@pytest.mark.faults
def test_ctrl_c_stops_the_render_workers_mid_service_and_none_outlives_generate(
    fresh_dsn: str, tmp_path: Path
) -> None:
    slow = (DATA / "site.toml").read_text().replace('answer = "Yes."', f'answer = "{SLOW_ANSWER}"')
    (tmp_path / "slow.toml").write_text(slow)
    services = write(tmp_path / "services.csv", SERVICE_HEADER, SERVICES)
    assert cli(fresh_dsn, "sites", "add", str(tmp_path / "slow.toml")).exit_code == 0
    locations = subset_of_bundled_locations(tmp_path, 100)
    assert cli(fresh_dsn, "seed", "locations", str(locations)).exit_code == 0
    assert cli(fresh_dsn, "seed", "services", str(services)).exit_code == 0
    env = {**os.environ, "DATABASE_URL": fresh_dsn}
    with subprocess.Popen(
        [sys.executable, "-m", "seo_engine", "generate", "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as generating:
        cli_process = psutil.Process(generating.pid)

        def rendering() -> bool:
            # Rendering has begun once both workers hold their connections (the CLI two).
            assert generating.poll() is None, "generate ended before it was interrupted"
            return len(render_workers(cli_process)) >= 2 and backends(fresh_dsn) >= 4

        until(rendering, 60, "the render workers to start")
        workers = render_workers(cli_process)
        generating.send_signal(signal.SIGINT)
        try:
            _, errors = generating.communicate(timeout=PROMPTLY_SECONDS)
        except subprocess.TimeoutExpired:
            generating.kill()  # its workers die with it (PR_SET_PDEATHSIG)
            generating.communicate()
            pytest.fail(f"generate still ran {PROMPTLY_SECONDS:.0f} s after Ctrl-C")
    assert generating.returncode == EXIT_INTERRUPTED, errors
    _, alive = psutil.wait_procs(workers, timeout=0)
    assert alive == [], "a render worker outlived generate"
